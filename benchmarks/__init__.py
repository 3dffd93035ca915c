"""Side-by-side performance suite (issue 2): each benchmark measures our path and the
bare reference in the same run and prints ours, the reference and the ratio.

    python -m benchmarks [NAME ...] [--quick] [--json OUT]

model_fetch     cloud→edge model fetch over MQTT vs the broker's raw 1 MiB QoS 1 rate
cold_admission  verify + session + warm-up vs a bare ONNX Runtime session + one run
cached_switch   acquiring a cached model (µs) vs a bare locked LRU hit
submit_task     SubmitTask round trip on a real edge vs a bare gRPC unary echo

docs/performance.md has what each measures, the figures and what dominates our time.
"""
