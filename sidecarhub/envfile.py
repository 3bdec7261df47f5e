"""The env file: the environment of the running services, for a second terminal.

``make run`` (scripts/run.sh) writes it to ``var/sidecarhub.env`` (mode 600) with
``write_env_file``: the variables its services run with (database, broker, secret and
encryption keys, webhook settings: everything ``sidecarhub/settings.py`` reads), the API's URL
and an API token of the admin user. The ``sidecarhub`` CLI reads it before Django starts
(``load_env_file``), so a fresh shell needs nothing else.

The format is ``NAME=value`` lines with ``#`` comments and shell single quoting where a value
needs it, so a shell can read it too (``set -a; . var/sidecarhub.env; set +a``). A variable
already set in the environment wins over the file: ``SIDECARHUB_TOKEN=... sidecarhub ...`` acts
as another user with the same file.

No Django here: the CLI calls it before settings are imported.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path

__all__ = [
    "ENV_FILE_VARIABLE",
    "EnvFileError",
    "default_env_file",
    "load_env_file",
    "read_env_file",
    "service_environment",
    "write_env_file",
    "write_run_env_file",
]

ENV_FILE_VARIABLE = "SIDECARHUB_ENV_FILE"
# The repository root: var/ next to manage.py, as settings.VAR_DIR defaults to.
_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What settings.py reads besides the SIDECARHUB_* variables.
_SERVICE_VARIABLES = frozenset(
    {
        "ALLOWED_HOSTS",
        "CELERY_TASK_SOFT_TIME_LIMIT",
        "CELERY_TASK_TIME_LIMIT",
        "CSRF_TRUSTED_ORIGINS",
        "DATABASE_URL",
        "DJANGO_DEBUG",
        "LOG_LEVEL",
        "REDIS_URL",
        "SECRET_KEY",
    }
)
# SIDECARHUB_* variables that are not the service's: where the file is, who the CLI acts as
# (written separately), and the test suite's process marker.
_NOT_SERVICE = frozenset({ENV_FILE_VARIABLE, "SIDECARHUB_TOKEN", "SIDECARHUB_TEST_PROCESS"})


class EnvFileError(Exception):
    """The env file cannot be read or has a line that is not ``NAME=value``."""


def default_env_file(environ: Mapping[str, str] | None = None) -> Path:
    """``SIDECARHUB_ENV_FILE``, else ``sidecarhub.env`` in ``SIDECARHUB_VAR_DIR`` (default
    ``var/`` of the checkout)."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_FILE_VARIABLE):
        return Path(environ[ENV_FILE_VARIABLE])
    return Path(environ.get("SIDECARHUB_VAR_DIR") or _ROOT / "var") / "sidecarhub.env"


def read_env_file(path: Path) -> dict[str, str]:
    """The file's variables; ``EnvFileError`` naming the line when one is malformed."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise EnvFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, raw = stripped.partition("=")
        if not sep or not _NAME.match(name):
            raise EnvFileError(f"{path}, line {number}: expected NAME=value")
        try:
            words = shlex.split(raw) if raw else [""]
        except ValueError as exc:
            raise EnvFileError(f"{path}, line {number}: {exc}") from None
        if len(words) != 1:
            raise EnvFileError(f"{path}, line {number}: the value of {name} must be one word (quote it)")
        values[name] = words[0]
    return values


def load_env_file(path: Path | None = None, environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Put the file's variables into ``environ`` (default ``os.environ``) where not already set.

    ``path`` defaults to ``default_env_file()``. A missing default file is not an error (the
    environment may carry everything); a missing file named by ``SIDECARHUB_ENV_FILE`` or by
    ``path`` is. Returns the path read, or ``None``.
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None or bool(environ.get(ENV_FILE_VARIABLE))
    path = path if path is not None else default_env_file(environ)
    if not path.exists() and not explicit:
        return None
    for name, value in read_env_file(path).items():
        environ.setdefault(name, value)
    return path


def service_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` that configure the service (see the module docstring)."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in sorted(environ.items())
        if (name in _SERVICE_VARIABLES or name.startswith("SIDECARHUB_")) and name not in _NOT_SERVICE
    }


def write_env_file(path: Path, values: Mapping[str, str], *, header: str) -> None:
    """Write ``values`` to ``path`` (mode 600 from the start, replaced atomically)."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    for name, value in values.items():
        if not _NAME.match(name) or "\n" in value:
            raise EnvFileError(f"cannot write {name!r}: names are identifiers, values one line")
        lines.append(f"{name}={shlex.quote(value)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".sidecarhub-env-")  # mode 600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_HEADER = """\
sidecarhub: the environment of the services `make run` started, for a second terminal.
Written by scripts/run.sh at every start (mode 600: it holds the secret key, the encryption
key and the admin's API token). The `sidecarhub` CLI reads it (SIDECARHUB_ENV_FILE, default
var/sidecarhub.env); `set -a; . var/sidecarhub.env; set +a` gives it to any other command.
Variables already set in the environment win: SIDECARHUB_TOKEN=<yours> acts as you.
"""


def write_run_env_file(path: Path, *, url: str, admin_username: str) -> None:
    """``make run``'s env file (the only function here that needs Django set up): the service's
    environment with the keys settings resolved (a generated dev key included), the API's URL,
    and ``admin_username``'s API token: the one the file already holds while it is valid, else a
    new one (replacing any other the admin had)."""
    from django.conf import settings

    from sidecarhub.tokens import TokenError, issue_token, user_for_token

    values = service_environment()
    values["SECRET_KEY"] = str(settings.SECRET_KEY)
    values["SIDECARHUB_ENCRYPTION_KEY"] = ",".join(settings.SIDECARHUB_ENCRYPTION_KEYS)
    values["SIDECARHUB_VAR_DIR"] = str(settings.VAR_DIR)
    values["SIDECARHUB_URL"] = url
    token = ""
    if path.exists():
        token = read_env_file(path).get("SIDECARHUB_TOKEN", "")
    try:
        if not token or user_for_token(token).get_username() != admin_username:
            token = ""
    except TokenError:
        token = ""
    values["SIDECARHUB_TOKEN"] = token or issue_token(admin_username, actor=None, rotate=True)
    write_env_file(path, values, header=_HEADER)
