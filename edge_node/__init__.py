"""The edge node: task execution on real models behind an LRU model cache."""
