"""Certificate analysis without network I/O: the chain as sent, verified against root sets.

The TLS probe hands over the DER chain and the time; this module says whether the
chain is trusted, by which root, whether that root is a public one or pinned, whether
the dates and the host name fit, and so whether a proxy is inspecting the traffic.
Verification uses `cryptography`'s web PKI verifier, so it never depends on how the
handshake itself was configured (the probe handshakes without verification to see
every chain, however bad).
"""

from __future__ import annotations

import ipaddress
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.general_name import DNSName, IPAddress
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from scanner.errors import UsageError
from scanner.models import CertInfo, TlsResult, TlsStatus

MAX_CHAIN = 10  # certificates kept from the chain as sent


@dataclass(frozen=True, slots=True)
class Roots:
    """A set of trust anchors, with where they came from (for messages)."""

    origin: str
    certs: tuple[x509.Certificate, ...]

    @property
    def store(self) -> Store | None:
        return Store(list(self.certs)) if self.certs else None


@dataclass(frozen=True, slots=True)
class Trust:
    """What the TLS stage verifies against: the trust store, and the public roots that
    tell a private (inspection) root from a public one (None: no such check)."""

    store: Roots
    public: Roots | None


def load_roots(path: str | Path, what: str = "--ca-file") -> Roots:
    """Every PEM certificate in `path`; UsageError when unreadable or empty."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():  # old roots with odd serials, in public bundles too
            warnings.simplefilter("ignore")
            certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"{what} {path}: no PEM certificates in it") from None
    return Roots(str(path), tuple(certs))


def system_roots() -> Roots:
    """The system trust store as OpenSSL finds it (its CA file, else its CA directory)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            try:
                return load_roots(candidate)
            except UsageError:
                continue
    certs: list[x509.Certificate] = []
    for directory in (paths.capath, paths.openssl_capath):
        if directory and Path(directory).is_dir():
            for entry in sorted(Path(directory).iterdir())[:2000]:
                try:
                    certs += x509.load_pem_x509_certificates(entry.read_bytes())
                except (OSError, ValueError):
                    continue
            if certs:
                return Roots(directory, tuple(certs))
    return Roots("system (empty)", ())


def public_roots() -> Roots:
    """Mozilla's public roots as bundled by certifi: available without the network."""
    import certifi  # noqa: PLC0415  (only when the check runs)

    return load_roots(certifi.where(), "the public root bundle")


def default_trust() -> Trust:
    """The system trust store, judged against certifi's public roots."""
    return Trust(system_roots(), public_roots())


def name_text(name: x509.Name) -> str:
    return name.rfc4514_string()


def short_name(name: x509.Name) -> str:
    """The common name, else the organisation, else the whole name."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        values = name.get_attributes_for_oid(oid)
        if values:
            return str(values[0].value)
    return name.rfc4514_string()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def cert_info(cert: x509.Certificate) -> CertInfo:
    return CertInfo(name_text(cert.subject), name_text(cert.issuer), fingerprint(cert),
                    _iso(cert.not_valid_before_utc), _iso(cert.not_valid_after_utc))


def sans_of(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
    return tuple(names)


def hostname_matches(host: str, sans: Sequence[str]) -> bool:
    """RFC 6125: a SAN equal to the host, or `*.rest` standing for exactly one leftmost label.
    IP literals match IP SANs only; the subject CN is not consulted."""
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for san in sans:
        if address is not None:
            try:
                if ipaddress.ip_address(san) == address:
                    return True
            except ValueError:
                pass
            continue
        name = san.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            first, rest = host.split(".", 1)
            if first and rest == name[2:] and "*" not in rest:
                return True
    return False


def pin_matches(pin: str, certs: Sequence[x509.Certificate]) -> bool:
    """`sha256:HEX` matches a certificate's fingerprint; other pins match, case-insensitively,
    the common or organisation name of any certificate's subject or issuer."""
    pin = pin.strip().lower()
    if pin.startswith("sha256:"):
        wanted = pin[7:].replace(":", "")
        return any(fingerprint(c) == wanted for c in certs)
    for cert in certs:
        for name in (cert.subject, cert.issuer):
            for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
                if any(str(a.value).lower() == pin for a in name.get_attributes_for_oid(oid)):
                    return True
    return False


