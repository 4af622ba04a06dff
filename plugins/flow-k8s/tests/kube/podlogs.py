"""Container logs on disk, shared by the kubelet (writer) and the API server (reader).

Like the CRI log format, each record is `<RFC 3339 nano time> <stream> <F|P> <text>`: F ends
a line, P is a partial line (output that had no newline yet when the process ended).
A container's run number N writes `<N>.log` and, once its output is closed, `<N>.done`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def container_dir(state_dir: Path, namespace: str, pod: str, uid: str, container: str) -> Path:
    return state_dir / "logs" / f"{namespace}_{pod}_{uid}" / container


def log_path(state_dir: Path, namespace: str, pod: str, uid: str, container: str,
             run: int) -> Path:
    return container_dir(state_dir, namespace, pod, uid, container) / f"{run}.log"


def nano_timestamp(moment: dt.datetime | None = None) -> str:
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def format_record(stream: str, text: bytes, complete: bool) -> bytes:
    flag = b"F" if complete else b"P"
    return nano_timestamp().encode() + b" " + stream.encode() + b" " + flag + b" " + text + b"\n"


@dataclass(frozen=True)
class Record:
    time: str
    text: bytes
    complete: bool

    def moment(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.time[:26] + "+00:00")

    def render(self, timestamps: bool) -> bytes:
        prefix = (self.time.encode() + b" ") if timestamps else b""
        return prefix + self.text + (b"\n" if self.complete else b"")


def parse_record(line: bytes) -> Record:
    time, _stream, flag, text = line.rstrip(b"\n").split(b" ", 3)
    return Record(time.decode(), text, flag == b"F")


class LogReader:
    """Reads whole records from a growing log file, so follow never splits a line."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._pending = b""

    def read(self) -> Iterator[Record]:
        chunk = self._file.read()
        if not chunk:
            return
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line:
                yield parse_record(line)

    def close(self) -> None:
        self._file.close()
