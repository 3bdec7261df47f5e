"""``rollouts/pod_updates.py`` is the only code that writes ``PodUpdate`` state (issue 12): every
other module of the hub reads rows and asks that module to move them. Checked over the source
with ``ast``: a write is a ``PodUpdate`` queryset's ``update``/``create``/``bulk_*`` call, a call
passing ``state=PodUpdateState.X``, or an assignment of ``PodUpdateState.X`` to an attribute."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWNER = Path("rollouts/pod_updates.py")
APPS = ("rollouts", "clusters", "sidecarhub", "sandbox")
WRITE_METHODS = frozenset(
    {"update", "create", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
)


def _names_in_chain(node: ast.AST) -> set[str]:
    """Every plain name on the receiver side of a call chain (``PodUpdate.objects.filter(...)``)."""
    names: set[str] = set()
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Name):
            names.add(node.id)
            return names
        else:
            return names


def _is_state_value(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "PodUpdateState"
    )


def _is_write(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):  # the model's constructor: PodUpdate(state=...)
        return func.id == "PodUpdate" and any(keyword.arg == "state" for keyword in call.keywords)
    if not isinstance(func, ast.Attribute) or func.attr not in WRITE_METHODS:
        return False
    # PodUpdate.objects....update(...), or any queryset's update(state=PodUpdateState.X)
    return "PodUpdate" in _names_in_chain(func.value) or any(
        keyword.arg == "state" and _is_state_value(keyword.value) for keyword in call.keywords
    )


def state_writes(source: str) -> list[int]:
    """Line numbers of the ``PodUpdate`` state writes in ``source``."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and _is_write(node)) or (
            isinstance(node, ast.Assign)
            and _is_state_value(node.value)
            and any(isinstance(target, ast.Attribute) and target.attr == "state" for target in node.targets)
        ):
            lines.append(node.lineno)
    return sorted(set(lines))


def _sources() -> list[Path]:
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" not in relative.parts and relative != OWNER:
                files.append(relative)
    return files


def test_no_module_but_pod_updates_writes_pod_update_state() -> None:
    offenders = {
        str(path): lines for path in _sources() if (lines := state_writes((ROOT / path).read_text()))
    }
    assert offenders == {}, f"PodUpdate state written outside {OWNER}: {offenders}"


def test_the_owner_itself_is_seen_writing() -> None:
    """The check finds the owner's writes (so it is looking at the right things)."""
    assert len(state_writes((ROOT / OWNER).read_text())) >= 5


@pytest.mark.parametrize(
    "snippet",
    [
        "PodUpdate.objects.filter(pk=1).update(state=PodUpdateState.DONE)",
        "PodUpdate.objects.filter(pk=1).update(outcome='failed')",
        "PodUpdate.objects.bulk_create(rows)",
        "rows.update(state=PodUpdateState.CLAIMED)",
        "row.state = PodUpdateState.DONE",
        "PodUpdate(rollout=r, state=PodUpdateState.CLAIMED)",
    ],
)
def test_each_kind_of_write_is_found(snippet: str) -> None:
    assert state_writes(snippet) == [1]


def test_reads_are_not_writes() -> None:
    source = (
        "PodUpdate.objects.filter(step=s, state=PodUpdateState.CLAIMED).count()\n"
        "row.state == PodUpdateState.DONE\n"
    )
    assert state_writes(source) == []