def _verify(roots: Roots | None, leaf: x509.Certificate, rest: list[x509.Certificate],
            name: str, at: datetime) -> list[x509.Certificate] | str:
    """The verified chain (leaf to anchor), or why not."""
    store = roots.store if roots is not None else None
    if store is None:
        return "no trust anchors"
    try:
        subject: DNSName | IPAddress = IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = DNSName(name)
    try:
        verifier = PolicyBuilder().store(store).time(at).build_server_verifier(subject)
        return list(verifier.verify(leaf, rest))
    except (VerificationError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def analyse(host: str, ders: Sequence[bytes], trust: Trust, pins: Sequence[str],
            now: datetime) -> TlsResult:
    """The TLS verdict for the chain `ders` (leaf first) sent for `host` (timing and the
    negotiated version, cipher and ALPN are the probe's to add)."""
    certs: list[x509.Certificate] = []
    for der in list(ders)[:MAX_CHAIN]:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            break
    if not certs:
        return TlsResult(TlsStatus.HANDSHAKE_FAILED, detail="the server sent no parsable certificate")
    leaf, rest = certs[0], certs[1:]
    sans = sans_of(leaf)
    matched = hostname_matches(host, sans)
    before, after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    in_dates = before <= now <= after
    # Judge trust apart from the dates and the name: verify at a time the leaf is valid,
    # for a name the leaf carries.
    at = now if in_dates else (after if now > after else before)
    dns_sans = [s for s in sans if not s.startswith("*.")]
    name = host if matched or not sans else (dns_sans[0] if dns_sans else sans[0][2:])
    verified = _verify(trust.store, leaf, rest, name, at)
    trusted = isinstance(verified, list)
    anchor = verified[-1] if isinstance(verified, list) else None
    root = short_name(anchor.subject) if anchor is not None else short_name(certs[-1].issuer)
    public: bool | None = None
    if trusted and trust.public is not None:
        public = isinstance(_verify(trust.public, leaf, rest, name, at), list)
    pinned = None if not pins else any(pin_matches(p, certs + ([anchor] if anchor else []))
                                       for p in pins)
    base = TlsResult(
        TlsStatus.OK, subject=name_text(leaf.subject), sans=sans, issuer=name_text(leaf.issuer),
        not_before=_iso(before), not_after=_iso(after),
        days_left=int((after - now) / timedelta(days=1)) if now <= after else
        -int((now - after) / timedelta(days=1)) - 1,
        chain=tuple(cert_info(c) for c in certs), root=root, trusted=trusted,
        public_root=public, hostname_match=matched)
    status, detail = TlsStatus.OK, None
    if pinned is False:
        status = TlsStatus.INTERCEPTED
        detail = f"the chain ends at {root!r}, not at a pinned root"
    elif trusted and public is False:
        status = TlsStatus.INTERCEPTED
        detail = f"the chain verifies only against a private root, {root!r}, not a public one"
    elif not trusted:
        status = TlsStatus.UNTRUSTED
        detail = f"issued by {short_name(leaf.issuer)!r}, not trusted by {trust.store.origin}: {verified}"
    elif now > after:
        status, detail = TlsStatus.EXPIRED, f"expired {_iso(after)}"
    elif now < before:
        status, detail = TlsStatus.NOT_YET_VALID, f"valid only from {_iso(before)}"
    elif not matched:
        status = TlsStatus.HOSTNAME_MISMATCH
        detail = f"{host} is not among the certificate's names ({', '.join(sans[:5]) or 'none'})"
    return replace(base, status=status, detail=detail)
