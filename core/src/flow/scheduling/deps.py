"""Trigger rule evaluation: may a task run, given the states of its upstream task instances?

Pure logic over counts, shared by ``flow dags test`` and the scheduler, so the two can never
disagree. The semantics follow Airflow's ``TriggerRuleDep`` (with ``flag_upstream_failed``):
besides "run" and "wait", a rule can already tell that a task will never run, and then says
whether it ends ``skipped`` or ``upstream_failed``.

``removed`` upstream task instances (map indexes that vanished) count as done and are otherwise
ignored: they neither satisfy nor break a rule.

Branching is decided elsewhere: a branch operator records the task ids it follows, and
:func:`branch_skips` says which downstream tasks the decision skips at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from flow.states import TaskInstanceState as TIS

# The rules of flow.authoring.trigger_rule.TriggerRule, by value: this module must not import
# authoring code (the scheduler evaluates serialized DAGs).
TRIGGER_RULES = frozenset({
    "all_success", "all_failed", "all_done", "all_skipped", "one_success", "one_failed",
    "one_done", "none_failed", "none_failed_min_one_success", "none_skipped", "always",
})

# The key under which a branching task stores the ids it followed (see RuntimeTaskInstance).
FOLLOWED_XCOM_KEY = "__flow_followed__"


class Decision(StrEnum):
    RUN = "run"
    WAIT = "wait"
    SKIP = "skipped"
    UPSTREAM_FAILED = "upstream_failed"


@dataclass(frozen=True)
class UpstreamStates:
    """How many upstream task instances are in each state. ``total`` includes unfinished ones."""

    total: int = 0
    success: int = 0
    skipped: int = 0
    failed: int = 0
    upstream_failed: int = 0
    removed: int = 0

    @classmethod
    def count(cls, states: Iterable[str | None]) -> UpstreamStates:
        """Count a list of upstream states (``None`` is a task instance that has not run)."""
        # list.count runs in C: five passes over a few states cost less than a Counter.
        found = states if isinstance(states, list) else list(states)
        return cls(
            total=len(found),
            success=found.count(TIS.SUCCESS),
            skipped=found.count(TIS.SKIPPED),
            failed=found.count(TIS.FAILED),
            upstream_failed=found.count(TIS.UPSTREAM_FAILED),
            removed=found.count(TIS.REMOVED),
        )

    @property
    def considered(self) -> int:
        return self.total - self.removed

    @property
    def done(self) -> int:
        return self.success + self.skipped + self.failed + self.upstream_failed

    @property
    def all_done(self) -> bool:
        return self.done >= self.considered

    @property
    def failures(self) -> int:
        return self.failed + self.upstream_failed


@dataclass(frozen=True)
class TriggerEvaluation:
    decision: Decision
    reason: str


def evaluate_trigger_rule(rule: str, upstream: UpstreamStates) -> TriggerEvaluation:
    """Decide what a task with trigger rule ``rule`` does given its upstream states.

    A task without upstream tasks always runs. Raises ``ValueError`` for an unknown rule (the
    DAG's validation already refuses one, with file and line).
    """
    rule = str(rule)
    if rule not in TRIGGER_RULES:
        known = ", ".join(sorted(TRIGGER_RULES))
        raise ValueError(f"unknown trigger rule {rule!r}; known: {known}")
    if upstream.considered <= 0 or rule == "always":
        return TriggerEvaluation(Decision.RUN, "no upstream tasks to wait for"
                                 if upstream.considered <= 0 else "trigger rule always")
    verdict = _RULES[rule](upstream)
    if verdict is not None:
        return verdict
    return TriggerEvaluation(Decision.WAIT, f"{rule}: waiting for upstream tasks "
                                            f"({upstream.done} of {upstream.considered} done)")


def successes_it_waits_through(rule: str, upstream: UpstreamStates) -> int:
    """How many more upstream successes a task that waits (``rule``, ``upstream``) can see
    and still wait: 0 when the next one may decide it. The scheduler skips evaluating a run
    while every end it sees is such a success (see ``RunManager.must_evaluate``).

    Every rule decides, as successes come, either at the first one or once all are done;
    so two evaluations answer, however many upstream tasks there are. A rule that decided
    in between would be found by the count that follows, one success at a time."""
    unfinished = upstream.considered - upstream.done

    def waits_after(more: int) -> bool:
        after = replace(upstream, success=upstream.success + more)
        return evaluate_trigger_rule(rule, after).decision == Decision.WAIT

    if unfinished <= 1 or not waits_after(1):
        return 0
    if waits_after(unfinished - 1):
        return unfinished - 1
    return next(more - 1 for more in range(2, unfinished) if not waits_after(more))


def _run(rule: str) -> TriggerEvaluation:
    return TriggerEvaluation(Decision.RUN, f"{rule} is met")


def _all_success(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.failures:
        return TriggerEvaluation(Decision.UPSTREAM_FAILED, "all_success: an upstream task failed")
    if up.skipped:
        return TriggerEvaluation(Decision.SKIP, "all_success: an upstream task was skipped")
    return _run("all_success") if up.success >= up.considered else None


def _all_failed(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.success or up.skipped:
        return TriggerEvaluation(Decision.SKIP, "all_failed: an upstream task did not fail")
    return _run("all_failed") if up.failures >= up.considered else None


def _all_done(up: UpstreamStates) -> TriggerEvaluation | None:
    return _run("all_done") if up.all_done else None


def _all_skipped(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.success or up.failures:
        return TriggerEvaluation(Decision.SKIP, "all_skipped: an upstream task was not skipped")
    return _run("all_skipped") if up.skipped >= up.considered else None


def _one_success(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.success:
        return _run("one_success")
    if up.all_done:
        if up.skipped >= up.considered:
            return TriggerEvaluation(Decision.SKIP, "one_success: every upstream task skipped")
        return TriggerEvaluation(Decision.UPSTREAM_FAILED,
                                 "one_success: no upstream task succeeded")
    return None


def _one_failed(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.failures:
        return _run("one_failed")
    if up.all_done:
        return TriggerEvaluation(Decision.SKIP, "one_failed: no upstream task failed")
    return None


def _one_done(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.success or up.failed:
        return _run("one_done")
    if up.all_done:
        return TriggerEvaluation(Decision.SKIP, "one_done: no upstream task succeeded or failed")
    return None


def _none_failed(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.failures:
        return TriggerEvaluation(Decision.UPSTREAM_FAILED, "none_failed: an upstream task failed")
    return _run("none_failed") if up.all_done else None


def _none_failed_min_one_success(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.failures:
        return TriggerEvaluation(Decision.UPSTREAM_FAILED,
                                 "none_failed_min_one_success: an upstream task failed")
    if up.skipped >= up.considered:
        return TriggerEvaluation(Decision.SKIP,
                                 "none_failed_min_one_success: every upstream task skipped")
    return _run("none_failed_min_one_success") if up.all_done else None


def _none_skipped(up: UpstreamStates) -> TriggerEvaluation | None:
    if up.skipped:
        return TriggerEvaluation(Decision.SKIP, "none_skipped: an upstream task was skipped")
    return _run("none_skipped") if up.all_done else None


_RULES = {
    "all_success": _all_success,
    "all_failed": _all_failed,
    "all_done": _all_done,
    "all_skipped": _all_skipped,
    "one_success": _one_success,
    "one_failed": _one_failed,
    "one_done": _one_done,
    "none_failed": _none_failed,
    "none_failed_min_one_success": _none_failed_min_one_success,
    "none_skipped": _none_skipped,
}


def branch_skips(followed: Iterable[str], skip_all_downstream: bool,
                 direct_downstream: Iterable[str],
                 downstream_of: Mapping[str, Iterable[str]]) -> set[str]:
    """The task ids a branch decision skips at once.

    A branch skips each direct downstream task it did not follow. With ``skip_all_downstream``
    (a short circuit that ignores downstream trigger rules) it skips everything downstream of the
    tasks it did not follow, transitively; otherwise those tasks decide through their own rules.
    """
    followed_ids = set(followed)
    skipped = {task_id for task_id in direct_downstream if task_id not in followed_ids}
    if not skip_all_downstream:
        return skipped
    pending = list(skipped)
    while pending:
        for child in downstream_of.get(pending.pop(), ()):
            if child not in skipped:
                skipped.add(child)
                pending.append(child)
    return skipped
