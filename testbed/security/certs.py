"""The bench's certificate authority and one certificate per node (docs/security.md).

Everything is ECDSA P-256 signed with SHA-256, written under `security.certs_dir`:
`ca.pem` and `ca.key` (the CA; its key never leaves the coordinator's machine) and per
node `<node_id>.pem` / `<node_id>.key`. A node's certificate carries its id as the
subject's common name, as the SAN URI `urn:testbed:node:<id>` and as a DNS SAN (what a
client that means to reach that node checks, testbed/security/credentials.py), its
role as the SAN URI `urn:testbed:role:<role>`, and its host's addresses as IP or DNS
SANs; it is good for both ends of a call (server and client auth).

Private keys are written 0600 (never readable by anyone else, not even for a moment:
created with that mode, then renamed into place); the folder is 0700. An existing
CA is never replaced unless asked (`force`): its node certificates would all stop
verifying. Needs `cryptography` (the coordinator extra).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.config import TestbedConfig
from testbed.config.testbed_config import CLOUD_ID
from testbed.security.credentials import CA_KEY_FILE, ca_cert_path, cert_path, host_of, key_path
from testbed.security.roles import COORDINATOR_ID, NODE_URI_PREFIX, ROLE_URI_PREFIX, Role

CA_VALIDITY_DAYS = 3650
"""Ten years: the CA outlives many benches' certificates."""
NODE_VALIDITY_DAYS = 365
"""A year: `testbed certs list` shows what expires, `issue` renews."""
RENEW_WITHIN_DAYS = 30
"""`issue` keeps a certificate that is still good for longer than this."""
CLOCK_SKEW = dt.timedelta(minutes=5)
"""Certificates start this much in the past: a host whose clock is a little behind
still accepts them (deploy refuses hosts whose clocks are further off)."""


class CertsError(Exception):
    """A certificate operation that cannot be done; the message says why and what to do."""


class CaExists(CertsError):
    """A CA is there already and replacing it was not asked for."""


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertificateFacts:
    """What `testbed certs list` shows of one certificate."""

    node_id: str
    role: str
    file: str
    sans: list[str]
    not_before: str
    not_after: str
    expires_in_days: float
    verifies: bool
    """Signed by the CA in the folder, valid now, and its key file matches it."""
    problem: str
    """Why it does not verify ('' when it does)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------- files


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with `mode` from the first byte on, atomically."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # daemons start unattended; the file mode guards it
    )
    _write(path, pem, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _folder(certs_dir: Path) -> Path:
    certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(certs_dir, 0o700)  # it holds the CA's key
    return certs_dir


# ---------------------------------------------------------------------- the CA


def create_ca(
    certs_dir: Path, *, force: bool = False, validity_days: int = CA_VALIDITY_DAYS
) -> CertificateAuthority:
    """A new CA in `certs_dir`; CaExists when one is there and `force` is not given."""
    cert_file, key_file = ca_cert_path(certs_dir), certs_dir / CA_KEY_FILE
    existing = [p.name for p in (cert_file, key_file) if p.exists()]
    if existing and not force:
        raise CaExists(
            f"a CA exists in {certs_dir} ({', '.join(existing)}): its certificates stay valid. "
            "`testbed certs init --force` replaces it, and every certificate must then be "
            "issued again (`testbed certs issue --all`)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "testbed"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"testbed CA {uuid.uuid4().hex[:8]}"),
    ])  # fmt: skip
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _folder(certs_dir)
    _write_key(key_file, key)
    _write_cert(cert_file, cert)
    return CertificateAuthority(cert, key)


def load_ca(certs_dir: Path) -> CertificateAuthority:
    """The CA of `certs_dir`; CertsError saying how to make one when it is missing."""
    cert_file, key_file = ca_cert_path(certs_dir), certs_dir / CA_KEY_FILE
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise CertsError(f"no CA in {certs_dir} ({exc.filename} is missing): run "
                         "`testbed certs init`") from None  # fmt: skip
    except ValueError as exc:
        raise CertsError(f"the CA in {certs_dir} cannot be read: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{key_file} is not an ECDSA key")
    return CertificateAuthority(cert, key)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


# ---------------------------------------------------------------------- node certificates


DNS_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)
"""A host name as a certificate may name it: RFC 1123 labels, with the underscores
internal names sometimes have."""


def address_problem(address: str) -> str | None:
    """Why `address` cannot be a certificate's subject alternative name, or None."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not DNS_NAME.fullmatch(address):
            return f"expected an IP address or a DNS name, got {address!r}"
    return None


