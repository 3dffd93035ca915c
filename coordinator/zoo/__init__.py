"""The model zoo's build side (torch): definitions, synthetic data, training, ONNX export.

The torch-free side — the catalog, the workload rule and the drivers the runtime uses —
is `testbed.zoo`. See docs/zoo.md.
"""
