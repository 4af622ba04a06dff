"""The Celery application both sides share: its reliability settings and the one task it runs.

Celery's defaults suit short idempotent jobs; a flow try is neither, so the application says:

* ``task_acks_late``: a message is acknowledged when its try has ended, not when a worker takes
  it, so a worker that dies (``kill -9``, the OOM killer, a lost machine) before the try
  started leaves the message to the broker, which hands it to another worker;
* ``worker_prefetch_multiplier = 1``: a worker holds no message it is not running, so one
  slow try never holds others back while another worker idles;
* JSON only (``accept_content``, also for results): a message is data, never code (pickle);
* the state ``STARTED`` stored once the try has started in the metadata database (rather
  than Celery's ``task_track_started``, which stores it before the task runs, on the way to
  every try's start, and also for a delivery that is then refused);
* the Redis ``visibility_timeout`` longer than the longest task (``[celery]
  visibility_timeout``), so a running try's message is not handed out again meanwhile;
* ``task_reject_on_worker_lost = False``: when the pool process running a try dies, the
  message is not put back (a try that kills its process would otherwise be delivered for
  ever); the result says ``WorkerLostError``, the executor reports the try ``lost``, and the
  scheduler's zombie detection ends it and schedules the next try while tries remain.

Whatever the broker does on top (a redelivery, a duplicate publish), the worker's guarded start
in the metadata database (queued at try N -> running) runs each try at most once: a late or
duplicate delivery is refused and leaves no result behind (:func:`run_in_worker`).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from flow_celery.settings import CelerySettings, is_redis

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

TASK_NAME = "flow_celery.run_workload"
# Outcomes of a delivery that did not run its try: the try was not queued for it.
NOT_RUN = frozenset({"refused", "not_found"})
# The supervisor's events that end the try this delivery started ("refused" is not one: the
# try belongs to another delivery).
ENDED = frozenset({"success", "failed", "up_for_retry", "skipped", "lost"})


def make_app(settings: CelerySettings | None = None) -> Celery:
    """A Celery application on the configured broker and result backend."""
    from celery import Celery

    settings = settings or CelerySettings.load()
    app = Celery("flow", broker=settings.broker_url, backend=settings.backend_url(),
                 set_as_current=False)
    transport: dict[str, Any] = {}
    if is_redis(settings.broker_url):
        transport = {"visibility_timeout": settings.visibility_timeout,
                     # Messages of a worker that died are handed out again this soon after
                     # their visibility timeout, not up to ten sweeps later.
                     "unacked_restore_throttle": 1}
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_accept_content=["json"], event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=False, worker_prefetch_multiplier=1,
        broker_transport_options=transport, result_backend_transport_options=transport,
        task_default_queue=settings.queue("default"), task_create_missing_queues=True,
        result_expires=settings.result_expires, result_extended=False,
        # The executor keeps what it could not publish and publishes it again itself.
        task_publish_retry=False,
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        # A try goes on while the broker is away; its message's late acknowledgement may be
        # lost with the connection, and the redelivery is then refused by the guarded start.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False, worker_send_task_events=False,
        task_send_sent_event=False,
    )
    app.task(name=TASK_NAME, bind=True)(run_in_worker)
    return app


def run_in_worker(task: Any, workload_json: str) -> dict[str, Any]:
    """In a Celery pool process: run one try through ``flow tasks run``'s code, in a supervised
    child process (:func:`flow.execution.entrypoint.run_workload`, warm: each pool process
    imports a DAG file once), and return its outcome.

    The Celery state says ``STARTED`` once the try has started in the metadata database (a
    refused delivery never says so), and the outcome is stored the moment the try's end is
    committed; Celery's own store as the task returns then finds it there and keeps it.
    """
    from celery.exceptions import Ignore

    from flow.execution.entrypoint import outcome_of, run_workload
    from flow.execution.workload import TaskEvent, TaskWorkload
    from flow_celery.results import notify_result

    workload = TaskWorkload.from_json(workload_json)  # a bad message fails naming its field

    def started() -> None:
        _store(task, {"pid": os.getpid(), "hostname": task.request.hostname}, "STARTED")

    def ended(outcome: dict[str, Any]) -> None:
        if _store(task, outcome, "SUCCESS"):
            try:
                notify_result(task.backend, task.request.id)
            except Exception as err:  # the executor's poll reads it all the same
                log.warning("could not notify the result of %s: %s", task.request.id, err)

    base = {"key": workload.key.to_dict(), "try_number": workload.try_number}

    def on_event(event: TaskEvent) -> None:
        if event.state == "running":
            started()
        elif event.state in ENDED:
            ended(base | outcome_of(event))

    outcome = run_workload(workload, on_event=on_event, warm=True)
    if outcome.get("state") in NOT_RUN:
        # A duplicate or late delivery: the delivery that ran (or runs) the try owns the
        # result; writing "refused" over it would hide the try's outcome.
        raise Ignore()
    return outcome


def _store(task: Any, result: Any, state: str) -> bool:
    try:
        task.backend.store_result(task.request.id, result, state, request=task.request)
    except Exception as err:  # the backend is away: the end is stored again on return
        log.warning("could not store the %s state of Celery task %s: %s", state,
                    task.request.id, err)
        return False
    return True


def worker_app() -> Celery:
    """The application ``flow celery worker`` runs. flow's engines notice a fork themselves
    (``flow.store.session.make_engine``), so a pool process never uses a connection it
    inherited."""
    return make_app()
