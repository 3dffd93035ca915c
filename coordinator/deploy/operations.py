"""The operations of a host's plan (pyinfra style): each knows what the host must hold
when it is done, how to look at what the host holds now (`probe`, a shell snippet),
whether that differs (`diff`: None when the host already holds it) and how to make it
so (`apply`). A plan's probes all run in one SSH command, so a deploy that changes
nothing costs one round trip per host, and says "0 changes".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
from pathlib import Path

from coordinator.deploy.layout import HostLayout, NodeSlot
from coordinator.deploy.services import Manager
from coordinator.deploy.ssh import HostLink, q

PARALLEL_COPIES = 4
"""Files of one folder copied at once over the host's SFTP session."""

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def local_sha256(path: Path) -> str:
    """sha256 of a local file, remembered by (path, size, mtime) for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def _listing(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """`sha256sum` and `stat -c '%a %n'` lines → ({path: sha}, {path: mode})."""
    shas, modes = {}, {}
    for line in text.splitlines():
        first, _, rest = line.partition(" ")
        if len(first) == 64:
            shas[rest.lstrip(" *")] = first
        elif first.isdigit() and rest:
            modes[rest] = first
    return shas, modes


def _mode(mode: int) -> str:
    return format(mode, "o")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class Operation:
    """One thing a host must hold. Subclasses set `key` and `label`."""

    key: str = ""
    label: str = ""
    after: tuple[str, ...] = ()
    """Keys of operations whose change makes this one change too (a restart)."""

    def probe(self) -> str:
        return "true"

    def diff(self, observed: str, changing: set[str]) -> str | None:
        raise NotImplementedError

    async def apply(self, link: HostLink) -> None:
        raise NotImplementedError


class DirsOp(Operation):
    """The prefix's folders, `certs` private (0700)."""

    def __init__(self, dirs: dict[str, int]) -> None:
        self.dirs = dirs
        self.key, self.label = "dirs", "folders"

    def probe(self) -> str:
        return f"stat -c '%a %n' {' '.join(q(d) for d in self.dirs)}"

    def diff(self, observed: str, changing: set[str]) -> str | None:
        modes = _listing(observed)[1]
        wrong = [d for d, mode in self.dirs.items() if modes.get(d) != _mode(mode)]
        return f"make {len(wrong)} folder(s) under the prefix" if wrong else None

    async def apply(self, link: HostLink) -> None:
        paths = " ".join(q(d) for d in self.dirs)
        chmods = "; ".join(f"chmod {_mode(m)} {q(d)}" for d, m in self.dirs.items())
        await link.run(f"mkdir -p {paths} && {chmods}")


class FileOp(Operation):
    """A file with given bytes (or a local file's) and mode."""

    def __init__(self, key: str, label: str, remote: str, *, data: bytes | None = None,
                 local: Path | None = None, mode: int = 0o644) -> None:  # fmt: skip
        self.key, self.label, self.remote, self.mode = key, label, remote, mode
        self.data, self.local = data, local
        if data is not None:
            self.sha = hashlib.sha256(data).hexdigest()
        else:
            assert local is not None, "a FileOp needs data or a local file"
            self.sha = local_sha256(local)

    def probe(self) -> str:
        f = q(self.remote)
        return f"[ -f {f} ] && sha256sum {f} && stat -c '%a %n' {f}"

    def diff(self, observed: str, changing: set[str]) -> str | None:
        shas, modes = _listing(observed)
        if self.remote not in shas:
            return f"write {self.label}"
        if shas[self.remote] != self.sha:
            return f"update {self.label}"
        if modes.get(self.remote) != _mode(self.mode):
            return f"chmod {_mode(self.mode)} {self.label}"
        return None

    async def apply(self, link: HostLink) -> None:
        if self.data is not None:
            await link.write_bytes(self.remote, self.data, self.mode)
        else:
            assert self.local is not None
            await link.put(self.local, self.remote, self.mode)


