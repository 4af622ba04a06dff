"""The capabilities a conformance test may need, and what claiming each one promises.

A suite subclass claims the capabilities its component has (``claims = {"cancel", ...}``); a
test needing one it does not claim is skipped with the capability's name. The documentation's
capability table is generated from this dictionary (``python -m flow.testing._docgen
capabilities``), so the list and the docs cannot drift.
"""

from __future__ import annotations

CAPABILITIES: dict[str, dict[str, str]] = {
    "executor": {
        "cancel": "`cancel(key)` stops a running task; an event with a final state follows.",
        "timeouts": "`execution_timeout` ends a try that runs too long, reported as failed.",
        "parallelism": "Runs up to `parallelism` tasks at once, never more.",
        "isolation": "Each try runs in a process of its own: a task that kills its process, or "
                     "a worker killed from outside, is reported and never lost.",
        "adoption": "A new executor instance adopts the tasks a previous one submitted "
                    "(after a scheduler restart) and reports their outcome.",
    },
    "operator": {
        "execution": "The operator runs in a test DAG run with the arguments the factory gives "
                     "(it needs no service the test environment lacks).",
        "templating": "At least one template field, rendered from the task context.",
    },
    "xcom": {
        "large_payloads": "Values of a few megabytes round-trip (backends that store payloads "
                          "outside the metadata database).",
    },
    "secrets": {
        "variables": "The backend serves variables as well as connections.",
    },
    "timetable": {
        "scheduled": "`can_be_scheduled` is true: the timetable produces runs by itself.",
    },
    "package": {},
}


def all_capabilities() -> set[str]:
    return {name for group in CAPABILITIES.values() for name in group}
