"""The generative model zoo as the nodes see it (no torch): catalog, workload, drivers.

The coordinator builds the zoo (`coordinator.zoo`, `testbed zoo build`); everything a
node needs to find, verify, cost and run a model is here. See docs/zoo.md.
"""

from testbed.zoo.catalog import (
    Catalog,
    CatalogError,
    CatalogNotFound,
    ModelEntry,
    ModelFamily,
    ModelOrigin,
    TensorDType,
    TensorSpec,
    UnknownModel,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogNotFound",
    "ModelEntry",
    "ModelFamily",
    "ModelOrigin",
    "TensorDType",
    "TensorSpec",
    "UnknownModel",
]
