"""A run's records, written as they finish.

`testbed up`, `eval`, `calibrate` and `experiment run` hand every finished slot to a
`RunRecorder`: its tasks are appended to `tasks.csv` and the slot to `slots.csv`, both
flushed at once, and `summary.json` is replaced (atomically) by the summary so far. A
run stopped by Ctrl-C or SIGTERM keeps every finished slot and says in its summary
that it was interrupted and where; a coordinator killed outright (SIGKILL) loses at
most the slot in flight, and its summary says `running` with the last slot it saw.
"""

from __future__ import annotations

import csv
import enum
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from coordinator.records import CSV_FIELDS, csv_row, summarise, write_json
from testbed.messages import TaskRecord

SLOT_FIELDS = ["slot", "tasks", "completed", "wall_ms", "max_step_ms", "overhead_ms"]


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    """Still going, or the coordinator was killed outright (SIGKILL) at `last_slot`."""
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    """Stopped by Ctrl-C or SIGTERM: every slot up to `last_slot` is recorded."""
    FAILED = "failed"


class RunRecorder:
    """Appends a run's task records (and slots) as they finish; keeps the summary current.

    `tasks_name` lets one folder hold several record files (calibration runs);
    `slots_name=None` writes no slots file; `extra` is merged into every summary."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tasks_name: str = "tasks.csv",
        slots_name: str | None = "slots.csv",
        summary_name: str | None = "summary.json",
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.records: list[TaskRecord] = []
        self.slots_done = 0
        self.last_slot: int | None = None
        self._extra = extra
        self._summary_path = run_dir / summary_name if summary_name else None
        self._tasks_file = open(run_dir / tasks_name, "w", newline="")  # noqa: SIM115
        self._tasks = csv.DictWriter(self._tasks_file, fieldnames=CSV_FIELDS)
        self._tasks.writeheader()
        self._slots_file: IO[str] | None = None
        if slots_name:
            self._slots_file = open(run_dir / slots_name, "w", newline="")  # noqa: SIM115
            self._slots_file.write(",".join(SLOT_FIELDS) + "\n")
        self._flush()
        self._write_summary(RunStatus.RUNNING)

    # ------------------------------------------------------------------ writing

    def add_slot(
        self, slot: int, records: Iterable[TaskRecord], timing: dict[str, float] | None = None
    ) -> None:
        """One finished slot: its records (and its timing row, for slots.csv)."""
        rows = list(records)
        self._append(rows)
        if self._slots_file is not None and timing is not None:
            done = sum(r.completed for r in rows)
            cells = [str(slot), str(len(rows)), str(done)]
            cells += [f"{timing.get(k, 0.0):.3f}" for k in SLOT_FIELDS[3:]]
            self._slots_file.write(",".join(cells) + "\n")
        self.slots_done += 1
        self.last_slot = slot
        self._flush()
        self._write_summary(RunStatus.RUNNING)

    def add_records(self, records: Iterable[TaskRecord]) -> None:
        """Records that belong to no finished slot (drained at the end, interrupted)."""
        self._append(list(records))
        self._flush()

    def finish(self, status: RunStatus, **extra: Any) -> dict[str, Any]:
        """Close the files; the final summary (with `extra`) is written and returned."""
        self._flush()
        self._tasks_file.close()
        if self._slots_file is not None:
            self._slots_file.close()
        return self._write_summary(status, extra)

    # ------------------------------------------------------------------ inside

    def _append(self, rows: list[TaskRecord]) -> None:
        for record in rows:
            self._tasks.writerow(csv_row(record))
        self.records.extend(rows)

    def _flush(self) -> None:
        for f in (self._tasks_file, self._slots_file):
            if f is not None and not f.closed:
                f.flush()

    def _write_summary(
        self, status: RunStatus, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        summary = summarise(
            self.records,
            {
                **(self._extra() if self._extra else {}),
                **(extra or {}),
                "status": status.value,
                "slots_done": self.slots_done,
                "last_slot": self.last_slot,
            },
        )
        if self._summary_path is not None:
            tmp = self._summary_path.with_suffix(".json.tmp")
            write_json(tmp, summary)
            os.replace(tmp, self._summary_path)
        return summary