def subject_alt_names(node_id: str, role: Role, addresses: list[str]) -> list[x509.GeneralName]:
    """The node URI, the role URI, the node id as a DNS name, then each address as an
    IP address or a DNS name (unspecified addresses such as 0.0.0.0 left out)."""
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_id),
        x509.UniformResourceIdentifier(ROLE_URI_PREFIX + role.value),
        x509.DNSName(node_id),
    ]
    for address in dict.fromkeys(a.strip() for a in addresses if a.strip()):
        problem = address_problem(address)
        if problem:
            raise CertsError(f"{node_id}'s address: {problem}")
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            if address != node_id:
                names.append(x509.DNSName(address))
            continue
        if not ip.is_unspecified:
            names.append(x509.IPAddress(ip))
    return names


def issue(
    ca: CertificateAuthority, certs_dir: Path, node_id: str, role: Role, addresses: list[str],
    *, validity_days: int = NODE_VALIDITY_DAYS, now: dt.datetime | None = None,
) -> Path:  # fmt: skip
    """Make node `node_id`'s key and certificate in `certs_dir`, valid from `now` (default:
    the clock) for `validity_days`; the certificate's path."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = now or _now()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "testbed"),
        x509.NameAttribute(NameOID.COMMON_NAME, node_id),
    ])  # fmt: skip
    both_ends = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = x509.SubjectAlternativeName(subject_alt_names(node_id, role, addresses))
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(both_ends), critical=False)
        .add_extension(sans, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    _folder(certs_dir)
    _write_key(key_path(certs_dir, node_id), key)
    path = cert_path(certs_dir, node_id)
    _write_cert(path, cert)
    return path


def still_good(
    ca: CertificateAuthority, certs_dir: Path, node_id: str, role: Role, addresses: list[str]
) -> bool:
    """Whether node `node_id`'s certificate verifies, names this role and exactly these
    addresses, and is good for more than RENEW_WITHIN_DAYS: `issue` need not replace it."""
    path = cert_path(certs_dir, node_id)
    if not path.exists():
        return False
    facts = describe(path, ca.certificate)
    want = [_san_text(n) for n in subject_alt_names(node_id, role, addresses)]
    return (facts.verifies and facts.role == role.value and facts.sans == want
            and facts.expires_in_days > RENEW_WITHIN_DAYS)  # fmt: skip


# ---------------------------------------------------------------------- reading them


def _san_text(name: x509.GeneralName) -> str:
    kind = {x509.UniformResourceIdentifier: "URI", x509.DNSName: "DNS", x509.IPAddress: "IP"}
    return f"{kind.get(type(name), type(name).__name__)}:{name.value}"


def _problem(cert: x509.Certificate, ca: x509.Certificate | None, key_file: Path) -> str:
    """Why `cert` does not verify against `ca` now ('' when it does)."""
    if ca is None:
        return "no CA (ca.pem) to check it against"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by this CA"
    now = _now()
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    if not key_file.exists():
        return f"its key {key_file.name} is missing"
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, OSError) as exc:
        return f"its key {key_file.name} cannot be read: {exc}"
    if key.public_key() != cert.public_key():
        return f"its key {key_file.name} is another certificate's"
    return ""


def describe(path: Path, ca: x509.Certificate | None) -> CertificateFacts:
    """The facts of the certificate in `path` (its key is `<stem>.key` beside it)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        sans = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    texts = [_san_text(n) for n in sans]
    uris = [str(n.value) for n in sans if isinstance(n, x509.UniformResourceIdentifier)]
    node = next((u.removeprefix(NODE_URI_PREFIX) for u in uris if u.startswith(NODE_URI_PREFIX)),
                path.stem)  # fmt: skip
    role = next((u.removeprefix(ROLE_URI_PREFIX) for u in uris if u.startswith(ROLE_URI_PREFIX)),
                "")  # fmt: skip
    problem = _problem(cert, ca, path.with_suffix(".key"))
    left = (cert.not_valid_after_utc - _now()).total_seconds() / 86400
    return CertificateFacts(
        node_id=node, role=role, file=str(path), sans=texts,
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        expires_in_days=round(left, 2), verifies=not problem, problem=problem,
    )  # fmt: skip


