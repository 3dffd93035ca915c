"""MQTT security without a broker: secrets never written, credentials moved out of the
broker URL, password files, the per-role ACL and the broker's generated files."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from coordinator.run_folder import write_config, write_manifest
from testbed.broker_config import (
    Access,
    Acl,
    BrokerSecurity,
    amqtt_config,
    bench_acl,
    bench_passwords,
    mosquitto_acl,
    mosquitto_conf,
    mosquitto_hash,
)
from testbed.config import ConfigError, TestbedConfig, config_from_dict
from testbed.mqtt_auth import (
    COORDINATOR_ID,
    MONITOR_ID,
    handed_password_args,
    node_broker_address,
    password_path,
    read_password_file,
)
from testbed.schema import REDACTED, Secret
from testbed.topics import Topics

PASSWORD = "hunter2-p@ss:word"
URL = "mqtt://bench:hunter2-p%40ss%3Aword@broker.lab:1884"


def _cfg(tmp_path: Path, **broker: object) -> TestbedConfig:
    return config_from_dict({
        "broker": broker, "security": {"certs_dir": str(tmp_path / "certs")},
        "edges": {"count": 2}, "agents": {"count": 2},
    })  # fmt: skip


# ---------------------------------------------------------------------- Secret


def test_a_secret_prints_and_dumps_redacted_and_reveals_on_demand() -> None:
    secret = Secret(PASSWORD)
    assert str(secret) == repr(secret) == f"{secret}" == f"{secret:>5}" == REDACTED
    assert "%s" % secret == REDACTED  # noqa: UP031 - the old formatting path too
    assert secret.reveal() == PASSWORD
    assert secret == Secret(PASSWORD) and secret != Secret("other") and secret != PASSWORD
    with pytest.raises(TypeError):  # never written as-is by accident
        json.dumps({"password": secret})
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump({"password": secret})


def test_credentials_in_the_url_move_out_of_it_at_load(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, url=URL)
    assert cfg.broker.url == "mqtt://broker.lab:1884"
    assert cfg.broker.username == "bench"
    assert cfg.broker.password == Secret(PASSWORD)
    assert PASSWORD not in repr(cfg)
    text = cfg.to_yaml()
    assert PASSWORD not in text and "hunter2" not in text and REDACTED in text
    assert config_from_dict(yaml.safe_load(text)).broker.password is None  # read back: none
    kept = config_from_dict(cfg.to_dict(keep_secrets=True))  # in memory: kept
    assert kept.broker.password == Secret(PASSWORD)
    assert cfg.to_dict()["broker"]["password"] == REDACTED


def test_even_a_url_that_does_not_parse_loses_its_password(tmp_path: Path) -> None:
    assert _cfg(tmp_path, url="mqtt://u:p@ss@h:1").broker.password == Secret("p@ss")
    with pytest.raises(ConfigError, match=r"broker\.url") as bad:
        _cfg(tmp_path, url="mqtt://u:hunter2@[::1")
    assert "hunter2" not in str(bad.value)
    with pytest.raises(ConfigError, match="expected mqtts://"):
        _cfg(tmp_path, url="mqtt://h:1", tls={"enabled": True})


def test_a_url_without_credentials_is_left_alone(tmp_path: Path) -> None:
    for url in ("mqtt://h:1883", "mqtts://[::1]:8883", "mqtt://h"):
        assert _cfg(tmp_path, url=url).broker.url == url


def test_the_run_folder_config_and_manifest_hold_no_secret(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, url=URL, password_file="/etc/testbed/pw")
    write_config(tmp_path, cfg)
    write_manifest(tmp_path, cfg, {"broker_url": cfg.broker.url, "config": cfg.to_dict()})
    for name in ("config.yaml", "manifest.json"):
        text = (tmp_path / name).read_text()
        assert "hunter2" not in text, name
        assert "/etc/testbed/pw" in text  # the path is no secret


def test_with_seed_keeps_the_password(tmp_path: Path) -> None:
    from coordinator.evaluation import with_seed

    assert with_seed(_cfg(tmp_path, url=URL), 3).broker.password == Secret(PASSWORD)


# ---------------------------------------------------------------------- password files


def test_password_files_are_made_private_and_read_back(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, auth=True)
    passwords = bench_passwords(cfg)
    assert set(passwords) == {
        "cloud", "edge-0", "edge-1", "agent-0", "agent-1", COORDINATOR_ID, MONITOR_ID
    }  # fmt: skip
    folder = password_path(cfg, "cloud").parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for user, password in passwords.items():
        path = password_path(cfg, user)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_password_file(path) == password
    assert len({p.reveal() for p in passwords.values()}) == len(passwords)  # one each
    assert bench_passwords(cfg) == passwords  # existing files are kept


def test_a_missing_or_open_password_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"broker\.password_file: .*no such file"):
        read_password_file(tmp_path / "nope.password")
    path = tmp_path / "open.password"
    path.write_text("secret\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert read_password_file(path).reveal() == "secret"
    assert "chmod 600" in caplog.text and "secret" not in caplog.text.replace(str(path), "")
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_password_file(path)


def test_a_node_logs_in_with_its_id_and_its_own_file(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, auth=True, protocol=5)
    bench_passwords(cfg)
    address = node_broker_address("mqtts://127.0.0.1:8883", cfg, "edge-1")
    assert address.username == "edge-1" and address.tls and address.protocol == 5
    assert address.password == read_password_file(password_path(cfg, "edge-1"))
    assert address.ca_file is None  # no bench CA yet: the system's CAs
    (tmp_path / "certs" / "ca.pem").write_text("x")
    assert node_broker_address("mqtts://h:1", cfg, "edge-1").ca_file.endswith("ca.pem")
    anonymous = node_broker_address("mqtt://h:1", _cfg(tmp_path), "edge-1")
    assert anonymous.username is None and anonymous.password is None


def test_the_launcher_hands_a_url_password_over_by_path(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, url=URL)
    args = handed_password_args(cfg)
    assert args[0] == "--set" and args[1].startswith("broker.password_file=")
    assert "hunter2" not in " ".join(args)
    path = Path(json.loads(args[1].split("=", 1)[1]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # What a node loads: the run's redacted config, then the --set.
    node_data = yaml.safe_load(cfg.to_yaml())
    node_data["broker"]["password_file"] = str(path)
    node_cfg = config_from_dict(node_data)
    address = node_broker_address(node_cfg.broker.url or "", node_cfg, "agent-0")
    assert address.username == "bench" and address.password == Secret(PASSWORD)
    assert handed_password_args(_cfg(tmp_path)) == []


# ---------------------------------------------------------------------- the ACL


def _matches(rule_topic: str, topic: str) -> bool:
    rule, parts = rule_topic.split("/"), topic.split("/")
    for i, part in enumerate(rule):
        if part == "#":
            return True
        if i >= len(parts) or part not in ("+", parts[i]):
            return False
    return len(rule) == len(parts)


def _may(acl: Acl, user: str, access: Access, topic: str) -> bool:
    return any(
        r.access in (access, Access.READWRITE) and _matches(r.topic, topic)
        for r in acl.get(user, [])
    )


def test_the_acl_gives_each_role_its_own_topics(tmp_path: Path) -> None:
    acl = bench_acl(_cfg(tmp_path, auth=True))
    t = Topics()
    w, r = Access.WRITE, Access.READ
    owned = {t.catalog: {"cloud"}, t.feed("edge-0"): {"cloud"}, t.feed("edge-1"): {"cloud"},
             t.edge_state("edge-0"): {"edge-0"}, t.edge_state("edge-1"): {"edge-1"},
             t.fetch_requests: {"edge-0", "edge-1"}}  # fmt: skip
    for node in ("cloud", "edge-0", "edge-1", "agent-0", "agent-1"):
        owned |= {t.status(node): {node}, t.telemetry(node): {node}, t.events(node): {node}}
    owned |= {t.tasks("agent-0"): {"agent-0"}, t.tasks("agent-1"): {"agent-1"}}
    owned |= {t.events(COORDINATOR_ID): {COORDINATOR_ID}}
    for topic, owners in owned.items():
        writers = {u for u in acl if _may(acl, u, w, topic)}
        assert writers == owners, topic
    assert _may(acl, "edge-0", r, t.feed("edge-0")) and not _may(acl, "edge-0", r, t.feed("edge-1"))
    assert _may(acl, "edge-0", r, t.catalog) and _may(acl, "cloud", r, t.fetch_requests)
    for agent in ("agent-0", "agent-1"):
        assert _may(acl, agent, r, t.all_edge_states) and _may(acl, agent, r, t.status("+"))
        assert not any(
            _may(acl, agent, w, x)
            for x in (t.catalog, t.feed("edge-0"), t.edge_state("edge-0"), t.fetch_requests)
        )
    assert _may(acl, COORDINATOR_ID, r, "testbed/default/#")
    assert not _may(acl, COORDINATOR_ID, w, t.catalog)
    # the watchers' login reads the whole tree and writes nothing at all
    assert _may(acl, MONITOR_ID, r, "testbed/default/#")
    assert all(rule.access is Access.READ for rule in acl[MONITOR_ID])


def test_the_acl_follows_the_bench_id(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, auth=True)
    acl = bench_acl(replace(cfg, telemetry=replace(cfg.telemetry, bench_id="lab-2")))
    assert _may(acl, "cloud", Access.WRITE, "testbed/lab-2/cloud/catalog")
    assert not _may(acl, "cloud", Access.WRITE, "testbed/default/cloud/catalog")
    assert _may(acl, COORDINATOR_ID, Access.READ, "testbed/lab-2/#")


def test_one_shared_account_may_use_the_whole_tree(tmp_path: Path) -> None:
    acl = bench_acl(_cfg(tmp_path, auth=True, username="bench", topic_prefix="lab"))
    assert list(acl) == ["bench"] and _may(acl, "bench", Access.WRITE, "lab/default/cloud/catalog")


# ---------------------------------------------------------------------- broker files


def test_mosquitto_hash_is_what_mosquitto_passwd_writes() -> None:
    salt = bytes(range(12))
    entry = mosquitto_hash(Secret("s3cret"), salt)
    _, seven, rounds, salt_b64, key_b64 = entry.split("$")
    assert (seven, rounds) == ("7", "101") and base64.b64decode(salt_b64) == salt
    want = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101)
    assert base64.b64decode(key_b64) == want
    assert mosquitto_hash(Secret("s3cret")) != mosquitto_hash(Secret("s3cret"))  # salted


def test_the_broker_files_keep_hashes_out_of_the_run_folder(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, auth=True)
    passwords = bench_passwords(cfg)
    secrets_dir = tmp_path / "certs" / "mqtt"
    security = BrokerSecurity(passwords, bench_acl(cfg), None, secrets_dir)
    workdir = tmp_path / "run" / "broker"
    workdir.mkdir(parents=True)
    lines = mosquitto_conf("127.0.0.1", 1883, workdir, security)
    assert "allow_anonymous false" in lines and "persistence false" in lines
    passwd = Path(next(x for x in lines if x.startswith("password_file")).split(" ", 1)[1])
    assert passwd.parent == secrets_dir.resolve() and stat.S_IMODE(passwd.stat().st_mode) == 0o600
    assert len(passwd.read_text().splitlines()) == len(passwords)
    acl_text = (workdir / "mosquitto.acl").read_text()
    assert acl_text == mosquitto_acl(security.acl or {}) and "user agent-0" in acl_text
    for password in passwords.values():
        assert password.reveal() not in passwd.read_text() + acl_text
    assert "allow_anonymous true" in mosquitto_conf("127.0.0.1", 1883, workdir, None)
    amqtt = amqtt_config("127.0.0.1", 1883, security)
    plugins = amqtt["plugins"]
    assert "amqtt.plugins.authentication.AnonymousAuthPlugin" not in plugins
    acl = plugins["amqtt.plugins.topic_checking.TopicAccessControlListPlugin"]
    assert Topics().catalog in acl["publish_acl"]["cloud"]
    assert Topics().catalog not in acl["publish_acl"]["agent-0"]
