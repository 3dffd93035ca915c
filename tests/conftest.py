from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.lab_fixtures import lab_hosts, module_lab_hosts  # noqa: F401
from tests.zoo_fixtures import tiny_zoo  # noqa: F401


@pytest.fixture(autouse=True)
def _root_log_level() -> Iterator[None]:
    """A command run in-process sets the root logger's level (`-q`: errors only, which
    also hides progress lines): give the next test the level this one found."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