class TreeOp(Operation):
    """A folder holding exactly the given local files (others are removed).

    Which files differ is decided as rsync's quick check does: `.testbed-index`, written
    after each copy, holds every file's sha256 with its size and mtime as the host
    stat'ed it then; a file whose size and mtime still match is taken to hold that
    sha256 (no hashing of megabytes of wheels and models on every deploy), any other is
    copied again."""

    INDEX = ".testbed-index"

    def __init__(self, key: str, label: str, remote_dir: str, files: dict[str, Path], *,
                 mode: int = 0o644, private: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.key, self.label, self.remote_dir = key, label, remote_dir
        self.files = files
        self.modes = {rel: 0o600 if private and rel.endswith(private) else mode for rel in files}
        self.shas = {rel: local_sha256(path) for rel, path in files.items()}
        self.to_copy: list[str] = list(files)
        self.to_remove: list[str] = []

    def _stat_all(self) -> str:
        return (f"find . -type f ! -name '*.part' ! -name {self.INDEX} "
                "-exec stat -c '%a %s %Y %n' {} +")  # fmt: skip

    def probe(self) -> str:
        d = q(self.remote_dir)
        return (f"[ -d {d} ] && cd {d} && {{ cat {self.INDEX}; echo; echo @@stat; "
                f"{self._stat_all()}; }}")  # fmt: skip

    @staticmethod
    def _stats(text: str) -> dict[str, tuple[str, str, str]]:
        """`stat` lines → {rel: (mode, size, mtime)}."""
        out = {}
        for line in text.splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0].isdigit():
                out[parts[3].removeprefix("./")] = (parts[0], parts[1], parts[2])
        return out

    def diff(self, observed: str, changing: set[str]) -> str | None:
        index_text, _, stat_text = observed.partition("@@stat")
        try:
            index = json.loads(index_text) if index_text.strip() else {}
        except ValueError:
            index = {}
        stats = self._stats(stat_text)
        self.to_copy = [rel for rel in self.files if rel not in stats
                        or stats[rel][0] != _mode(self.modes[rel])
                        or index.get(rel) != [self.shas[rel], *stats[rel][1:]]]  # fmt: skip
        self.to_remove = sorted(set(stats) - set(self.files))
        if not self.to_copy and not self.to_remove:
            return None
        size = sum(self.files[rel].stat().st_size for rel in self.to_copy)
        parts = [f"copy {len(self.to_copy)} file(s) ({_mb(size)})"] if self.to_copy else []
        parts += [f"remove {len(self.to_remove)} stale file(s)"] if self.to_remove else []
        return f"{self.label}: {', '.join(parts)}"

    async def apply(self, link: HostLink) -> None:
        subdirs = sorted({posixpath.dirname(rel) for rel in self.to_copy} - {""})
        made = " ".join(q(posixpath.join(self.remote_dir, s)) for s in subdirs)
        await link.run(f"mkdir -p {q(self.remote_dir)} {made}")
        if self.to_remove:
            stale = " ".join(q(posixpath.join(self.remote_dir, rel)) for rel in self.to_remove)
            await link.run(f"rm -f {stale}")
        slots = asyncio.Semaphore(PARALLEL_COPIES)

        async def copy(rel: str) -> None:
            async with slots:
                await link.put(self.files[rel], posixpath.join(self.remote_dir, rel),
                               self.modes[rel])  # fmt: skip

        await asyncio.gather(*(copy(rel) for rel in self.to_copy))
        listed = await link.run(f"cd {q(self.remote_dir)} && {self._stat_all()}")
        stats = self._stats(listed.stdout)
        index = {rel: [self.shas[rel], *stats[rel][1:]] for rel in self.files if rel in stats}
        await link.write_bytes(posixpath.join(self.remote_dir, self.INDEX),
                               json.dumps(index, sort_keys=True).encode())  # fmt: skip


class PythonDistOp(Operation):
    """A standalone CPython (python-build-standalone `install_only`) under the prefix."""

    def __init__(self, layout: HostLayout, archive: Path) -> None:
        self.layout, self.archive = layout, archive
        self.sha = local_sha256(archive)
        self.key, self.label = "python", f"Python from {archive.name}"

    def probe(self) -> str:
        return f"cat {q(self.layout.provisioned_marker)}"

    def diff(self, observed: str, changing: set[str]) -> str | None:
        return None if observed.strip() == self.sha else f"unpack {self.label}"

    async def apply(self, link: HostLink) -> None:
        tarball = posixpath.join(self.layout.wheels, "python-dist.tar.gz")
        root = q(self.layout.provisioned_root)
        await link.run(f"mkdir -p {q(self.layout.wheels)}")
        await link.put(self.archive, tarball)
        await link.run(f"rm -rf {root} && mkdir -p {root} && tar -xzf {q(tarball)} -C {root} "
                       f"--strip-components=1 && rm -f {q(tarball)} && "
                       f"{q(self.layout.provisioned_python)} -V && "
                       f"echo {self.sha} > {q(self.layout.provisioned_marker)}")  # fmt: skip


