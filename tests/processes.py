"""Starting a child process that a test stops as a user would."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """A `preexec_fn`: SIGINT at its default in the child. A suite started as a
    background job (`cmd &` in a script) inherits SIGINT ignored, and Python then never
    turns it into KeyboardInterrupt: the child gets a terminal's default, as a user
    pressing Ctrl-C has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
