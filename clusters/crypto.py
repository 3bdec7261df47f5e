"""Encryption at rest for cluster credentials and webhook tokens: MultiFernet over
``SIDECARHUB_ENCRYPTION_KEYS``.

Keys are read from settings at each call (newest first): encryption uses the first key,
decryption tries every key, and ``reencrypt`` moves a ciphertext onto the newest key. Nothing
here ever puts plaintext into an exception message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clusters.choices import CredentialKind

__all__ = [
    "ClusterCredentials",
    "CredentialsUnreadable",
    "decrypt_credentials",
    "decrypt_secret",
    "encrypt_credentials",
    "encrypt_secret",
    "reencrypt",
]


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted with any configured key (or are malformed)."""


@dataclass(frozen=True)
class ClusterCredentials:
    """Decrypted credentials for one cluster. ``repr`` never shows the secret values.

    Exactly one of ``token`` or (``client_certificate_pem`` and ``client_key_pem``) is set.
    """

    token: str = field(default="", repr=False)
    client_certificate_pem: str = field(default="", repr=False)
    client_key_pem: str = field(default="", repr=False)

    @property
    def kind(self) -> str:
        return CredentialKind.TOKEN if self.token else CredentialKind.CLIENT_CERTIFICATE

    def secrets(self) -> tuple[str, ...]:
        """The secret strings, for redaction of anything that might echo them."""
        return tuple(value for value in (self.token, self.client_key_pem) if value)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "client_certificate_pem": self.client_certificate_pem,
                "client_key_pem": self.client_key_pem,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ClusterCredentials:
        data = json.loads(raw)
        return cls(
            token=str(data.get("token") or ""),
            client_certificate_pem=str(data.get("client_certificate_pem") or ""),
            client_key_pem=str(data.get("client_key_pem") or ""),
        )


def _fernet() -> MultiFernet:
    keys = list(getattr(settings, "SIDECARHUB_ENCRYPTION_KEYS", []) or [])
    if not keys:
        raise ImproperlyConfigured("SIDECARHUB_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:  # a malformed key; its value is not echoed
        raise ImproperlyConfigured("SIDECARHUB_ENCRYPTION_KEYS holds a key that is not a Fernet key") from exc


def encrypt_credentials(credentials: ClusterCredentials) -> str:
    """Ciphertext (URL-safe text) of the credentials under the newest key."""
    return _fernet().encrypt(credentials.to_json()).decode()


def decrypt_credentials(ciphertext: str) -> ClusterCredentials:
    """The credentials, or ``CredentialsUnreadable`` (no configured key fits, or malformed)."""
    try:
        return ClusterCredentials.from_json(_fernet().decrypt(ciphertext.encode()))
    except (InvalidToken, ValueError):
        raise CredentialsUnreadable(
            "stored credentials cannot be decrypted with the configured encryption keys"
        ) from None


def encrypt_secret(value: str) -> str:
    """Ciphertext of one secret string (a cluster's admission webhook token) under the newest key."""
    return _fernet().encrypt(value.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    """The secret string, or ``CredentialsUnreadable`` (no configured key fits, or malformed)."""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError):
        raise CredentialsUnreadable(
            "a stored secret cannot be decrypted with the configured encryption keys"
        ) from None


def reencrypt(ciphertext: str) -> str:
    """The same plaintext encrypted under the newest key (``MultiFernet.rotate``)."""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "stored credentials cannot be decrypted with the configured encryption keys"
        ) from None
