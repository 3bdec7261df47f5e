"""``sidecarhub rollout ...``: output, exit codes a script can act on (1 not found, 3 not
permitted, 4 conflict, 5 a watched rollout ended badly, 6 timeout), and who acts: the user of the
API token the CLI runs with."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from rollouts.choices import RolloutKind, RolloutState, StepState
from rollouts.models import Approval, Rollout, RolloutStep
from rollouts.transitions import pause_rollout_row
from sidecarhub.cli_main import main
from sidecarhub.clitools import (
    EXIT_CONFLICT,
    EXIT_ENDED_BADLY,
    EXIT_NOT_FOUND,
    EXIT_NOT_PERMITTED,
    EXIT_TIMEOUT,
)
from tests.clusters.conftest import make_user
from tests.rollouts_api.conftest import APPROVE, OPERATE, World, make_cluster, make_rollout

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _restore_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` sets SIDECARHUB_TOKEN; monkeypatch puts the original back after each test."""
    monkeypatch.setenv("SIDECARHUB_TOKEN", "")


def act_as(username: str) -> None:
    user = User.objects.get(username=username)
    os.environ["SIDECARHUB_TOKEN"] = Token.objects.get_or_create(user=user)[0].key


def run(*argv: str, user: str = "author") -> str:
    """``sidecarhub rollout ARGV`` as ``user`` (its API token)."""
    act_as(user)
    out = io.StringIO()
    call_command("sidecarhub", "rollout", *argv, stdout=out)
    return out.getvalue()


def fails(*argv: str, user: str = "author") -> CommandError:
    with pytest.raises(CommandError) as raised:
        run(*argv, user=user)
    return raised.value


@pytest.fixture
def approver(db: None) -> User:
    return make_user("approver", *APPROVE)


@pytest.fixture
def operator(db: None) -> User:
    return make_user("operator", *OPERATE)


def test_status_table_with_a_text_progress_bar(world: World, author: User) -> None:
    make_rollout(author, make_cluster("staging-us"), name="mesh-proxy")
    text = run("status")
    header, *rows = text.splitlines()
    assert header.split() == [
        "ID",
        "SIDECARSET",
        "REVISION",
        "CLUSTER",
        "WAVE",
        "STATE",
        "STEP",
        "PROGRESS",
        "CHANGED",
    ]
    mine = next(row for row in rows if row.startswith(f"{world.rollout.pk} "))
    assert world.rollout.sidecarset_name in mine and "prod-eu" in mine and "#1->#2" in mine
    assert "running" in mine and "1/2" in mine
    assert "1/3 pods done, 1 failed, 1 in flight" in mine and "[#######!!!!!!!~~~~~~]" in mine
    only = run("status", "--sidecarset", "mesh-proxy").splitlines()
    assert len(only) == 2 and "mesh-proxy" in only[1] and "pending" in only[1]


def test_status_hides_finished_rollouts_unless_all(world: World, operator: User) -> None:
    run("abort", str(world.rollout.pk), user="operator")
    assert "no active rollouts" in run("status") and "--all" in run("status")
    assert "aborted" in run("status", "--all")


def test_status_of_one_rollout_lists_steps_and_what_to_do_next(world: World) -> None:
    text = run("status", str(world.rollout.pk))
    assert (
        f"rollout {world.rollout.pk}: {world.rollout.sidecarset_name} #1->#2 (update) in cluster prod-eu"
        in text
    )
    assert "state:    running" in text and "author:   author" in text
    assert "1/3 pods done, 1 failed" in text
    assert "awaiting_approval" in text and "pending" in text
    assert f"sidecarhub rollout approve {world.step.pk} [-m COMMENT]" in text


def test_status_of_an_unknown_rollout_exits_1(author: User) -> None:
    error = fails("status", "424242")
    assert error.returncode == EXIT_NOT_FOUND and "rollout 424242 not found" in str(error)


def test_approve_keeps_four_eyes_and_exits_3(world: World) -> None:
    error = fails("approve", str(world.step.pk), user="author")
    assert error.returncode == EXIT_NOT_PERMITTED
    assert "not permitted" in str(error) and "requires someone else" in str(error)
    assert not Approval.objects.exists()


