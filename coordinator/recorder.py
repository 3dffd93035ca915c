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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from coordinator.coedge_shares import SHARE_FIELDS, share_rows
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
    `slots_name=None` writes no slots file; `slot_fields`: its columns (slot, tasks,
    completed, then keys of `add_slot`'s timing); `shares_name`: also a file with one
    row per share of a split task (the live §B bench, coordinator/coedge_shares.py);
    `extra` is merged into every summary."""

    def __init__(
        self,
        run_dir: Path,
        *,
        tasks_name: str = "tasks.csv",
        slots_name: str | None = "slots.csv",
        summary_name: str | None = "summary.json",
        extra: Callable[[], dict[str, Any]] | None = None,
        slot_fields: Sequence[str] = SLOT_FIELDS,
        shares_name: str | None = None,
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
        self._slot_fields = list(slot_fields)
        self._slots_file: IO[str] | None = None
        if slots_name:
            self._slots_file = open(run_dir / slots_name, "w", newline="")  # noqa: SIM115
            self._slots_file.write(",".join(self._slot_fields) + "\n")
        self._shares_file: IO[str] | None = None
        if shares_name:
            self._shares_file = open(run_dir / shares_name, "w", newline="")  # noqa: SIM115
            self._shares = csv.DictWriter(self._shares_file, fieldnames=SHARE_FIELDS)
            self._shares.writeheader()
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
            values = [timing.get(k, 0.0) for k in self._slot_fields[3:]]
            cells += [str(v) if isinstance(v, int) else f"{v:.3f}" for v in values]
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
        for f in (self._slots_file, self._shares_file):
            if f is not None:
                f.close()
        return self._write_summary(status, extra)

    # ------------------------------------------------------------------ inside

    def _append(self, rows: list[TaskRecord]) -> None:
        for record in rows:
            self._tasks.writerow(csv_row(record))
            if self._shares_file is not None:
                self._shares.writerows(share_rows(record))
        self.records.extend(rows)

    def _flush(self) -> None:
        for f in (self._tasks_file, self._slots_file, self._shares_file):
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
