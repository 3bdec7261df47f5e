"""The env file (``sidecarhub.envfile``) and ``--watch`` (``sidecarhub.clitools.watch``), without
services: what is written, what wins when read, and what a script sees while it waits."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from sidecarhub.clitools import EXIT_ENDED_BADLY, EXIT_TIMEOUT, Snapshot, watch
from sidecarhub.envfile import (
    EnvFileError,
    default_env_file,
    load_env_file,
    read_env_file,
    service_environment,
    write_env_file,
)


def test_written_private_read_back_and_sourced_by_a_shell(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sidecarhub.env"
    values = {"SECRET_KEY": "a'b\"c $HOME `x` d", "DATABASE_URL": "sqlite:////tmp/x y.sqlite3", "EMPTY": ""}
    write_env_file(path, values, header="first line\nsecond line")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("# first line\n# second line\n")
    assert read_env_file(path) == values
    # The same file is a shell file: `set -a; . FILE` gives a command the same values.
    shown = subprocess.run(
        [
            "bash",
            "-c",
            'set -a; . "$0"; set +a; printf "%s|%s|%s" "$SECRET_KEY" "$DATABASE_URL" "$EMPTY"',
            path,
        ],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == "|".join(values.values())


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.env"
    write_env_file(path, {"SIDECARHUB_TOKEN": "admins", "REDIS_URL": "redis://file/0"}, header="h")
    environ = {"SIDECARHUB_TOKEN": "mine", "SIDECARHUB_ENV_FILE": str(path)}
    assert load_env_file(environ=environ) == path
    assert environ["SIDECARHUB_TOKEN"] == "mine" and environ["REDIS_URL"] == "redis://file/0"


def test_where_it_is_looked_for_and_a_missing_or_bad_file(tmp_path: Path) -> None:
    assert default_env_file({"SIDECARHUB_VAR_DIR": str(tmp_path)}) == tmp_path / "sidecarhub.env"
    assert default_env_file({"SIDECARHUB_ENV_FILE": "/x/y.env", "SIDECARHUB_VAR_DIR": "/z"}) == Path(
        "/x/y.env"
    )
    assert default_env_file({}).name == "sidecarhub.env" and default_env_file({}).parent.name == "var"
    # No default file: nothing to load (the environment may have it all); a named one must exist.
    environ = {"SIDECARHUB_VAR_DIR": str(tmp_path)}
    assert load_env_file(environ=environ) is None and environ == {"SIDECARHUB_VAR_DIR": str(tmp_path)}
    with pytest.raises(EnvFileError, match="cannot read"):
        load_env_file(environ={"SIDECARHUB_ENV_FILE": str(tmp_path / "missing.env")})
    bad = tmp_path / "bad.env"
    bad.write_text("# ok\nGOOD=1\nexport BAD\n")
    with pytest.raises(EnvFileError, match="line 3: expected NAME=value"):
        read_env_file(bad)
    bad.write_text("TWO=a b\n")
    with pytest.raises(EnvFileError, match="one word"):
        read_env_file(bad)


def test_the_service_environment_is_the_services_variables_only() -> None:
    environ = {
        "SIDECARHUB_ENV": "dev",
        "SIDECARHUB_WEBHOOK_URL": "https://127.0.0.1:8443",
        "DATABASE_URL": "sqlite:////v/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SECRET_KEY": "s",
        "SIDECARHUB_TOKEN": "someone's token",
        "SIDECARHUB_ENV_FILE": "/v/sidecarhub.env",
        "SIDECARHUB_TEST_PROCESS": "marker",
        "PATH": "/usr/bin",
        "HOME": "/root",
    }
    assert service_environment(environ) == {
        "DATABASE_URL": "sqlite:////v/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SECRET_KEY": "s",
        "SIDECARHUB_ENV": "dev",
        "SIDECARHUB_WEBHOOK_URL": "https://127.0.0.1:8443",
    }


def test_every_variable_settings_reads_is_carried() -> None:
    """A new setting read from the environment reaches the CLI's process too."""
    import re

    import sidecarhub.settings

    source = Path(sidecarhub.settings.__file__).read_text()
    names = set(re.findall(r'env_(?:str|bool|int|float|list)\(\s*"([A-Z0-9_]+)"', source))
    assert len(names) > 20
    environ = dict.fromkeys(names, "x")
    assert set(service_environment(environ)) == names


