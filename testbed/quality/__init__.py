"""Measuring the quality of generated samples (docs/quality.md): request conditions,
edge-faithful sampling, the evaluator plug-ins and the zoo's quality gate (no torch)."""
