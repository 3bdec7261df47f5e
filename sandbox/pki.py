"""A throw-away PKI for one sandbox cluster, made in-process with ``cryptography``.

Everything is short-lived and written with 0600 permissions into the cluster's own directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClusterPki", "ServingCertificate", "make_cluster_pki", "make_serving_certificate"]

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class ServingCertificate:
    """A CA and a serving certificate (SANs localhost, 127.0.0.1) signed by it, as PEM files."""

    ca_cert: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path
    token_file: Path
    admin_token: str


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.CertificateBuilder:
    """What every certificate here shares: validity, serial, basic constraints, key usage."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=ca,
                crl_sign=ca,
                key_encipherment=not ca,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(common_name), _name(common_name), key, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    server: bool,
    hosts: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_cert.subject, key, ca=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        # Go never falls back to the CN, so 127.0.0.1 must be an IP SAN.
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_serving_certificate(
    directory: Path, *, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), prefix: str = "serving"
) -> ServingCertificate:
    """A fresh CA plus a serving certificate for ``hosts`` (for webhooks on 127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(f"{prefix}-ca")
    cert, key = _issue(ca_cert, ca_key, _name(hosts[0]), server=True, hosts=hosts)
    return ServingCertificate(
        ca_cert=_write(directory / f"{prefix}-ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM)),
        cert=_write(directory / f"{prefix}.crt", cert.public_bytes(serialization.Encoding.PEM)),
        key=_write(directory / f"{prefix}.key", _key_pem(key)),
    )


def make_cluster_pki(directory: Path) -> ClusterPki:
    """CA, apiserver serving cert, an admin client cert (system:masters), SA keys, a token file."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca("sidecarhub-sandbox-ca")
    serving, serving_key = _issue(
        ca_cert,
        ca_key,
        _name("kube-apiserver"),
        server=True,
        hosts=("localhost", "127.0.0.1", "kubernetes", "kubernetes.default", "10.0.0.1"),
    )
    admin, admin_key = _issue(ca_cert, ca_key, _name("admin", "system:masters"), server=False)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = secrets.token_hex(24)
    pem = serialization.Encoding.PEM
    return ClusterPki(
        ca_cert=_write(directory / "ca.crt", ca_cert.public_bytes(pem)),
        ca_key=_write(directory / "ca.key", _key_pem(ca_key)),
        serving_cert=_write(directory / "serving.crt", serving.public_bytes(pem)),
        serving_key=_write(directory / "serving.key", _key_pem(serving_key)),
        admin_cert=_write(directory / "admin.crt", admin.public_bytes(pem)),
        admin_key=_write(directory / "admin.key", _key_pem(admin_key)),
        service_account_key=_write(directory / "sa.key", _key_pem(sa_key)),
        service_account_pub=_write(
            directory / "sa.pub",
            sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        ),
        token_file=_write(directory / "tokens.csv", f'{token},admin,admin-uid,"system:masters"\n'.encode()),
        admin_token=token,
    )
