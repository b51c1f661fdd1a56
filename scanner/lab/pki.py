"""The lab's certificates, made fresh at every start: a root CA that plays the public
roots, an inspection CA that plays a TLS-inspecting proxy's, and leaves issued by them.

EC P-256 keys: a dozen hosts cost milliseconds. Nothing here is secret or persistent.
"""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_NAME = "scanner lab root CA"
INSPECTION_NAME = "scanner lab inspection CA"
WRONG_HOST = "wrong-host.scanner-lab.test"


@dataclass(frozen=True, slots=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scanner lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_authority(common_name: str, now: datetime | None = None) -> Authority:
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(ca: Authority, names: list[str], *, not_before: datetime, not_after: datetime
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for `names` (host names or IP literals)."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def server_context(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
                   folder: Path) -> ssl.SSLContext:
    """A server-side context for one certificate (ssl loads keys from files only)."""
    handle = tempfile.NamedTemporaryFile(dir=folder, suffix=".pem", delete=False)  # noqa: SIM115
    with handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(handle.name)
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass(slots=True)
class LabPki:
    """The lab's two authorities and the files a client needs to trust them."""

    folder: Path
    root: Authority = field(default_factory=lambda: make_authority(ROOT_NAME))
    inspection: Authority = field(default_factory=lambda: make_authority(INSPECTION_NAME))
    _contexts: dict[tuple[str, str], ssl.SSLContext] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The lab's world: its root is the public one; a corporate machine trusts the
        # inspection CA as well, since it was installed there.
        self.public_roots.write_bytes(self.root.pem)
        self.trust_store.write_bytes(self.root.pem + self.inspection.pem)

    @property
    def public_roots(self) -> Path:
        return self.folder / "public-roots.pem"

    @property
    def trust_store(self) -> Path:
        return self.folder / "trust-store.pem"

    def context(self, name: str, kind: str = "good") -> ssl.SSLContext:
        """A server context for `name`: `good`, `expired`, `wrong_host` (issued by the root)
        or `inspection` (issued by the inspection CA)."""
        key = (name, kind)
        if key not in self._contexts:
            now = datetime.now(UTC)
            ca = self.inspection if kind == "inspection" else self.root
            names = [WRONG_HOST] if kind == "wrong_host" else [name]
            if kind == "expired":
                start, end = now - timedelta(days=90), now - timedelta(days=2)
            else:
                start, end = now - timedelta(days=1), now + timedelta(days=90)
            cert, private = issue(ca, names, not_before=start, not_after=end)
            self._contexts[key] = server_context(cert, private, self.folder)
        return self._contexts[key]
