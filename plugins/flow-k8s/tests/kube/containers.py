"""One container as a local process: started in its own process group with only the pod's
environment, its stdout and stderr copied into the container log, watched for its memory
limit, and reported with the real exit code when it ends."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .meta import Obj, timestamp
from .podlogs import format_record

_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?|[kmM]|e\d+)?$")
_UNITS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
          "Ei": 2**60, "m": 10**-3}


def memory_bytes(quantity: str | None) -> int | None:
    if not quantity:
        return None
    match = _MEMORY.match(quantity)
    if match is None:
        return None
    number, unit = match.groups()
    if unit and unit.startswith("e"):
        return int(float(number) * 10 ** int(unit[1:]))
    return int(float(number) * _UNITS[unit or ""])


def image_id(image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"docker.io/library/{image.split(':')[0]}@sha256:{digest}"


@dataclass
class Exit:
    code: int
    reason: str
    message: str | None
    started_at: str | None
    finished_at: str
    container_id: str | None = None

    def state(self) -> Obj:
        terminated: Obj = {"exitCode": self.code, "reason": self.reason,
                           "startedAt": self.started_at, "finishedAt": self.finished_at}
        if self.message:
            terminated["message"] = self.message
        if self.container_id:
            terminated["containerID"] = self.container_id
        return {"terminated": terminated}


class ContainerProcess:
    """One run of one container."""

    def __init__(self, container: Obj, log_file: Path, pid_file: Path, cwd: Path,
                 env: dict[str, str]) -> None:
        self.container = container
        self.log_file = log_file
        self.pid_file = pid_file
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: str | None = None
        self.container_id = "containerd://" + os.urandom(32).hex()
        self.oom_killed = False
        self._log_lock = threading.Lock()

    def start(self) -> Exit | None:
        """Starts the process; an Exit when it could not start (StartError, as containerd)."""
        command = list(self.container.get("command") or [])
        if not command:
            return self.start_error(
                "the process kubelet does not model image entrypoints: container "
                f"{self.container['name']!r} has no `command`; give the pod a command")
        argv = command + list(self.container.get("args") or [])
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        try:
            self.process = subprocess.Popen(
                argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            return self.start_error(
                f'failed to create containerd task: failed to create shim task: OCI runtime '
                f'create failed: exec: "{argv[0]}": executable file not found in $PATH')
        except PermissionError:
            return self.start_error(f'exec: "{argv[0]}": permission denied')
        self.started_at = timestamp()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(self.process.pid))
        return None

    def start_error(self, message: str) -> Exit:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self.log_file.with_suffix(".done").touch()
        now = timestamp()
        return Exit(128, "StartError", message, now, now)

    def wait(self) -> Exit:
        """Copies output into the log until the process ends; then tears down its group."""
        assert self.process is not None and self.process.stdout and self.process.stderr
        with self.log_file.open("ab", buffering=0) as log:
            pumps = [threading.Thread(target=self._pump, args=(stream, name, log), daemon=True)
                     for stream, name in ((self.process.stdout, "stdout"),
                                          (self.process.stderr, "stderr"))]
            for pump in pumps:
                pump.start()
            limit = memory_bytes(((self.container.get("resources") or {}).get("limits")
                                  or {}).get("memory"))
            if limit is None:
                self.process.wait()
            while self.process.poll() is None:
                # Sampled, like a cgroup limit seen from outside: a test that wants OOMKilled
                # holds its allocation for a moment (see README.md).
                if self._group_rss() > limit:  # type: ignore[operator]
                    self.oom_killed = True
                    self.signal(signal.SIGKILL)
                time.sleep(0.1)
            # A container ends with its first process: whatever it left behind goes too.
            self.signal(signal.SIGKILL)
            for pump in pumps:
                pump.join(timeout=5)
        self.log_file.with_suffix(".done").touch()
        self.pid_file.unlink(missing_ok=True)
        code = self.process.returncode
        if code < 0:
            code = 128 - code
        if self.oom_killed:
            reason = "OOMKilled"
        else:
            reason = "Completed" if code == 0 else "Error"
        return Exit(code, reason, None, self.started_at, timestamp(), self.container_id)

    def _pump(self, stream: object, name: str, log: object) -> None:
        fd = stream.fileno()  # type: ignore[attr-defined]
        pending = b""
        while chunk := os.read(fd, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                with self._log_lock:
                    log.write(b"".join(format_record(name, line, True)  # type: ignore[attr-defined]
                                       for line in lines))
        if pending:
            with self._log_lock:
                log.write(format_record(name, pending, False))  # type: ignore[attr-defined]

    def signal(self, number: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, number)
        except (ProcessLookupError, PermissionError):
            pass

    def _group_rss(self) -> int:
        """Resident memory of the process and its descendants, from /proc."""
        assert self.process is not None
        total, pending, seen = 0, [self.process.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending += [int(child) for child in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
        return total
