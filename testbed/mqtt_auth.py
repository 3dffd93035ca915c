"""MQTT credentials: who connects as whom, with which password, read from which file.

The conventions (docs/security.md, "MQTT"): a node's username is its node id
(`broker.username` overrides it for every node: one shared account on an external
broker), its password lives in `<security.certs_dir>/mqtt/<node_id>.password` (0600,
in a 0700 folder; `broker.password_file` names another file). The broker's password
file and ACL are generated from these files (testbed/broker_config.py). A password is
held as a `Secret` (testbed/schema.py) and never travels in a config value, a log line
or a command line: each node reads its own file, on its own host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from testbed.config import ConfigError, TestbedConfig, split_url_credentials
from testbed.mqtt import BrokerAddress
from testbed.schema import Secret

log = logging.getLogger(__name__)

PASSWORD_BYTES = 32
"""Random bytes of a generated password (43 URL-safe characters)."""
PASSWORD_SUFFIX = ".password"
COORDINATOR_ID = "coordinator"
"""The coordinator's MQTT username, its node id everywhere (testbed/security/roles.py):
reads everything, publishes only its own events.

"""
MONITOR_ID = "monitor"
"""The username of `testbed monitor` and `testbed exporter`: reads the bench's whole
tree and may publish nothing, so the login a lab hands to whoever watches a bench
cannot speak for the coordinator or any node."""


def mqtt_secrets_dir(cfg: TestbedConfig) -> Path:
    """`<security.certs_dir>/mqtt`: the password files of every node, and the broker's."""
    return Path(cfg.security.certs_dir) / "mqtt"


def password_path(cfg: TestbedConfig, username: str) -> Path:
    """Where the password of `username` lives by convention."""
    return mqtt_secrets_dir(cfg) / f"{username}{PASSWORD_SUFFIX}"


def node_username(cfg: TestbedConfig, node_id: str) -> str | None:
    """The username `node_id` connects with: `broker.username`, else its node id when it
    has a password to give (auth on, a password or a password file), else anonymous."""
    broker = cfg.broker
    if broker.username:
        return broker.username
    if broker.auth or broker.password or broker.password_file:
        return node_id
    return None


def node_password_file(cfg: TestbedConfig, node_id: str) -> Path | None:
    """The file `node_id` reads its password from: `broker.password_file`, else the
    conventional one of its username (`<certs_dir>/mqtt/<username>.password`: required
    with auth on, used when present otherwise); None: no password file is used."""
    if cfg.broker.password_file:
        return Path(cfg.broker.password_file)
    username = node_username(cfg, node_id)
    if not username:
        return None
    path = password_path(cfg, username)
    return path if cfg.broker.auth or path.exists() else None


def node_password(cfg: TestbedConfig, node_id: str) -> Secret | None:
    """The password `node_id` connects with: the one the config holds in memory (from
    `broker.url` or `broker.password`), else its password file's; CONFIG_INVALID naming
    `broker.password_file` when that file is missing, empty or unreadable."""
    if cfg.broker.password:
        return cfg.broker.password
    path = node_password_file(cfg, node_id)
    return read_password_file(path) if path is not None else None


def read_password_file(path: Path, key: str = "broker.password_file") -> Secret:
    """The password in `path` (one line). A file others may read is used, with a
    warning: the bench still runs, the operator learns to fix the mode."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        why = "no such file (the launcher makes it when broker.auth is on; deploy copies it)"
        raise ConfigError([(key, f"{path}: {why}")]) from None
    except OSError as exc:
        raise ConfigError([(key, f"{path}: cannot read: {exc.strerror}")]) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by others (mode %o): chmod 600 it", path, mode & 0o777)
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError([(key, f"{path}: the file is empty")])
    return Secret(password)


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (0600, folder 0700), atomically:
    the file never exists with a wider mode, nor half written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_password_file(path: Path, password: Secret) -> None:
    write_secret_text(path, password.reveal() + "\n")


def write_secret_text(path: Path, text: str) -> None:
    """`write_private_file`, or CONFIG_INVALID naming `security.certs_dir` (where every
    secret file of the bench goes) when the folder cannot be written."""
    try:
        write_private_file(path, text)
    except OSError as exc:
        why = f"cannot write {path}: {exc.strerror or exc}"
        raise ConfigError([("security.certs_dir", why)]) from None


def new_password() -> Secret:
    return Secret(secrets.token_urlsafe(PASSWORD_BYTES))


def ensure_password_files(cfg: TestbedConfig, usernames: Iterable[str]) -> dict[str, Secret]:
    """The password of each of `usernames`, made (random, 0600) where its file is
    missing: the broker's password file is generated from these."""
    passwords: dict[str, Secret] = {}
    for username in usernames:
        path = password_path(cfg, username)
        if not path.exists():
            write_password_file(path, new_password())
            log.info("made the MQTT password file %s", path)
        passwords[username] = read_password_file(path, f"MQTT password of {username}")
    return passwords


def bench_ca_file(cfg: TestbedConfig) -> str | None:
    """The CA a client trusts for mqtts://: `broker.tls.ca_file`, else the bench CA
    (`<security.certs_dir>/ca.pem`) when it exists, else None (the system's CAs)."""
    if cfg.broker.tls.ca_file:
        return cfg.broker.tls.ca_file
    bench_ca = Path(cfg.security.certs_dir) / "ca.pem"
    return str(bench_ca) if bench_ca.is_file() else None


def node_broker_address(url: str, cfg: TestbedConfig, node_id: str) -> BrokerAddress:
    """How `node_id` reaches the broker at `url`: its username and password, TLS with
    the CA it trusts, the configured protocol. Credentials written into `url` itself (a
    `--broker` flag given by hand) come first."""
    clean, url_username, url_password = split_url_credentials(url)
    parsed = urlparse(clean)
    tls = parsed.scheme == "mqtts"
    return BrokerAddress(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or (8883 if tls else 1883),
        tls=tls,
        username=url_username or node_username(cfg, node_id),
        password=Secret(url_password) if url_password else node_password(cfg, node_id),
        ca_file=bench_ca_file(cfg) if tls else None,
        cert_file=cfg.broker.tls.cert_file,
        key_file=cfg.broker.tls.key_file,
        keepalive_s=cfg.broker.keepalive_s,
        protocol=cfg.broker.protocol,
    )


def handed_password_args(cfg: TestbedConfig) -> list[str]:
    """The flags that hand a node the password file of `handed_password_file` (none
    when the config holds no password): `--set broker.password_file=PATH`."""
    path = handed_password_file(cfg)
    return ["--set", f"broker.password_file={json.dumps(str(path))}"] if path else []


def handed_password_file(cfg: TestbedConfig) -> Path | None:
    """Where the launcher puts the one password the config holds in memory (from
    `broker.url` or `broker.password`) for the nodes it starts, which read it by path:
    `<certs_dir>/mqtt/<broker.username or shared>.password` (0600). None: the config
    holds none (each node reads its own file, if any)."""
    if not cfg.broker.password:
        return None
    path = password_path(cfg, cfg.broker.username or "shared")
    write_password_file(path, cfg.broker.password)
    return path.resolve()
