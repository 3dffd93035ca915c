"""The embedded MQTT broker: Mosquitto when installed, else amqtt from PyPI.

`EmbeddedBroker.start(cfg, workdir)` runs the broker as its own process on loopback
and waits until it accepts MQTT connections. `testbed-broker` runs the amqtt broker
in the foreground (what the launcher starts when Mosquitto is absent).

Bare paho clients move 1 MiB QoS 1 messages about 4-5 times faster through Mosquitto
than through amqtt on this project's machine (docs/performance.md, benchmark 1
`model_fetch`, has the measured figures and the command), so `auto` prefers Mosquitto.
"""

from __future__ import annotations

import asyncio
import errno
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.config import BrokerConfig, BrokerKind
from testbed.exit_codes import UsageArgumentParser

log = logging.getLogger(__name__)


class BrokerStartError(Exception):
    """The embedded broker did not come up."""


class BrokerPortInUse(BrokerStartError):
    """The configured `broker.port` is already taken (by another broker, or anything)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on (or holds) TCP `host:port`. A port in
    TIME_WAIT counts as free (SO_REUSEADDR), as it does for the servers we start; a
    host that is not this machine's cannot be checked here and counts as free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def resolve_kind(kind: BrokerKind) -> BrokerKind:
    """`auto` becomes mosquitto when its binary is on PATH, else amqtt."""
    if kind is BrokerKind.AUTO:
        return BrokerKind.MOSQUITTO if shutil.which("mosquitto") else BrokerKind.AMQTT
    return kind


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerStartError(f"broker exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerStartError(f"broker did not listen on {host}:{port} within {timeout_s:g} s")


@dataclass
class EmbeddedBroker:
    """A broker process owned by the coordinator (or a test)."""

    kind: BrokerKind
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    version: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def description(self) -> str:
        return f"{self.kind.value}{' ' + self.version if self.version else ''} at {self.url}"

    @classmethod
    def start(
        cls,
        cfg: BrokerConfig,
        workdir: Path,
        *,
        kind: BrokerKind | None = None,
        timeout_s: float = 20.0,
        die_with_parent: bool = False,
    ) -> EmbeddedBroker:
        """Start the configured embedded broker in `workdir` (its config and log go there)."""
        kind = resolve_kind(kind or cfg.embedded)
        workdir.mkdir(parents=True, exist_ok=True)
        host = cfg.host
        # Checked first: the readiness probe below would connect to whatever holds it.
        if cfg.port and port_in_use(host, cfg.port):
            raise BrokerPortInUse(f"{host}:{cfg.port} (broker.port) is already taken")
        port = cfg.port or free_port(host)
        log_path = workdir / f"broker-{kind.value}.log"
        logf = open(log_path, "ab")  # noqa: SIM115 - the child owns it
        if kind is BrokerKind.MOSQUITTO:
            binary = shutil.which("mosquitto")
            if binary is None:
                raise BrokerStartError("broker.embedded is mosquitto but no mosquitto on PATH")
            conf = workdir / "mosquitto.conf"
            conf.write_text(
                "\n".join(
                    [
                        f"listener {port} {host}",
                        "allow_anonymous true",
                        # Stay the user we are: mosquitto started as root would switch to
                        # its own user, which clears the parent-death signal.
                        f"user {getpass.getuser()}",
                        "persistence false",
                        "max_inflight_messages 64",
                        "max_queued_messages 10000",
                        "log_dest stdout",
                        "log_type error",
                        "log_type warning",
                        "log_type notice",
                        "",
                    ]
                )
            )
            cmd = [binary, "-c", str(conf)]
            setpriv = shutil.which("setpriv")
            if die_with_parent and setpriv:  # util-linux: SIGKILL if the coordinator dies
                cmd = [setpriv, "--pdeathsig", "KILL", *cmd]
            version = _mosquitto_version(binary)
        else:
            cmd = [sys.executable, "-m", "testbed.broker", "--host", host, "--port", str(port)]
            version = _amqtt_version()
        proc = subprocess.Popen(
            cmd,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={
                **os.environ,
                **({"TESTBED_PARENT_PID": str(os.getpid())} if die_with_parent else {}),
            },
        )
        logf.close()
        broker = cls(kind, host, port, proc, log_path, version)
        try:
            wait_for_port(host, port, timeout_s, proc)
        except BrokerStartError as exc:
            broker.stop()
            tail = log_path.read_text(errors="replace")[-800:]
            raise BrokerStartError(f"{kind.value}: {exc}\n{tail}") from None
        log.info("embedded MQTT broker: %s (pid %d)", broker.description, proc.pid)
        return broker

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mosquitto_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    first = out.splitlines()[0] if out else ""
    return first.split("version", 1)[-1].strip() if "version" in first else ""


def _amqtt_version() -> str:
    try:
        from importlib.metadata import version

        return version("amqtt")
    except Exception:
        return ""


# ---------------------------------------------------------------------- amqtt runner


def run_amqtt(host: str, port: int) -> None:
    """Run an anonymous amqtt broker on host:port until SIGTERM/SIGINT."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("amqtt").setLevel(logging.WARNING)

    async def serve() -> None:
        broker = Broker(config)
        await broker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())


def main(argv: list[str] | None = None) -> int:
    parser = UsageArgumentParser(
        prog="testbed-broker", description="Run the embedded amqtt MQTT broker."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    from testbed.daemon import exit_with_parent

    exit_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s broker: %(message)s")
    print(
        f"amqtt {_amqtt_version()} listening on {args.host}:{args.port} (pid {os.getpid()})",
        flush=True,
    )
    run_amqtt(args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
