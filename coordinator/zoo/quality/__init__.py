"""The quality zoo of docs/papers.md §C: digit generators of three sizes and their
independent evaluator, trained on real images, and the quality gate (docs/quality.md)."""