class EnvironmentOp(Operation):
    """The venv, made with the chosen interpreter, holding the project's wheel with its
    extras, installed from the host's wheelhouse (`--no-index`)."""

    def __init__(self, layout: HostLayout, *, python: str, python_version: str,
                 extras: list[str], wheel_remote: str, wheel_version: str, source_key: str,
                 pip_wheel: str, after: tuple[str, ...]) -> None:  # fmt: skip
        self.layout, self.python, self.after = layout, python, after
        self.wheel_remote, self.pip_wheel = wheel_remote, pip_wheel
        self.marker = {"python": python, "python_version": python_version, "extras": extras,
                       "version": wheel_version, "source_key": source_key}  # fmt: skip
        self.key, self.label = "venv", "the venv"
        self.recreate = True

    def probe(self) -> str:
        return f"[ -x {q(self.layout.venv_python)} ] && cat {q(self.layout.install_marker)}"

    def diff(self, observed: str, changing: set[str]) -> str | None:
        try:
            held = json.loads(observed)
        except ValueError:
            held = {}
        extras = "[" + ",".join(self.marker["extras"]) + "]" if self.marker["extras"] else ""
        what = f"aigc-testbed {self.marker['version']}{extras}"
        self.recreate = any(held.get(k) != self.marker[k] for k in ("python", "extras"))
        if not held:
            return f"make the venv ({self.python} {self.marker['python_version']}), install {what}"
        if self.recreate:
            return f"make the venv again ({self.python}, extras {extras or 'none'}), install {what}"
        if held != self.marker:
            return f"reinstall {what} (its sources changed)"
        return None

    async def apply(self, link: HostLink) -> None:
        venv, wheelhouse = q(self.layout.venv), q(self.layout.wheelhouse)
        pip_zip = q(posixpath.join(self.layout.wheelhouse, self.pip_wheel))
        pip = (f"{q(self.layout.venv_python)} {pip_zip}/pip install -q --no-index "
               "--no-cache-dir --disable-pip-version-check --no-warn-script-location "
               f"--find-links {wheelhouse}")  # fmt: skip
        extras = ",".join(self.marker["extras"])
        target = q(self.wheel_remote + (f"[{extras}]" if extras else ""))
        steps = []
        if self.recreate:
            steps.append(f"rm -rf {venv} && {q(self.python)} -m venv --without-pip {venv}")
        steps.append(f"{pip} {target}")
        if not self.recreate:
            steps.append(f"{pip} --no-deps --force-reinstall {q(self.wheel_remote)}")
        await link.run(" && ".join(steps))
        await link.write_bytes(self.layout.install_marker, json.dumps(self.marker).encode())


class ServiceOp(Operation):
    """A daemon running under its service manager; restarted when something it runs
    with changed (its config, the venv, its certificates, its unit)."""

    def __init__(self, slot: NodeSlot, manager: Manager, argv: list[str],
                 after: tuple[str, ...]) -> None:  # fmt: skip
        self.slot, self.manager, self.argv, self.after = slot, manager, argv, after
        self.key, self.label = f"service:{slot.node_id}", f"{slot.node_id} ({slot.service})"

    def probe(self) -> str:
        return self.manager.status_command(self.slot)

    def diff(self, observed: str, changing: set[str]) -> str | None:
        state = self.manager.parse_status(observed)
        if not state.running:
            return f"start {self.label}"
        why = sorted(k for k in self.after if k in changing)
        return f"restart {self.label} ({', '.join(why)} changed)" if why else None

    async def apply(self, link: HostLink) -> None:
        await link.run(self.manager.start_command(self.slot, self.argv))


class RetireOp(Operation):
    """A daemon deploy started here before, which this host no longer runs: stopped,
    its service removed."""

    def __init__(self, slot: NodeSlot, manager: Manager) -> None:
        self.slot, self.manager = slot, manager
        self.key, self.label = f"retire:{slot.node_id}", f"{slot.node_id} (no longer here)"

    def diff(self, observed: str, changing: set[str]) -> str | None:
        return f"stop and remove {self.label}"

    async def apply(self, link: HostLink) -> None:
        await link.run(self.manager.remove_command(self.slot), check=False)


async def probe_all(link: HostLink, operations: list[Operation]) -> list[str]:
    """Every operation's probe in one command; each one's output, in order."""
    # A newline before each marker: a probe's output may not end with one (`cat`).
    script = "\n".join(f"printf '\\n@@probe {i}\\n'\n( {op.probe()} ) 2>/dev/null"
                       for i, op in enumerate(operations))  # fmt: skip
    out = await link.run(script, check=False)
    sections: list[list[str]] = [[] for _ in operations]
    current: list[str] | None = None
    for line in out.stdout.splitlines():
        if line.startswith("@@probe "):
            current = sections[int(line.split()[1])]
        elif current is not None:
            current.append(line)
    return ["\n".join(lines).strip("\n") for lines in sections]


async def diff_all(link: HostLink, operations: list[Operation]) -> list[str | None]:
    """What each operation would change (None: nothing), in plan order: an operation
    listed in another's `after` that changes makes that one change too."""
    observed = await probe_all(link, operations)
    changing: set[str] = set()
    changes: list[str | None] = []
    for op, seen in zip(operations, observed, strict=True):
        change = op.diff(seen, changing)
        if change is not None:
            changing.add(op.key)
        changes.append(change)
    return changes
