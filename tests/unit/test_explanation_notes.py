"""``rollouts.models.with_note``: an explanation keeps its newest notes and counts the dropped
ones, so a rollout that waits or pauses again and again does not grow without bound. Pure."""

from __future__ import annotations

from rollouts.models import MAX_EXPLANATION_NOTES, with_note


def test_notes_are_appended_one_per_line() -> None:
    explanation = with_note("", "first")
    explanation = with_note(explanation, "second\nwith a line break ")
    assert explanation == "first\nsecond with a line break"
    assert with_note(explanation, "  ") == explanation  # nothing to add


def test_only_the_newest_notes_are_kept_and_the_dropped_ones_counted() -> None:
    explanation = ""
    for index in range(MAX_EXPLANATION_NOTES + 7):
        explanation = with_note(explanation, f"note {index}")
    lines = explanation.splitlines()
    assert lines[0] == "(7 earlier notes dropped)"
    assert lines[1:] == [f"note {index}" for index in range(7, MAX_EXPLANATION_NOTES + 7)]
    # The count goes on from the one stored, and a single drop is said in the singular.
    assert with_note(explanation, "one more").splitlines()[0] == "(8 earlier notes dropped)"
    assert with_note("a\nb", "c", keep=2) == "(1 earlier note dropped)\nb\nc"


def test_an_explanation_written_before_the_bound_is_cut_on_its_next_note() -> None:
    legacy = "\n".join(f"old {index}" for index in range(120))
    lines = with_note(legacy, "new").splitlines()
    assert len(lines) == MAX_EXPLANATION_NOTES + 1
    assert lines[0] == "(71 earlier notes dropped)" and lines[-1] == "new"
