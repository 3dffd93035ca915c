from tests.zoo_fixtures import tiny_zoo  # noqa: F401
