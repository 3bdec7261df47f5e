"""Read one context of a kubeconfig file into what a ``Cluster`` stores.

Handles inline ``*-data`` (base64) and file paths (relative paths are resolved against the
kubeconfig's directory, as kubectl does). Bearer tokens (``token`` / ``tokenFile``) and client
certificates are supported; exec plugins, auth providers and basic auth are refused with a
clear error. Error messages name the field, never a value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusters.crypto import ClusterCredentials

__all__ = ["ImportedCluster", "KubeconfigError", "parse_kubeconfig", "read_kubeconfig"]


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; ``field`` names the offending key (e.g. ``contexts``)."""

    def __init__(self, message: str, *, field: str = "kubeconfig") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImportedCluster:
    """Connection data from one kubeconfig context (credentials hidden from ``repr``)."""

    context: str
    api_server_url: str
    ca_bundle: str
    insecure_skip_tls_verify: bool
    tls_server_name: str
    credentials: ClusterCredentials = field(repr=False)


def _by_name(items: Any, name: str, what: str) -> dict[str, Any]:
    if items is not None and not isinstance(items, list):
        raise KubeconfigError(f"{what} must be a list", field=what)
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(what.rstrip("s"))
            if isinstance(body, dict):
                return body
    raise KubeconfigError(f"no {what.rstrip('s')} named {name!r} in the kubeconfig", field=what)


def _read_bytes(section: dict[str, Any], key: str, base_dir: Path | None, where: str) -> bytes | None:
    """``<key>-data`` (base64) wins over ``<key>`` (a path), as in client-go."""
    inline = section.get(f"{key}-data")
    if inline:
        try:
            return base64.b64decode(str(inline), validate=True)
        except (binascii.Error, ValueError):
            raise KubeconfigError(f"{where}.{key}-data is not valid base64", field=f"{key}-data") from None
    path_value = section.get(key)
    if not path_value:
        return None
    path = Path(str(path_value)).expanduser()
    if not path.is_absolute():
        if base_dir is None:
            raise KubeconfigError(
                f"{where}.{key} is a relative path; upload the file with inline {key}-data instead",
                field=key,
            )
        path = base_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KubeconfigError(f"{where}.{key}: cannot read {path} ({exc.strerror})", field=key) from None
    except ValueError:  # a NUL character in the path (YAML's "\0" escape)
        raise KubeconfigError(f"{where}.{key} is not a usable path", field=key) from None


def _pem(raw: bytes | None, where: str, key: str) -> str:
    if raw is None:
        return ""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KubeconfigError(f"{where}.{key} is not PEM text", field=key) from None
    if "-----BEGIN" not in text:
        raise KubeconfigError(f"{where}.{key} is not PEM text", field=key)
    return text


def parse_kubeconfig(
    text: str, *, context: str | None = None, base_dir: Path | None = None
) -> ImportedCluster:
    """Parse kubeconfig ``text`` and extract ``context`` (default: ``current-context``)."""
    try:
        document = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: e.g. a 5,000-digit integer
        raise KubeconfigError("the kubeconfig is not valid YAML") from None
    if not isinstance(document, dict):
        raise KubeconfigError("the kubeconfig must be a mapping with clusters, users and contexts")
    context_name = context or document.get("current-context")
    if not context_name:
        raise KubeconfigError("no context given and the kubeconfig has no current-context", field="context")
    try:
        ctx = _by_name(document.get("contexts"), str(context_name), "contexts")
    except KubeconfigError as exc:
        raise KubeconfigError(str(exc), field="context") from None
    cluster = _by_name(document.get("clusters"), str(ctx.get("cluster") or ""), "clusters")
    user = _by_name(document.get("users"), str(ctx.get("user") or ""), "users")

    server = str(cluster.get("server") or "")
    if not server.startswith("https://"):
        raise KubeconfigError("cluster.server must be an https:// URL", field="server")
    ca_bundle = _pem(_read_bytes(cluster, "certificate-authority", base_dir, "cluster"), "cluster", "ca")

    if user.get("exec") or user.get("auth-provider"):
        raise KubeconfigError(
            "exec plugins and auth providers are not supported; use a token or a client certificate",
            field="users",
        )
    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token_bytes = _read_bytes({"tokenFile": user["tokenFile"]}, "tokenFile", base_dir, "user")
        token = (token_bytes or b"").decode(errors="replace").strip()
    cert = _pem(_read_bytes(user, "client-certificate", base_dir, "user"), "user", "client-certificate")
    key = _pem(_read_bytes(user, "client-key", base_dir, "user"), "user", "client-key")
    if token:
        credentials = ClusterCredentials(token=token)
    elif cert and key:
        credentials = ClusterCredentials(client_certificate_pem=cert, client_key_pem=key)
    else:
        raise KubeconfigError("the user has neither a token nor a client certificate and key", field="users")
    return ImportedCluster(
        context=str(context_name),
        api_server_url=server.rstrip("/"),
        ca_bundle=ca_bundle,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        credentials=credentials,
    )


def read_kubeconfig(path: str | Path, *, context: str | None = None) -> ImportedCluster:
    """Read a kubeconfig file; relative paths inside it resolve against its directory."""
    file_path = Path(path).expanduser()
    try:
        text = file_path.read_text()
    except OSError as exc:
        raise KubeconfigError(f"cannot read {file_path} ({exc.strerror})") from None
    return parse_kubeconfig(text, context=context, base_dir=file_path.resolve().parent)