@dataclass(frozen=True)
class CaFacts:
    """What `testbed certs list` shows of the CA."""

    file: str
    subject: str
    not_after: str
    expires_in_days: float


def describe_ca(certs_dir: Path) -> CaFacts | None:
    """The CA certificate of `certs_dir`; None when there is none."""
    path = ca_cert_path(certs_dir)
    if not path.exists():
        return None
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    left = (cert.not_valid_after_utc - _now()).total_seconds() / 86400
    return CaFacts(str(path), cert.subject.rfc4514_string(),
                   cert.not_valid_after_utc.isoformat(), round(left, 2))  # fmt: skip


def list_certificates(certs_dir: Path) -> list[CertificateFacts]:
    """Every node certificate in `certs_dir` (not the CA's), by node id, each checked
    against the folder's CA."""
    ca_file = ca_cert_path(certs_dir)
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes()) if ca_file.exists() else None
    out = []
    for path in sorted(p for p in certs_dir.glob("*.pem") if p != ca_file):
        try:
            out.append(describe(path, ca))
        except ValueError as exc:
            out.append(CertificateFacts(path.stem, "", str(path), [], "", "", 0.0, False,
                                        f"not a certificate: {exc}"))  # fmt: skip
    return out


# ---------------------------------------------------------------------- the bench's nodes


@dataclass(frozen=True)
class Issued:
    """What `issue_node` did for one node."""

    node_id: str
    role: Role
    path: Path
    kept: bool
    """The certificate there was still good (same role and addresses): left alone."""


def role_of(cfg: TestbedConfig, node_id: str) -> Role | None:
    """A node's role from the section its id is in (None: not a node of this bench)."""
    if node_id in (COORDINATOR_ID, Role.BROKER.value):
        return Role(node_id)
    if node_id == CLOUD_ID:
        return Role.CLOUD
    if node_id in {s.id for s in cfg.edge_specs()}:
        return Role.EDGE
    if node_id in {s.id for s in cfg.agent_specs()}:
        return Role.AGENT
    return None


def addresses_of(cfg: TestbedConfig, node_id: str) -> list[str]:
    """Where a node is reached: its inventory host's address on a bench of hosts, else
    the host it listens on (the coordinator: also the registry's addresses; the
    broker: its host and the host of `broker.url`)."""
    host = cfg.inventory.host_of(node_id)
    if host is not None:
        return [host.address]
    if node_id == COORDINATOR_ID:
        registry = (cfg.registry.listen, cfg.registry.advertise)
        return ["127.0.0.1", *(host_of(a) for a in registry if a)]
    if node_id == Role.BROKER.value:
        url_host = urlparse(cfg.broker.url).hostname if cfg.broker.url else None
        return [cfg.broker.host, *([url_host] if url_host else [])]
    listens = {CLOUD_ID: cfg.cloud.host} | {s.id: s.host for s in cfg.edge_specs()}
    listens |= {s.id: s.host for s in cfg.agent_specs()}
    return [listens.get(node_id, "127.0.0.1")]


def issue_node(
    cfg: TestbedConfig, node_id: str, *, role: Role | None = None,
    addresses: list[str] | None = None, force: bool = False,
) -> Issued:  # fmt: skip
    """Issue node `node_id`'s certificate with the CA of `security.certs_dir`, its role
    and addresses from the config unless given; a certificate still good for them is
    kept unless `force`. CertsError without a CA, or for a node the config lacks and
    no role was given for."""
    role = role or role_of(cfg, node_id)
    if role is None:
        known = ", ".join([COORDINATOR_ID, *cfg.node_ids()])
        raise CertsError(f"{node_id} is not a node of this bench (it has {known}): "
                         "give its --role to issue it anyway")  # fmt: skip
    certs_dir = Path(cfg.security.certs_dir)
    ca = load_ca(certs_dir)
    addresses = addresses if addresses else addresses_of(cfg, node_id)
    if not force and still_good(ca, certs_dir, node_id, role, addresses):
        return Issued(node_id, role, cert_path(certs_dir, node_id), kept=True)
    return Issued(node_id, role, issue(ca, certs_dir, node_id, role, addresses), kept=False)
