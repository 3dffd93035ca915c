"""`ConfigError`: an invalid configuration, every bad key path named (exit code 2)."""

from __future__ import annotations

from testbed.exit_codes import ExitCode, TestbedExit


class ConfigError(TestbedExit):
    """An invalid configuration; `problems` are `(key_path, message)` pairs. Ends a
    command with CONFIG_INVALID and every problem on stderr, like any `TestbedExit`."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}:"
        super().__init__(
            ExitCode.CONFIG_INVALID, "\n".join([head, *(f"  {p}: {m}" for p, m in problems)])
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems, self.source))
