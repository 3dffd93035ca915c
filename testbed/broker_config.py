"""The broker's side of MQTT security, generated from the bench config: who may log in
(a password file of hashes), what each may publish and read (the ACL, per role), and
the TLS listener (the bench CA and a broker certificate). docs/security.md, "MQTT".

The ACL follows the topic tree (testbed/topics.py) and who owns what:

- the cloud publishes the catalog and every edge's model feed, reads fetch requests;
- edge e publishes `{p}/edge/e/state` and fetch requests, reads the catalog and its
  own feed only;
- agents publish nothing but their own node topics, read edge states and statuses;
- every node publishes only under its own `{p}/{b}/node/<id>/` (status: its last will
  too; telemetry) and its own events `{p}/{b}/events/<id>`; an agent also its own task
  records `{p}/{b}/tasks/<id>`;
- the coordinator reads everything and publishes only its own events;
- `monitor` (`testbed monitor`, `testbed exporter`) reads everything, publishes nothing.

With one shared account (`broker.username` set) there is nobody to tell apart: that
user may read and write the bench's whole tree `{p}/{b}/#`.

Mosquitto takes all of it. amqtt (the fallback when Mosquitto is not installed) takes
the passwords (argon2 hashes), the publish and subscribe ACL and TLS, but speaks only
MQTT 3.1.1 (a denied publish is dropped without a reason code) and does not check a
client's last will against the ACL itself (testbed/broker_amqtt.py does; docs/security.md
says what is left).
"""

from __future__ import annotations

import base64
import enum
import getpass
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from testbed.config import TestbedConfig
from testbed.mqtt_auth import (
    COORDINATOR_ID,
    MONITOR_ID,
    ensure_password_files,
    mqtt_secrets_dir,
    node_password,
    node_username,
    write_secret_text,
)
from testbed.schema import Secret
from testbed.topics import Topics

MOSQUITTO_ITERATIONS = 101
"""PBKDF2 rounds of a Mosquitto `$7$` hash: mosquitto_passwd's own default."""
MOSQUITTO_SALT_BYTES = 12
BROKER_CERT_ID = "broker"
"""The broker certificate's name in `security.certs_dir` (broker.pem / broker.key)."""


class Access(enum.StrEnum):
    """What an ACL rule allows on a topic (Mosquitto's words)."""

    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"


@dataclass(frozen=True)
class AclRule:
    access: Access
    topic: str


Acl = dict[str, list[AclRule]]
"""Username -> the topics it may use; a username not listed may use none."""


def _own_node_topics(topics: Topics, node_id: str) -> list[AclRule]:
    return [
        AclRule(Access.WRITE, topics.status(node_id)),
        AclRule(Access.WRITE, topics.telemetry(node_id)),
        AclRule(Access.WRITE, topics.events(node_id)),
    ]


def cloud_rules(topics: Topics, cloud_id: str) -> list[AclRule]:
    return [
        AclRule(Access.READWRITE, topics.catalog),
        AclRule(Access.READ, topics.fetch_requests),
        AclRule(Access.WRITE, topics.feed("+")),
        *_own_node_topics(topics, cloud_id),
    ]


def edge_rules(topics: Topics, edge_id: str) -> list[AclRule]:
    return [
        AclRule(Access.READ, topics.catalog),
        AclRule(Access.WRITE, topics.fetch_requests),
        AclRule(Access.READ, topics.feed(edge_id)),
        AclRule(Access.READWRITE, topics.edge_state(edge_id)),
        *_own_node_topics(topics, edge_id),
    ]


def agent_rules(topics: Topics, agent_id: str) -> list[AclRule]:
    return [
        AclRule(Access.READ, topics.all_edge_states),
        AclRule(Access.READ, topics.status("+")),
        AclRule(Access.READ, topics.catalog),
        AclRule(Access.WRITE, topics.tasks(agent_id)),
        *_own_node_topics(topics, agent_id),
    ]


def bench_acl(cfg: TestbedConfig) -> Acl:
    """Every username of the bench and what it may do (see the module docstring)."""
    topics = Topics.of(cfg)
    if cfg.broker.username:  # one shared account: nobody to tell apart
        return {cfg.broker.username: [AclRule(Access.READWRITE, topics.everything)]}
    acl: Acl = {"cloud": cloud_rules(topics, "cloud")}
    acl.update({s.id: edge_rules(topics, s.id) for s in cfg.edge_specs()})
    acl.update({s.id: agent_rules(topics, s.id) for s in cfg.agent_specs()})
    acl[COORDINATOR_ID] = [
        AclRule(Access.READ, topics.everything),
        AclRule(Access.WRITE, topics.events(COORDINATOR_ID)),
    ]
    acl[MONITOR_ID] = [AclRule(Access.READ, topics.everything)]
    return acl


