"""The embedded MQTT broker: Mosquitto when installed, else amqtt from PyPI.

`EmbeddedBroker.start(cfg, workdir)` runs the broker as its own process on loopback
and waits until it accepts MQTT connections; given a `BrokerSecurity`
(testbed/broker_config.py: `broker.auth`, `broker.tls.enabled`) it refuses anonymous
clients, applies the per-role ACL and listens with TLS only. `testbed-broker` runs
the amqtt broker in the foreground (what the launcher starts when Mosquitto is
absent), or with `-c FILE` the configured broker with the config's security, as a
service on a bench of hosts runs it.

Bare paho clients move 1 MiB QoS 1 messages about 4-5 times faster through Mosquitto
than through amqtt on this project's machine (docs/performance.md, benchmark 1
`model_fetch`, has the measured figures and the command), so `auto` prefers Mosquitto.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
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
from typing import Any

from testbed.broker_config import BrokerSecurity, amqtt_config, mosquitto_conf
from testbed.config import BrokerConfig, BrokerKind
from testbed.exit_codes import UsageArgumentParser, run_with_exit_codes

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
    security: BrokerSecurity | None = None

    @property
    def url(self) -> str:
        tls = self.security is not None and self.security.tls is not None
        return f"{'mqtts' if tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def description(self) -> str:
        tags = f" ({self.security.tags})" if self.security is not None else ""
        return f"{self.kind.value}{' ' + self.version if self.version else ''} at {self.url}{tags}"

    @classmethod
    def start(
        cls,
        cfg: BrokerConfig,
        workdir: Path,
        *,
        kind: BrokerKind | None = None,
        timeout_s: float = 20.0,
        die_with_parent: bool = False,
        security: BrokerSecurity | None = None,
    ) -> EmbeddedBroker:
        """Start the configured embedded broker in `workdir` (its config and log go
        there; generated password hashes go to `security.secrets_dir`)."""
        kind = resolve_kind(kind or cfg.embedded)
        workdir.mkdir(parents=True, exist_ok=True)
        host = cfg.host
        # Checked first: the readiness probe below would connect to whatever holds it.
        if cfg.port and port_in_use(host, cfg.port):
            raise BrokerPortInUse(f"{host}:{cfg.port} (broker.port) is already taken")
        port = cfg.port or free_port(host)
        log_path = workdir / f"broker-{kind.value}.log"
        logf = open(log_path, "ab")  # noqa: SIM115 - the child owns it
        cmd, version = broker_command(kind, host, port, workdir, security)
        setpriv = shutil.which("setpriv")
        if kind is BrokerKind.MOSQUITTO and die_with_parent and setpriv:
            cmd = [setpriv, "--pdeathsig", "KILL", *cmd]  # util-linux: dies with the coordinator
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
        broker = cls(kind, host, port, proc, log_path, version, security=security)
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


def broker_command(
    kind: BrokerKind, host: str, port: int, workdir: Path, security: BrokerSecurity | None
) -> tuple[list[str], str]:
    """The command line of a `kind` broker on host:port, its config written in
    `workdir`, and the broker's version. The command line never holds a secret."""
    if kind is BrokerKind.MOSQUITTO:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise BrokerStartError("broker.embedded is mosquitto but no mosquitto on PATH")
        conf = workdir / "mosquitto.conf"
        conf.write_text("\n".join([*mosquitto_conf(host, port, workdir, security), ""]))
        return [binary, "-c", str(conf)], _mosquitto_version(binary)
    if security is None:
        cmd = [sys.executable, "-m", "testbed.broker", "--host", host, "--port", str(port)]
        return cmd, _amqtt_version()
    config = workdir / "amqtt.json"
    config.write_text(json.dumps(amqtt_config(host, port, security), indent=1))
    return [sys.executable, "-m", "testbed.broker", "--amqtt-config", str(config)], _amqtt_version()


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


def run_amqtt(host: str, port: int, config: dict[str, Any] | None = None) -> None:
    """Run an amqtt broker until SIGTERM/SIGINT: anonymous on host:port, or as
    `config` (testbed/broker_config.py: amqtt_config) says."""
    from amqtt.broker import Broker

    config = config or amqtt_config(host, port, None)
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


def _parser() -> argparse.ArgumentParser:
    parser = UsageArgumentParser(
        prog="testbed-broker",
        description="Run an MQTT broker in the foreground: anonymous amqtt on --host/--port, "
        "or with -c the configured broker (broker.embedded) with its logins, ACL and TLS.",
        epilog="examples:\n  testbed-broker --port 1883\n"
        "  testbed-broker -c testbed.yaml --dir /var/lib/testbed/broker --host 0.0.0.0 "
        "--port 8883",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", default=None, help="the bench's testbed YAML")
    parser.add_argument("--dir", default=".testbed/broker", help="where its config goes (-c)")
    parser.add_argument("--host", default=None, help="bind address (default broker.host)")
    parser.add_argument("--port", type=int, default=None, help="port (default broker.port)")
    parser.add_argument("--amqtt-config", default=None, help=argparse.SUPPRESS)  # the launcher's
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from testbed.daemon import exit_with_parent

    exit_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s broker: %(message)s")
    if args.amqtt_config:
        config = json.loads(Path(args.amqtt_config).read_text())
        bind = config["listeners"]["default"]["bind"]
        print(f"amqtt {_amqtt_version()} listening on {bind} (pid {os.getpid()})", flush=True)
        run_amqtt("", 0, config)
        return 0
    if args.config:
        return run_with_exit_codes(lambda: _run_configured(args))
    host, port = args.host or "127.0.0.1", 1883 if args.port is None else args.port
    print(f"amqtt {_amqtt_version()} listening on {host}:{port} (pid {os.getpid()})", flush=True)
    run_amqtt(host, port)
    return 0


def _run_configured(args: argparse.Namespace) -> int:
    """The configured broker with the config's security, in the foreground: amqtt in
    this process, Mosquitto in its place (exec)."""
    from testbed.broker_config import BrokerCertificateError, bench_broker_security
    from testbed.config import load_config
    from testbed.exit_codes import ExitCode, TestbedExit

    cfg = load_config(args.config)
    host = args.host or cfg.broker.host
    port = args.port if args.port is not None else (cfg.broker.port or 1883)
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        security = bench_broker_security(cfg, host)
    except BrokerCertificateError as exc:
        raise TestbedExit(ExitCode.CERTIFICATE_INVALID, f"broker certificate: {exc}") from None
    kind = resolve_kind(cfg.broker.embedded)
    cmd, version = broker_command(kind, host, port, workdir, security)
    tags = f" ({security.tags})" if security is not None else ""
    print(f"{kind.value} {version} on {host}:{port}{tags} (pid {os.getpid()})", flush=True)
    if kind is BrokerKind.MOSQUITTO:
        os.execv(cmd[0], cmd)
    run_amqtt(host, port, json.loads((workdir / "amqtt.json").read_text()) if security else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
