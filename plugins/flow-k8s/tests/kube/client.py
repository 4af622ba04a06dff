"""A small JSON client of the API server for the kubelet: plain `http.client`, so the kubelet
talks to the server over the same REST protocol as everyone else without the official
client's start-up cost."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from .meta import Obj


class ApiCallError(Exception):
    def __init__(self, code: int, status: Obj) -> None:
        super().__init__(f"{code} {status.get('reason')}: {status.get('message')}")
        self.code = code
        self.status = status


class Client:
    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self._local.connection = connection
        return connection

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", **query: Any) -> Obj:
        url = path + ("?" + urlencode(query) if query else "")
        payload = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, url, payload, headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                # A kept-alive connection the server closed: reconnect once.
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        answer: Obj = json.loads(data) if data else {}
        if response.status >= 400:
            raise ApiCallError(response.status, answer)
        return answer

    def watch(self, path: str, **query: Any) -> Iterator[Obj]:
        """Events of one watch request, until the server ends it."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            query["watch"] = "true"
            connection.request("GET", path + "?" + urlencode(query), headers=self.headers)
            response = connection.getresponse()
            if response.status >= 400:
                raise ApiCallError(response.status, json.loads(response.read() or b"{}"))
            while line := response.readline():
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()
