"""The bench's CA and node certificates (testbed/security/certs.py): what they carry,
who may read their keys, when they expire, and `testbed certs` on top of them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coordinator.cli import main
from testbed.config import config_from_dict
from testbed.exit_codes import ExitCode
from testbed.security import certs
from testbed.security.roles import Role


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_node_certificate_names_its_node_role_and_addresses(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path)
    path = certs.issue(ca, tmp_path, "edge-0", Role.EDGE,
                       ["198.18.0.2", "gpu1.lab", "0.0.0.0", "::1", "198.18.0.2"])  # fmt: skip
    cert = _load(path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-0"
    assert cert.issuer == ca.certificate.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:testbed:node:edge-0", "urn:testbed:role:edge",
    ]  # fmt: skip
    assert san.get_values_for_type(x509.DNSName) == ["edge-0", "gpu1.lab"]
    assert san.get_values_for_type(x509.IPAddress) == [  # 0.0.0.0 is no address to reach
        ipaddress.ip_address("198.18.0.2"), ipaddress.ip_address("::1"),
    ]  # fmt: skip
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.certificate)


@pytest.mark.parametrize("address", ["not_an_ip!!", "a..b", "a" * 64, "two words", "x/y"])
def test_an_address_no_certificate_can_name_is_refused(
    tmp_path: Path, address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # such an address was written into the certificate as a DNS name
    ca = certs.create_ca(tmp_path)
    with pytest.raises(certs.CertsError, match="expected an IP address or a DNS name"):
        certs.issue(ca, tmp_path, "edge-0", Role.EDGE, [address])
    assert certs.address_problem("gpu_1.lab") is None  # internal names' underscores pass
    code = main(["certs", "issue", "edge-0", "--role", "edge", "--address", address])
    assert code == ExitCode.USAGE
    assert f"--address: expected an IP address or a DNS name, got {address!r}" in (
        capsys.readouterr().err
    )


def test_private_keys_are_0600_and_the_folder_0700(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    ca = certs.create_ca(folder)
    certs.issue(ca, folder, "agent-0", Role.AGENT, ["127.0.0.1"])
    assert _mode(folder) == 0o700
    assert _mode(folder / "ca.key") == 0o600 and _mode(folder / "agent-0.key") == 0o600
    assert _mode(folder / "ca.pem") == 0o644 and _mode(folder / "agent-0.pem") == 0o644
    assert b"PRIVATE KEY" in (folder / "agent-0.key").read_bytes()
    assert not list(folder.glob(".*.tmp")), "no temporary file left behind"


def test_validity_expiry_and_what_does_not_verify(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path)
    now = dt.datetime.now(dt.UTC)
    cert = _load(certs.issue(ca, tmp_path, "agent-0", Role.AGENT, ["127.0.0.1"]))
    assert abs(cert.not_valid_after_utc - now - dt.timedelta(days=365)) < dt.timedelta(minutes=1)
    assert now - cert.not_valid_before_utc >= certs.CLOCK_SKEW - dt.timedelta(seconds=5)
    ca_cert = ca.certificate
    assert ca_cert.not_valid_after_utc - now > dt.timedelta(days=3600)
    good = certs.describe(tmp_path / "agent-0.pem", ca_cert)
    assert good.verifies and good.problem == "" and 364 < good.expires_in_days <= 365
    long_ago = now - dt.timedelta(days=400)
    certs.issue(ca, tmp_path, "agent-1", Role.AGENT, ["127.0.0.1"], now=long_ago)
    expired = certs.describe(tmp_path / "agent-1.pem", ca_cert)
    assert not expired.verifies and expired.problem.startswith("expired on")
    assert not certs.still_good(ca, tmp_path, "agent-1", Role.AGENT, ["127.0.0.1"])
    other = tmp_path / "other"
    certs.issue(certs.create_ca(other), other, "agent-2", Role.AGENT, ["127.0.0.1"])
    foreign = certs.describe(other / "agent-2.pem", ca_cert)
    assert not foreign.verifies and foreign.problem == "not signed by this CA"
    (tmp_path / "agent-0.key").write_bytes((other / "agent-2.key").read_bytes())
    swapped = certs.describe(tmp_path / "agent-0.pem", ca_cert)
    assert not swapped.verifies and "another certificate's" in swapped.problem


def test_an_existing_ca_is_replaced_only_when_asked(tmp_path: Path) -> None:
    first = certs.create_ca(tmp_path)
    certs.issue(first, tmp_path, "cloud", Role.CLOUD, ["127.0.0.1"])
    with pytest.raises(certs.CaExists, match="--force"):
        certs.create_ca(tmp_path)
    assert certs.load_ca(tmp_path).certificate == first.certificate
    second = certs.create_ca(tmp_path, force=True)
    assert second.certificate != first.certificate
    (row,) = certs.list_certificates(tmp_path)
    assert row.node_id == "cloud" and not row.verifies  # signed by the CA that was replaced


def test_issue_node_takes_role_and_addresses_from_the_config_and_keeps_a_good_one(
    tmp_path: Path,
) -> None:
    cfg = config_from_dict({
        "edges": {"count": 1}, "agents": {"count": 1},
        "security": {"certs_dir": str(tmp_path)},
        "inventory": {"hosts": [
            {"name": "host-1", "address": "198.18.0.2", "nodes": ["cloud", "edge-0"]},
            {"name": "host-2", "address": "198.18.0.3", "nodes": ["agent-0"]},
        ]},
    })  # fmt: skip
    with pytest.raises(certs.CertsError, match="certs init"):
        certs.issue_node(cfg, "edge-0")
    certs.create_ca(tmp_path)
    first = certs.issue_node(cfg, "edge-0")
    assert first.role is Role.EDGE and not first.kept
    assert "IP:198.18.0.2" in certs.describe(first.path, None).sans
    again = certs.issue_node(cfg, "edge-0")
    assert again.kept and _load(again.path) == _load(first.path)
    moved = certs.issue_node(cfg, "edge-0", addresses=["198.18.0.9"])
    assert not moved.kept
    assert certs.role_of(cfg, "agent-0") is Role.AGENT and certs.role_of(cfg, "cloud") is Role.CLOUD
    assert certs.role_of(cfg, "coordinator") is Role.COORDINATOR
    assert certs.role_of(cfg, "edge-7") is None
    with pytest.raises(certs.CertsError, match="not a node of this bench"):
        certs.issue_node(cfg, "edge-7")
    assert certs.addresses_of(cfg, "agent-0") == ["198.18.0.3"]


def test_the_certs_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "certs"
    sets = ["--set", f"security.certs_dir={folder}", "--set", "agents.count=2",
            "--set", "edges.count=1"]  # fmt: skip
    assert main(["certs", "init", *sets]) == 0
    assert (folder / "coordinator.pem").exists()
    assert main(["certs", "init", *sets]) == ExitCode.ALREADY_EXISTS
    assert main(["certs", "issue", "--all", *sets]) == 0
    assert main(["certs", "issue", "edge-9", *sets]) == ExitCode.USAGE
    assert main(["certs", "issue", *sets]) == ExitCode.USAGE
    capsys.readouterr()
    assert main(["certs", "list", "--json", *sets]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["node_id"]: r for r in doc["certificates"]}
    assert set(rows) == {"coordinator", "cloud", "edge-0", "agent-0", "agent-1"}
    assert all(r["verifies"] for r in rows.values())
    assert rows["agent-1"]["role"] == "agent"
    assert "URI:urn:testbed:node:agent-1" in rows["agent-1"]["sans"]
    assert doc["ca"]["expires_in_days"] > 3600
