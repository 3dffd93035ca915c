from tests.lab_fixtures import lab_hosts, module_lab_hosts  # noqa: F401
from tests.zoo_fixtures import tiny_zoo  # noqa: F401