def bench_usernames(cfg: TestbedConfig) -> list[str]:
    """Every username a node of the bench (or the coordinator) logs in with."""
    ids = [*cfg.node_ids(), COORDINATOR_ID, MONITOR_ID]
    return list(dict.fromkeys(u for u in (node_username(cfg, n) for n in ids) if u))


def bench_passwords(cfg: TestbedConfig) -> dict[str, Secret]:
    """Username -> the password that node will send: the conventional password files
    (made where missing), or the one password the config gives every node."""
    ids = [*cfg.node_ids(), COORDINATOR_ID, MONITOR_ID]
    if not cfg.broker.password and not cfg.broker.password_file:
        return ensure_password_files(cfg, bench_usernames(cfg))
    out: dict[str, Secret] = {}
    for node_id in ids:
        username, password = node_username(cfg, node_id), node_password(cfg, node_id)
        if username and password:
            out[username] = password
    return out


# ---------------------------------------------------------------------- hashes


def mosquitto_hash(password: Secret, salt: bytes | None = None) -> str:
    """Mosquitto's `$7$` entry (PBKDF2-HMAC-SHA512, as mosquitto_passwd writes it):
    made here so that no password ever sits on mosquitto_passwd's command line."""
    salt = salt if salt is not None else secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.reveal().encode(), salt, MOSQUITTO_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${MOSQUITTO_ITERATIONS}${b64(salt).decode()}${b64(key).decode()}"


def argon2_hash(password: Secret) -> str:
    """An argon2 hash, what amqtt's FileAuthPlugin verifies (pwdlib, amqtt's own)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(),)).hash(password.reveal())


# ---------------------------------------------------------------------- TLS


class BrokerCertificateError(Exception):
    """The broker's certificate cannot be made: no bench CA, or one that cannot be read."""


@dataclass(frozen=True)
class BrokerTls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def broker_certificate(cfg: TestbedConfig, addresses: list[str]) -> BrokerTls:
    """The broker's certificate from the bench CA (`security.certs_dir`), issued or
    renewed when it does not name these addresses or is about to expire. Needs the
    CA's key: the broker runs where the coordinator keeps it. BrokerCertificateError
    (saying to run `testbed certs init`) when there is no CA."""
    from testbed.security.certs import CertsError, issue, load_ca, still_good
    from testbed.security.credentials import ca_cert_path, cert_path, key_path
    from testbed.security.roles import Role

    certs_dir = Path(cfg.security.certs_dir)
    wanted = list(dict.fromkeys([*addresses, "127.0.0.1", "localhost"]))
    try:
        ca = load_ca(certs_dir)
        if not still_good(ca, certs_dir, BROKER_CERT_ID, Role.BROKER, wanted):
            issue(ca, certs_dir, BROKER_CERT_ID, Role.BROKER, wanted)
    except CertsError as exc:
        raise BrokerCertificateError(str(exc)) from None
    return BrokerTls(
        ca_cert_path(certs_dir),
        cert_path(certs_dir, BROKER_CERT_ID),
        key_path(certs_dir, BROKER_CERT_ID),
    )


# ---------------------------------------------------------------------- what a broker gets


@dataclass(frozen=True)
class BrokerSecurity:
    """What the embedded broker enforces: logins and the ACL (None: anonymous, as
    before) and a TLS listener (None: plaintext). `secrets_dir` holds the generated
    password file (0600), never a run folder."""

    passwords: dict[str, Secret] | None
    acl: Acl | None
    tls: BrokerTls | None
    secrets_dir: Path

    @property
    def tags(self) -> str:
        """What a description of the broker says of it: "auth, ACL, TLS"."""
        parts = {"auth": self.passwords is not None, "ACL": self.acl is not None,
                 "TLS": self.tls is not None}  # fmt: skip
        return ", ".join(name for name, on in parts.items() if on)


def broker_cert_addresses(cfg: TestbedConfig, bind_host: str) -> list[str]:
    """Where nodes reach the embedded broker: its bind address and `broker.url`'s host."""
    url_host = urlparse(cfg.broker.url).hostname if cfg.broker.url else None
    return [bind_host, *([url_host] if url_host else [])]


