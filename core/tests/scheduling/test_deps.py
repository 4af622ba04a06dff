"""Trigger rule evaluation over upstream state counts: the matrix the scheduler relies on."""

from __future__ import annotations

import pytest

from flow.scheduling.deps import (
    TRIGGER_RULES,
    Decision,
    UpstreamStates,
    branch_skips,
    evaluate_trigger_rule,
    successes_it_waits_through,
)

RUN, WAIT, SKIP, UPF = Decision.RUN, Decision.WAIT, Decision.SKIP, Decision.UPSTREAM_FAILED

# upstream states of a task with three upstream tasks -> expected decision per rule
CASES: dict[tuple[str | None, ...], dict[str, Decision]] = {
    ("success", "success", "success"): {
        "all_success": RUN, "all_failed": SKIP, "all_done": RUN, "all_skipped": SKIP,
        "one_success": RUN, "one_failed": SKIP, "one_done": RUN, "none_failed": RUN,
        "none_failed_min_one_success": RUN, "none_skipped": RUN, "always": RUN},
    ("success", "success", None): {
        "all_success": WAIT, "all_failed": SKIP, "all_done": WAIT, "all_skipped": SKIP,
        "one_success": RUN, "one_failed": WAIT, "one_done": RUN, "none_failed": WAIT,
        "none_failed_min_one_success": WAIT, "none_skipped": WAIT, "always": RUN},
    ("failed", "failed", "failed"): {
        "all_success": UPF, "all_failed": RUN, "all_done": RUN, "all_skipped": SKIP,
        "one_success": UPF, "one_failed": RUN, "one_done": RUN, "none_failed": UPF,
        "none_failed_min_one_success": UPF, "none_skipped": RUN, "always": RUN},
    ("failed", None, None): {
        "all_success": UPF, "all_failed": WAIT, "all_done": WAIT, "all_skipped": SKIP,
        "one_success": WAIT, "one_failed": RUN, "one_done": RUN, "none_failed": UPF,
        "none_failed_min_one_success": UPF, "none_skipped": WAIT, "always": RUN},
    ("skipped", "skipped", "skipped"): {
        "all_success": SKIP, "all_failed": SKIP, "all_done": RUN, "all_skipped": RUN,
        "one_success": SKIP, "one_failed": SKIP, "one_done": SKIP, "none_failed": RUN,
        "none_failed_min_one_success": SKIP, "none_skipped": SKIP, "always": RUN},
    ("success", "skipped", "skipped"): {
        "all_success": SKIP, "all_failed": SKIP, "all_done": RUN, "all_skipped": SKIP,
        "one_success": RUN, "one_failed": SKIP, "one_done": RUN, "none_failed": RUN,
        "none_failed_min_one_success": RUN, "none_skipped": SKIP, "always": RUN},
    ("upstream_failed", "success", "success"): {
        "all_success": UPF, "all_failed": SKIP, "all_done": RUN, "all_skipped": SKIP,
        "one_success": RUN, "one_failed": RUN, "one_done": RUN, "none_failed": UPF,
        "none_failed_min_one_success": UPF, "none_skipped": RUN, "always": RUN},
    ("upstream_failed", "skipped", "upstream_failed"): {
        "all_success": UPF, "all_failed": SKIP, "all_done": RUN, "all_skipped": SKIP,
        "one_success": UPF, "one_failed": RUN, "one_done": SKIP, "none_failed": UPF,
        "none_failed_min_one_success": UPF, "none_skipped": SKIP, "always": RUN},
    ("success", "removed", "success"): {
        "all_success": RUN, "all_failed": SKIP, "all_done": RUN, "all_skipped": SKIP,
        "one_success": RUN, "one_failed": SKIP, "one_done": RUN, "none_failed": RUN,
        "none_failed_min_one_success": RUN, "none_skipped": RUN, "always": RUN},
    ("up_for_retry", "success", "success"): {
        "all_success": WAIT, "all_failed": SKIP, "all_done": WAIT, "all_skipped": SKIP,
        "one_success": RUN, "one_failed": WAIT, "one_done": RUN, "none_failed": WAIT,
        "none_failed_min_one_success": WAIT, "none_skipped": WAIT, "always": RUN},
}


def test_the_matrix_covers_every_trigger_rule() -> None:
    for expected in CASES.values():
        assert set(expected) == TRIGGER_RULES


@pytest.mark.parametrize("states", list(CASES), ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("rule", sorted(TRIGGER_RULES))
def test_trigger_rule_decision_for_upstream_states(states: tuple[str | None, ...],
                                                   rule: str) -> None:
    evaluation = evaluate_trigger_rule(rule, UpstreamStates.count(states))
    assert evaluation.decision == CASES[states][rule], evaluation.reason


@pytest.mark.parametrize("rule", sorted(TRIGGER_RULES))
def test_a_task_without_upstream_tasks_runs_whatever_its_rule(rule: str) -> None:
    assert evaluate_trigger_rule(rule, UpstreamStates.count([])).decision == RUN


def test_every_upstream_removed_counts_as_no_upstream() -> None:
    states = UpstreamStates.count(["removed", "removed"])
    assert evaluate_trigger_rule("all_success", states).decision == RUN


def test_unknown_trigger_rule_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown trigger rule 'all_sucess'.*all_success"):
        evaluate_trigger_rule("all_sucess", UpstreamStates.count(["success"]))


def test_waiting_reason_says_how_many_upstream_tasks_are_done() -> None:
    evaluation = evaluate_trigger_rule("all_done", UpstreamStates.count(["success", None]))
    assert evaluation.decision == WAIT
    assert "1 of 2 done" in evaluation.reason


def test_branch_skips_the_direct_downstream_it_did_not_follow() -> None:
    graph = {"a": ["join"], "b": ["join"], "join": []}
    assert branch_skips(["a"], False, ["a", "b"], graph) == {"b"}


def test_short_circuit_ignoring_trigger_rules_skips_everything_downstream() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": []}
    assert branch_skips([], True, ["a"], graph) == {"a", "b", "c"}
    assert branch_skips([], False, ["a"], graph) == {"a"}


def _waits_through_one_at_a_time(rule: str, upstream: UpstreamStates) -> int:
    unfinished = upstream.considered - upstream.done
    for more in range(1, unfinished + 1):
        after = UpstreamStates(upstream.total, upstream.success + more, upstream.skipped,
                               upstream.failed, upstream.upstream_failed, upstream.removed)
        if evaluate_trigger_rule(rule, after).decision != WAIT:
            return more - 1
    return 0


@pytest.mark.parametrize("rule", sorted(TRIGGER_RULES))
def test_successes_a_waiting_task_waits_through_are_counted_right(rule: str) -> None:
    """The scheduler skips evaluating a run for that many successes: one too many would leave
    a ready task waiting. Every mix of up to six upstream states where the rule waits."""
    import itertools

    kinds = ("success", "skipped", "failed", "upstream_failed", "removed", None)
    checked = 0
    for size in range(1, 7):
        for states in itertools.combinations_with_replacement(kinds, size):
            upstream = UpstreamStates.count(states)
            if evaluate_trigger_rule(rule, upstream).decision != WAIT:
                continue
            assert successes_it_waits_through(rule, upstream) == \
                _waits_through_one_at_a_time(rule, upstream), states
            checked += 1
    assert checked or rule == "always"
