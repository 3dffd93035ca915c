"""Shared core of the AIGC offloading testbed, imported by every node (no torch here)."""
