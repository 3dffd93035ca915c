"""The agent node: the daemon on a board (end device) — tasks, on-board actor, execution."""