# --- --watch ---------------------------------------------------------------------------------------


class Screen(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_watch_in_a_script_writes_each_change_once_and_exits_with_the_outcome() -> None:
    looks = iter(
        [
            Snapshot("step 1 awaiting\n", signature=("awaiting",)),
            Snapshot("step 1 awaiting\n", signature=("awaiting",)),
            Snapshot("step 1 running 1/2\n", signature=("running", 1)),
            Snapshot("completed\n", signature=("completed",), exit_code=0),
        ]
    )
    slept: list[float] = []
    out = Screen(terminal=False)
    watch(lambda: next(looks), out, interval=2, timeout=None, sleep=slept.append)
    text = out.getvalue()
    assert text.count("--- ") == 3 and text.count("step 1 awaiting") == 1
    assert text.endswith("completed\n") and "\x1b[" not in text
    assert slept == [2, 2, 2]


def test_watch_on_a_terminal_redraws_and_a_bad_end_or_timeout_exits_non_zero() -> None:
    screen = Screen(terminal=True)
    looks = iter(
        [
            Snapshot("running\n", signature=1),
            Snapshot("running\n", signature=1),
            Snapshot("aborted\n", signature=2, exit_code=EXIT_ENDED_BADLY, ending="rollout 7 ended aborted"),
        ]
    )
    with pytest.raises(CommandError) as ended:
        watch(lambda: next(looks), screen, interval=1, timeout=None, sleep=lambda _: None)
    assert ended.value.returncode == EXIT_ENDED_BADLY and str(ended.value) == "rollout 7 ended aborted"
    assert screen.getvalue().count("\x1b[H\x1b[2J") == 3  # every look redraws the screen

    clock = iter([0.0, 5.0, 10.0, 15.0])
    with pytest.raises(CommandError) as timed_out:
        watch(
            lambda: Snapshot("running\n", signature=1),
            Screen(terminal=False),
            interval=5,
            timeout=10,
            sleep=lambda _: None,
            clock=lambda: next(clock),
        )
    assert timed_out.value.returncode == EXIT_TIMEOUT and "10s" in str(timed_out.value)


@pytest.mark.django_db
def test_make_runs_env_file_keeps_a_valid_admin_token_and_replaces_a_stale_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from sidecarhub.envfile import write_run_env_file

    User.objects.create_superuser("admin", password="unused-admin-pw")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    monkeypatch.setenv("SIDECARHUB_TOKEN", "the shell's own, not written")
    path = tmp_path / "sidecarhub.env"
    write_run_env_file(path, url="http://127.0.0.1:8000", admin_username="admin")
    first = read_env_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert first["SIDECARHUB_TOKEN"] == Token.objects.get(user__username="admin").key
    assert first["SECRET_KEY"] == settings.SECRET_KEY and first["REDIS_URL"] == "redis://127.0.0.1:6379/9"
    assert first["SIDECARHUB_ENCRYPTION_KEY"] == ",".join(settings.SIDECARHUB_ENCRYPTION_KEYS)
    assert first["SIDECARHUB_URL"] == "http://127.0.0.1:8000"

    write_run_env_file(path, url="http://127.0.0.1:8000", admin_username="admin")  # a restart
    assert read_env_file(path)["SIDECARHUB_TOKEN"] == first["SIDECARHUB_TOKEN"]

    Token.objects.all().delete()  # e.g. rotated in the admin console: the file's token is stale
    write_run_env_file(path, url="http://127.0.0.1:8000", admin_username="admin")
    renewed = read_env_file(path)["SIDECARHUB_TOKEN"]
    assert renewed != first["SIDECARHUB_TOKEN"] and renewed == Token.objects.get(user__username="admin").key
