"""A small Kubernetes API server for tests: the REST protocol the official client speaks, over
HTTP on loopback with bearer-token auth.

Run as `python -m kube.apiserver --state-dir D --token T [--port 0]`; it prints
`listening on <port>` once it accepts connections, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import discovery
from .api import Api, Selection
from .jobs import JobController
from .meta import ApiError, Obj, bad_request, stop_with_parent
from .podlogs import LogReader, container_dir
from .resources import RESOURCES, ResourceType
from .store import Change, Store

BOOKMARK_INTERVAL = 2.0


class Route:
    def __init__(self, rt: ResourceType, namespace: str | None, name: str | None,
                 subresource: str | None) -> None:
        self.rt, self.namespace, self.name, self.subresource = rt, namespace, name, subresource


def parse_route(path: str) -> Route | None:
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
        if parts[2] != "v1":
            return None
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] not in RESOURCES or len(rest) > 3:
        return None
    rt = RESOURCES[rest[0]]
    if rt.group != group or (namespace is not None and not rt.namespaced):
        return None
    return Route(rt, namespace, rest[1] if len(rest) > 1 else None,
                 rest[2] if len(rest) > 2 else None)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], *, state_dir: Path, token: str,
                 history: int, verbose: bool) -> None:
        super().__init__(address, Handler)
        self.state_dir = state_dir
        self.token = token
        self.verbose = verbose
        self.store = Store(history)
        self.api = Api(self.store)
        self.api.ensure_namespace("default")
        self.jobs = JobController(self.api)
        self.store.add_listener(self.jobs.on_change)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK hold every keep-alive answer back by 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing ---------------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            body = self._read_body()
            if url.path in ("/healthz", "/livez", "/readyz"):
                self._send_text(200, "ok")
                return
            if self.headers.get("Authorization") != f"Bearer {self.server.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if method == "POST" and url.path == "/testing/compact":
                # Not Kubernetes: how a test makes every older resourceVersion expire.
                self.server.store.compact()
                self._send_json(200, {"resourceVersion": str(self.server.store.resource_version)})
                return
            if method == "GET" and (answer := discovery.document(url.path)) is not None:
                self._send_json(200, answer)
                return
            route = parse_route(url.path)
            if route is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._dispatch(method, route, body)
        except ApiError as error:
            self._send_json(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self._send_json(500, ApiError(500, "InternalError",
                                          traceback.format_exc(limit=3)).status())

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError as garbled:
            raise bad_request(f"the request body is not JSON: {garbled}") from garbled

    def _send_json(self, code: int, body: Obj) -> None:
        self._send_bytes(code, json.dumps(body).encode(), "application/json")

    def _send_text(self, code: int, text: str) -> None:
        self._send_bytes(code, text.encode(), "text/plain")

    def _send_bytes(self, code: int, payload: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, payload: bytes) -> None:
        if payload:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def _number(self, name: str) -> int | None:
        text = self.query.get(name)
        if not text:
            return None
        try:
            return int(text)
        except ValueError as garbled:
            raise bad_request(f"{name}: invalid value {text!r}: must be an integer") \
                from garbled

    def _options(self, body: Any) -> Obj:
        options: Obj = dict(body) if isinstance(body, dict) else {}
        if "gracePeriodSeconds" in self.query:
            options["gracePeriodSeconds"] = self._number("gracePeriodSeconds")
        if "propagationPolicy" in self.query:
            options["propagationPolicy"] = self.query["propagationPolicy"]
        return options

    # -- verbs ------------------------------------------------------------------------------

    def _dispatch(self, method: str, route: Route, body: Any) -> None:
        api, rt = self.server.api, route.rt
        namespace = route.namespace if rt.namespaced else None
        if route.name is None:
            selection = Selection(rt, route.namespace, self.query.get("labelSelector"),
                                  self.query.get("fieldSelector"))
            if method == "GET" and self.query.get("watch") in ("true", "1"):
                self._watch(selection)
            elif method == "GET":
                limit = self._number("limit")
                self._send_json(200, api.list(selection, self.query.get("resourceVersion"),
                                              self.query.get("resourceVersionMatch"), limit,
                                              self.query.get("continue")))
            elif method == "POST":
                if rt.namespaced and route.namespace is None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this "
                                   "method on the requested resource")
                self._send_json(201, api.create(rt, namespace, body,
                                                dry_run=self.query.get("dryRun") == "All"))
            elif method == "DELETE":
                self._send_json(200, api.delete_collection(selection, self._options(body)))
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a "
                               "collection")
            return
        name, sub = route.name, route.subresource
        if sub not in (None, "status", "log", "binding") or \
                (sub in ("log", "binding") and rt.plural != "pods") or \
                (sub == "status" and not rt.has_status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and sub == "log":
            self._log(namespace or "default", name)
        elif method == "GET":
            self._send_json(200, api.get(rt, namespace, name))
        elif method == "POST" and sub == "binding":
            self._send_json(201, api.bind(namespace or "default", name, body or {}))
        elif method == "PUT":
            self._send_json(200, api.replace(rt, namespace, name, body, sub))
        elif method == "PATCH":
            self._send_json(200, api.patch(rt, namespace, name,
                                           self.headers.get("Content-Type") or "", body, sub))
        elif method == "DELETE" and sub is None:
            obj = api.delete(rt, namespace, name, self._options(body))
            if rt.plural == "pods" or (obj["metadata"].get("deletionTimestamp") and \
                    obj["metadata"].get("finalizers")):
                self._send_json(200, obj)
            else:
                self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                      "status": "Success",
                                      "details": {"name": name, "group": rt.group,
                                                  "kind": rt.plural,
                                                  "uid": obj["metadata"]["uid"]}})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")

    def _watch(self, selection: Selection) -> None:
        store = self.server.store
        timeout = self._number("timeoutSeconds") or None
        deadline = time.monotonic() + timeout if timeout else None
        bookmarks = self.query.get("allowWatchBookmarks") in ("true", "1")
        requested = self.query.get("resourceVersion") or "0"
        with store.changed:
            epoch = store.epoch
            initial: list[Obj] = []
            if requested == "0":
                initial = [obj for obj in store.items(selection.rt.plural, selection.namespace)
                           if selection.matches(obj)]
                last = store.resource_version
            else:
                try:
                    last = int(requested)
                except ValueError as garbled:
                    raise bad_request(f"invalid resource version {requested!r}") from garbled
        self._start_stream("application/json")
        try:
            for obj in initial:
                self._send_event("ADDED", obj)
            self._stream_changes(selection, last, epoch, deadline, bookmarks)
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream_changes(self, selection: Selection, last: int, epoch: int,
                        deadline: float | None, bookmarks: bool) -> None:
        store = self.server.store
        last_sent = time.monotonic()
        while not store.closed and store.epoch == epoch:
            try:
                changes, seen = store.changes_after(last)
            except ApiError as too_old:
                self._send_event("ERROR", too_old.status())
                return
            for change in changes:
                event = watch_event(selection, change)
                if event is not None:
                    self._send_event(*event)
                    last_sent = time.monotonic()
                last = change.resource_version
            if deadline is not None and time.monotonic() >= deadline:
                return
            if bookmarks and time.monotonic() - last_sent > BOOKMARK_INTERVAL:
                self._send_event("BOOKMARK", {"kind": selection.rt.kind,
                                              "apiVersion": selection.rt.api_version,
                                              "metadata": {"resourceVersion": str(last)}})
                last_sent = time.monotonic()
            if self._client_gone():
                self.close_connection = True
                return
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            store.wait(seen, epoch, wait)

    def _send_event(self, kind: str, obj: Obj) -> None:
        self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

    def _log(self, namespace: str, name: str) -> None:
        pod = self.server.api.get(RESOURCES["pods"], namespace, name)
        containers = [c["name"] for c in pod["spec"].get("initContainers", []) +
                      pod["spec"]["containers"]]
        container = self.query.get("container")
        if container is None:
            if len(pod["spec"]["containers"]) > 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose "
                                  f"one of: [{' '.join(containers)}]")
            container = pod["spec"]["containers"][0]["name"]
        if container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        folder = container_dir(self.server.state_dir, namespace, name, pod["metadata"]["uid"],
                               container)
        runs = sorted((int(p.stem) for p in folder.glob("*.log")), reverse=True)
        previous = self.query.get("previous") in ("true", "1")
        if previous:
            if len(runs) < 2:
                raise bad_request(f'previous terminated container "{container}" in pod '
                                  f'"{name}" not found')
            runs = runs[1:]
        if not runs:
            reason = _waiting_reason(pod, container)
            if reason is None:
                self._send_text(200, "")
                return
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                              f"{reason}")
        self._stream_log(namespace, name, pod["metadata"]["uid"], folder, runs[0])

    def _stream_log(self, namespace: str, name: str, uid: str, folder: Path, run: int) -> None:
        follow = self.query.get("follow") in ("true", "1") and \
            self.query.get("previous") not in ("true", "1")
        timestamps = self.query.get("timestamps") in ("true", "1")
        tail = self._number("tailLines")
        since = self._number("sinceSeconds")
        limit = self._number("limitBytes")
        reader = LogReader(folder / f"{run}.log")
        done = folder / f"{run}.done"
        try:
            records = list(reader.read())
            if since is not None:
                cutoff = time.time() - since
                records = [r for r in records if r.moment().timestamp() >= cutoff]
            if tail is not None:
                records = records[-tail:] if tail > 0 else []
            payload = b"".join(record.render(timestamps) for record in records)
            if not follow:
                self._send_bytes(200, payload[:limit] if limit else payload, "text/plain")
                return
            self._start_stream("text/plain")
            sent = 0
            while True:
                if limit is not None:
                    payload = payload[:max(0, limit - sent)]
                self._chunk(payload)
                sent += len(payload)
                if limit is not None and sent >= limit:
                    break
                finished = done.exists() or self.server.store.get(
                    ("pods", namespace, name)) is None
                payload = b"".join(r.render(timestamps) for r in reader.read())
                if finished and not payload:
                    break
                if not payload:
                    if self._client_gone():
                        self.close_connection = True
                        return
                    time.sleep(0.05)
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            reader.close()


def _waiting_reason(pod: Obj, container: str) -> str | None:
    status = pod.get("status") or {}
    for item in (status.get("initContainerStatuses") or []) + \
            (status.get("containerStatuses") or []):
        if item.get("name") == container:
            state = item.get("state") or {}
            if "terminated" in state:
                return None
            return (state.get("waiting") or {}).get("reason") or "ContainerCreating"
    return "ContainerCreating"


def watch_event(selection: Selection, change: Change) -> tuple[str, Obj] | None:
    """A change as this watch sees it: an object that leaves the selection is DELETED for it,
    one that enters it is ADDED, as the real watch cache reports."""
    if change.resource != selection.rt.plural:
        return None
    matches_now = selection.matches(change.obj)
    if change.type == "MODIFIED":
        matched_before = change.previous is not None and selection.matches(change.previous)
        if matches_now and not matched_before:
            return "ADDED", change.obj
        if matched_before and not matches_now:
            return "DELETED", change.obj
    return (change.type, change.obj) if matches_now else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kube.apiserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--history", type=int, default=20000,
                        help="changes kept for watches; older resourceVersions get 410 Gone")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    server = Server((args.host, args.port), state_dir=args.state_dir, token=args.token,
                    history=args.history, verbose=args.verbose)

    def stop(signum: int, frame: object) -> None:
        server.store.close()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_with_parent()
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