def bench_broker_security(cfg: TestbedConfig, bind_host: str) -> BrokerSecurity | None:
    """What the bench's embedded broker, bound to `bind_host`, enforces (None: nothing,
    the local default)."""
    auth, tls = cfg.broker.auth, cfg.broker.tls.enabled
    if not auth and not tls:
        return None
    return BrokerSecurity(
        passwords=bench_passwords(cfg) if auth else None,
        acl=bench_acl(cfg) if auth else None,
        tls=broker_certificate(cfg, broker_cert_addresses(cfg, bind_host)) if tls else None,
        secrets_dir=mqtt_secrets_dir(cfg),
    )


def mosquitto_acl(acl: Acl) -> str:
    lines = ["# Generated by the testbed from the bench config (testbed/broker_config.py)."]
    for username, rules in acl.items():
        lines += ["", f"user {username}", *(f"topic {r.access.value} {r.topic}" for r in rules)]
    return "\n".join(lines) + "\n"


def mosquitto_conf(
    host: str, port: int, workdir: Path, security: BrokerSecurity | None
) -> list[str]:
    """The lines of a `mosquitto.conf` (the password file and ACL written beside it
    or, for the hashes, in `security.secrets_dir`). Non-persistent: the bench's
    retained values are said again by their owners on every reconnect."""
    lines = [
        f"listener {port} {host}",
        # Stay the user we are: mosquitto started as root would switch to its own
        # user, which clears the parent-death signal.
        f"user {getpass.getuser()}",
        "persistence false",
        "max_inflight_messages 64",
        "max_queued_messages 10000",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if security is None:
        return [*lines, "allow_anonymous true"]
    if security.tls is not None:
        # No tls_version: Mosquitto 2 then takes TLS 1.2 and 1.3, nothing older. No
        # Nagle: TLS writes 16 KiB records, each a "small" segment on loopback (MSS
        # 64 KiB), held until the last one is acknowledged: +40 ms per model fetch.
        lines += [f"cafile {security.tls.ca_file}", f"certfile {security.tls.cert_file}",
                  f"keyfile {security.tls.key_file}", "set_tcp_nodelay true"]  # fmt: skip
    if security.passwords is None:
        return [*lines, "allow_anonymous true"]
    passwd = security.secrets_dir / "broker-mosquitto.passwd"
    entries = (f"{user}:{mosquitto_hash(pw)}" for user, pw in security.passwords.items())
    write_secret_text(passwd, "\n".join(entries) + "\n")
    lines += ["allow_anonymous false", f"password_file {passwd.resolve()}"]
    if security.acl is not None:
        acl_file = workdir / "mosquitto.acl"
        acl_file.write_text(mosquitto_acl(security.acl))
        lines.append(f"acl_file {acl_file.resolve()}")
    return lines


def amqtt_config(host: str, port: int, security: BrokerSecurity | None) -> dict[str, Any]:
    """amqtt's broker config: a listener (TLS when asked), anonymous or password logins,
    the publish and subscribe ACL."""
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}"}
    if security is not None and security.tls is not None:
        listener.update(ssl=True, cafile=str(security.tls.ca_file),
                        certfile=str(security.tls.cert_file),
                        keyfile=str(security.tls.key_file))  # fmt: skip
    plugins: dict[str, Any] = {}
    if security is None or security.passwords is None:
        plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"] = {"allow_anonymous": True}
    else:
        passwd = security.secrets_dir / "broker-amqtt.passwd"
        entries = (f"{user}:{argon2_hash(pw)}" for user, pw in security.passwords.items())
        write_secret_text(passwd, "\n".join(entries) + "\n")
        plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {"password_file": str(passwd)}
    if security is not None and security.acl is not None:
        publish_acl = _amqtt_acl(security.acl, Access.WRITE)
        plugins["amqtt.plugins.topic_checking.TopicAccessControlListPlugin"] = {
            "acl": _amqtt_acl(security.acl, Access.READ),
            "publish_acl": publish_acl,
        }
        plugins["testbed.broker_amqtt.LastWillCheck"] = {"publish_acl": publish_acl}
    return {"listeners": {"default": listener}, "plugins": plugins}


def _amqtt_acl(acl: Acl, access: Access) -> dict[str, list[str]]:
    allowed = {access, Access.READWRITE}
    return {user: [r.topic for r in rules if r.access in allowed] for user, rules in acl.items()}