def test_approve_then_again_exits_4_with_the_state(world: World, approver: User) -> None:
    text = run("approve", str(world.step.pk), "-m", "canary ok", user="approver")
    assert f"step 1 (id {world.step.pk}) of rollout {world.rollout.pk} approved by approver: 3 pods" in text
    assert Approval.objects.get(step=world.step).comment == "canary ok"
    error = fails("approve", str(world.step.pk), user="approver")
    assert error.returncode == EXIT_CONFLICT
    assert f"step {world.step.pk} is approved: nothing done" in str(error)


def test_deny_pauses(world: World, approver: User) -> None:
    text = run("deny", str(world.step.pk), "-m", "freeze", user="approver")
    assert "denied by approver; the rollout pauses" in text
    assert RolloutStep.objects.get(pk=world.step.pk).state == StepState.DENIED
    assert Rollout.objects.get(pk=world.rollout.pk).state == RolloutState.PAUSED


def test_unknown_step_exits_1(world: World) -> None:
    make_user("approver2", *APPROVE)
    error = fails("approve", "999999", user="approver2")
    assert error.returncode == EXIT_NOT_FOUND and "step 999999 not found" in str(error)


def test_pause_resume_abort_undo(world: World, operator: User) -> None:
    rollout_id = str(world.rollout.pk)
    assert "pause requested" in run("pause", rollout_id, "--reason", "latency", user="operator")
    error = fails("resume", rollout_id, user="operator")
    assert error.returncode == EXIT_CONFLICT and "is running" in str(error) and "only a paused" in str(error)
    pause_rollout_row(world.rollout.pk, actor=None, reason="the engine honoured the pause")
    assert f"rollout {rollout_id} is now running" in run("resume", rollout_id, user="operator")

    pause_rollout_row(world.rollout.pk, actor=None, reason="paused")
    text = run("undo", rollout_id, "--reason", "errors up", user="operator")
    new = Rollout.objects.get(rollback_of=world.rollout)
    assert f"new rollout {new.pk} (#2->#1)" in text and new.kind == RolloutKind.ROLLBACK

    error = fails("abort", rollout_id, user="operator")
    assert error.returncode == EXIT_CONFLICT and "is aborted" in str(error)
    assert f"rollout {new.pk} is now aborted" in run("abort", str(new.pk), user="operator")


def test_operating_without_the_permission_exits_3(world: World) -> None:
    make_user("viewer", "rollouts.view_rollout")
    error = fails("abort", str(world.rollout.pk), user="viewer")
    assert error.returncode == EXIT_NOT_PERMITTED and "rollouts.operate_rollout" in str(error)
    assert Rollout.objects.get(pk=world.rollout.pk).state == RolloutState.RUNNING


def test_process_exit_codes(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a shell sees from the console script: the error on stderr, ``sys.exit(returncode)``."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("# nothing: the test's environment has it all\n")
    monkeypatch.setenv("SIDECARHUB_ENV_FILE", str(env_file))
    act_as("author")
    with pytest.raises(SystemExit) as exited:
        main(["rollout", "approve", str(world.step.pk)])
    assert exited.value.code == EXIT_NOT_PERMITTED
    assert "requires someone else" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["rollout", "pause", str(world.rollout.pk), "--actor", "author"])
    assert exited.value.code == 2  # argparse: the person acting is the token's, not an argument
    assert "unrecognized arguments: --actor" in capsys.readouterr().err


def test_watch_ends_with_the_rollout(world: World, operator: User) -> None:
    rollout_id = str(world.rollout.pk)
    # Still running: --timeout gives up with 6, after showing the rollout once (not a terminal).
    out = io.StringIO()
    act_as("author")
    with pytest.raises(CommandError) as raised:
        call_command("sidecarhub", "rollout", "status", rollout_id, "--watch", "--timeout", "0", stdout=out)
    assert raised.value.returncode == EXIT_TIMEOUT
    assert out.getvalue().startswith("--- ") and out.getvalue().count(f"rollout {rollout_id}:") == 1
    assert "--watch follows one rollout" in str(fails("status", "--watch"))

    run("abort", rollout_id, "--reason", "bad canary", user="operator")
    error = fails("status", rollout_id, "--watch")
    assert error.returncode == EXIT_ENDED_BADLY
    assert str(error) == f"rollout {rollout_id} ended aborted: aborted by operator: bad canary"
