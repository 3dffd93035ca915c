"""SSH to one host of the inventory with asyncssh: connect (host keys checked against a
known_hosts file, trust on first use where allowed), run commands, copy files over
SFTP. Every failure to reach or use a host is a `HostFailure` whose message says why in
words (unreachable, key refused, host key changed, a command that failed), so deploy
reports it for that host and goes on with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from testbed.config import DeployConfig, HostConfig

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 600.0
"""Longest any one remote command may run (a pip install on a slow board included)."""


class HostFailure(Exception):
    """This host cannot be deployed; the message says why (shown after its name)."""


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def known_host_pattern(host: HostConfig) -> str:
    """How OpenSSH names the host in known_hosts: `addr`, or `[addr]:port` off port 22."""
    return host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"


async def _trust_on_first_use(host: HostConfig, settings: DeployConfig) -> None:
    """Record the host's key in known_hosts when the file has none for it (and the
    config allows it); a host already listed is left to asyncssh to verify."""
    path = Path(settings.known_hosts).expanduser()
    if path.is_file():
        known = asyncssh.read_known_hosts(str(path))
        if any(known.match(host.address, host.address, host.ssh_port)[:2]):
            return
    if not settings.trust_new_hosts:
        raise HostFailure(f"{known_host_pattern(host)} is not in {path} and "
                          "deploy.trust_new_hosts is false: add its key (ssh-keyscan)")  # fmt: skip
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(host.address, host.ssh_port),
            settings.connect_timeout_s,
        )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise HostFailure(f"unreachable: {_reason(exc)}") from None
    if key is None:
        raise HostFailure("unreachable: the SSH server sent no host key")
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{known_host_pattern(host)} {key.export_public_key('openssh').decode().strip()}\n"
    with open(path, "a") as fh:
        fh.write(line)
    log.info("recorded the host key of %s in %s", known_host_pattern(host), path)


def _reason(exc: BaseException) -> str:
    """A failure to connect, in words."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key not trusted ({exc.reason}): it changed, or known_hosts is wrong"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "permission denied: the SSH key was refused (wrong key or user?)"
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running on that port?)"
    if isinstance(exc, asyncssh.Error):
        return exc.reason
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class HostLink:
    """An open SSH connection to one host (use `connect`)."""

    def __init__(self, host: HostConfig, conn: asyncssh.SSHClientConnection) -> None:
        self.host = host
        self.conn = conn
        self._sftp: asyncssh.SFTPClient | None = None

    async def run(self, command: str, *, check: bool = True, timeout_s: float | None = None,
                  input_text: str | None = None) -> CommandResult:  # fmt: skip
        """Run `command` with the login shell; `check`: a non-zero exit is a
        HostFailure quoting the end of its stderr."""
        try:
            done = await self.conn.run(command, check=False, input=input_text,
                                       timeout=timeout_s or COMMAND_TIMEOUT_S)  # fmt: skip
        except asyncssh.TimeoutError:
            raise HostFailure(f"timed out: {shorten(command)}") from None
        except (OSError, asyncssh.Error) as exc:
            raise HostFailure(f"connection lost: {_reason(exc)}") from None
        result = CommandResult(
            done.exit_status if done.exit_status is not None else -1,
            _text(done.stdout),
            _text(done.stderr),
        )
        if check and result.exit_status != 0:
            tail = (result.stderr.strip() or result.stdout.strip())[-600:]
            raise HostFailure(f"`{shorten(command)}` failed ({result.exit_status}): {tail}")
        return result

    async def sftp(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = await self.conn.start_sftp_client()
            except (OSError, asyncssh.Error) as exc:
                raise HostFailure(f"no SFTP: {_reason(exc)}") from None
        return self._sftp

    async def put(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy a local file to `remote` (written beside it, then renamed: a reader never
        sees half a file), with `mode`."""
        sftp = await self.sftp()
        partial = f"{remote}.part"
        try:
            await sftp.put(str(local), partial)
            await sftp.chmod(partial, mode)
            await sftp.posix_rename(partial, remote)
        except (OSError, asyncssh.Error) as exc:
            raise HostFailure(f"cannot copy {local.name} to {remote}: {_reason(exc)}") from None

    async def write_bytes(self, remote: str, data: bytes, mode: int = 0o644) -> None:
        sftp = await self.sftp()
        partial = f"{remote}.part"
        try:
            async with sftp.open(partial, "wb", attrs=asyncssh.SFTPAttrs(permissions=mode)) as fh:
                await fh.write(data)
            await sftp.chmod(partial, mode)
            await sftp.posix_rename(partial, remote)
        except (OSError, asyncssh.Error) as exc:
            raise HostFailure(f"cannot write {remote}: {_reason(exc)}") from None

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()


@contextlib.asynccontextmanager
async def connect(host: HostConfig, settings: DeployConfig) -> AsyncIterator[HostLink]:
    """An SSH connection to `host` as its user with its key (none given: the SSH
    agent's and ~/.ssh's), its host key checked against `deploy.known_hosts`."""
    await _trust_on_first_use(host, settings)
    keys = [os.path.expanduser(host.key)] if host.key else []
    if keys and not os.path.isfile(keys[0]):
        raise HostFailure(f"no SSH key file {host.key} (inventory key of {host.name})")
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                host.address, host.ssh_port, username=host.user,
                client_keys=keys or (), agent_path=None if keys else (),
                known_hosts=str(Path(settings.known_hosts).expanduser()),
                connect_timeout=settings.connect_timeout_s,
                keepalive_interval=15, config=None,
            ),
            settings.connect_timeout_s + 5,
        )  # fmt: skip
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise HostFailure(_reason(exc)) from None
    link = HostLink(host, conn)
    try:
        yield link
    finally:
        await link.close()


def q(path: str) -> str:
    """A remote path or argument, quoted for the host's shell."""
    return shlex.quote(path)


def shell_path(path: str) -> str:
    """A path for the host's shell with a leading `~` left to it (`"$HOME"/...`); the
    rest quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def shorten(command: str, chars: int = 120) -> str:
    command = " ".join(command.split())
    return command if len(command) <= chars else command[: chars - 1] + "…"


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
