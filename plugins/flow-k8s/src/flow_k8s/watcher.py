"""One list-then-watch loop over the pods a label selector matches.

The loop lists the pods (each handed to ``on_pod`` as ``SYNC``), then watches from the list's
``resourceVersion``, resuming from the last version it saw after a watch ends or the connection
drops. A 410 Gone (the version is older than the server keeps) means events may have been
missed: it lists again, and the listing hands over every pod's current state, so nothing is lost
as long as ``on_pod`` treats a pod's state rather than the event as what matters. Pods that
vanished between two listings are handed over as ``DELETED`` (with their last known body).

The watch is read here from the raw response rather than through ``kubernetes.watch.Watch``:
that class, asked for undecoded events, fails on an ``ERROR`` event (it reads a key only
decoded events have), and it cannot be interrupted from another thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from flow_k8s.client import Pods, describe_error, status_of
from flow_k8s.status import name_of

log = logging.getLogger(__name__)

PodCallback = Callable[[str, dict[str, Any]], None]


class Gone(Exception):
    """The watch's resourceVersion expired (HTTP 410): list again."""


class PodWatcher:
    def __init__(self, pods: Pods, selector: str, on_pod: PodCallback, *,
                 timeout_seconds: int = 30) -> None:
        self.pods = pods
        self.selector = selector
        self.on_pod = on_pod
        self.timeout_seconds = timeout_seconds
        self.resource_version = ""
        self.relists = 0
        self._known: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()

    def run(self) -> None:
        """Until :meth:`stop`: list, watch, resume; every error is logged and retried."""
        delay = 0.2
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                delay = 0.2
            except Exception as err:
                if is_gone(err):
                    log.info("pod watch (%s): resourceVersion %s expired, listing again",
                             self.selector, self.resource_version)
                    self.resource_version = ""
                    continue
                if self._stop.is_set():
                    break
                log.warning("pod watch (%s) failed, retrying in %.1f s: %s", self.selector,
                            delay, describe_error(err))
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:
                log.debug("closing the watch response failed", exc_info=True)

    def _list(self) -> None:
        items, version = self.pods.list(self.selector)
        self.relists += 1
        seen = {name_of(pod): pod for pod in items}
        for name, last in list(self._known.items()):
            if name not in seen:
                self._known.pop(name, None)
                self.on_pod("DELETED", last)
        for pod in items:
            self._known[name_of(pod)] = pod
            self.on_pod("SYNC", pod)
        self.resource_version = version

    def _watch(self) -> None:
        response: Any = self.pods.api.list_namespaced_pod(
            self.pods.namespace, label_selector=self.selector, watch=True,
            resource_version=self.resource_version, timeout_seconds=self.timeout_seconds,
            allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(10, self.timeout_seconds + 15))
        with self._lock:
            self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self._event(json.loads(line))
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def _event(self, event: dict[str, Any]) -> None:
        kind, body = str(event.get("type")), event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == 410:
                raise Gone()
            raise RuntimeError(f"watch error {body.get('code')}: {body.get('message')}")
        version = (body.get("metadata") or {}).get("resourceVersion")
        if kind != "BOOKMARK":
            name = name_of(body)
            if kind == "DELETED":
                self._known.pop(name, None)
            else:
                self._known[name] = body
            self.on_pod(kind, body)
        if version:
            self.resource_version = str(version)


def _lines(response: Any) -> Any:
    """The newline-separated JSON documents of a streaming response."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def is_gone(err: BaseException) -> bool:
    return isinstance(err, Gone) or status_of(err) == 410
