"""Environments: the digital twin and the live bench behind one API (PettingZoo
ParallelEnv for other MARL libraries, and a vectorised interface for our trainers)."""
