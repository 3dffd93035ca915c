"""The ranges the config's numbers share, named once: what a bench can run with.

Every number of `testbed.yaml` has a lower and an upper bound (a test walks the schema
to check), so whatever `testbed config check` accepts runs without a traceback: no
timeout so short nothing can answer or so long a run never ends, no period so short
it floods the broker and the run folder with events, no seed the wire cannot carry.
"""

from __future__ import annotations

SEED_END = 2**63
"""Seeds lie in [0, 2^63): numpy and torch take them, and so does the wire (uint64
`LoadPolicyRequest.seed`), with room for the offsets training adds (10^6 per eval)."""

PERIOD_MIN_S = 0.05
"""Shortest heartbeat or telemetry period: 20 messages a second per node."""
PERIOD_MAX_S = 3600.0
"""Longest heartbeat or telemetry period: an hour."""
TIMEOUT_MIN_S = 0.01
"""Shortest timeout: 10 ms (shorter and nothing on the bench can answer in time)."""
TIMEOUT_MAX_S = 86400.0
"""Longest timeout or deadline: a day."""

CLOCK_MAX_GHZ = 1000.0
"""Fastest clock of any node (a whole cloud centre is counted as one clock)."""
RATE_MAX_MBPS = 1e6
"""Fastest link: 1 Tbit/s."""
POWER_MAX_W = 1e5
"""Largest power draw of any node."""
POSITION_MAX_M = 1e6
"""Positions and site sizes stay within 1000 km."""
COUNT_MAX = 10**6
"""Queue capacities and other counts of things held in memory."""
STEPS_MAX = 10**9
"""Steps, slots and other counts of things done one after another."""

HOST_MAX_LEN = 253
"""Host names and addresses: a DNS name's longest."""
NAME_MAX_LEN = 128
"""Names written into every run folder (the experiment: manifest, summary, folder name)."""

__all__ = [
    "CLOCK_MAX_GHZ",
    "COUNT_MAX",
    "HOST_MAX_LEN",
    "NAME_MAX_LEN",
    "PERIOD_MAX_S",
    "PERIOD_MIN_S",
    "POSITION_MAX_M",
    "POWER_MAX_W",
    "RATE_MAX_MBPS",
    "SEED_END",
    "STEPS_MAX",
    "TIMEOUT_MAX_S",
    "TIMEOUT_MIN_S",
]
