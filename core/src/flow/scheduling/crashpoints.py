"""Named crash points: places in the scheduler between one commit and the next step, where a
test can make the scheduler die as if by ``kill -9``.

``FLOW_CRASH_AT=<name>`` (or ``<name>:<n>`` for the n-th time the point is reached, default the
first) makes :func:`crash_point` send SIGKILL to its own process when it reaches that point. The
variable is read once at import; unset, a crash point costs one comparison. The names, in the
order a run meets them:

===================  ========================================================================
``run_created``      a scheduled DAG run (state queued) was committed
``run_started``      a queued run was committed as running, before its tasks are evaluated
``run_evaluated``    task instances were committed as scheduled / skipped / upstream_failed,
                     and those that may run now as queued (one transaction)
``tries_queued``     tries were committed as queued, before they reach the executor
``tries_submitted``  tries were handed to the executor, before any event is applied
``events_applied``   the executor's events were applied, before the next evaluation
``run_finished``     a DAG run was committed as finished, before its callbacks start
``tries_adopted``    a dead scheduler's tries were claimed, before they are handed out again
===================  ========================================================================

Used by the crash-safety tests (``core/tests/scheduler/test_crash_points.py``); the list above
is :data:`CRASH_POINTS`, which those tests walk.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = ("run_created", "run_started", "run_evaluated", "tries_queued",
                "tries_submitted", "events_applied", "run_finished", "tries_adopted")

_name, _, _nth = (os.environ.get("FLOW_CRASH_AT") or "").partition(":")
_TARGET = _name or None
_remaining = int(_nth or 1)


def crash_point(name: str) -> None:
    """Die with SIGKILL here if ``FLOW_CRASH_AT`` names this point (and its count is reached)."""
    global _remaining
    if _TARGET is None or name != _TARGET:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
