"""`KubeCluster`: the test API server and the process kubelet as two child processes, a
kubeconfig for them, and the few levers a test needs that Kubernetes has no API for."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import kubernetes.client

TESTS_DIR = Path(__file__).resolve().parent.parent
NODE_PREFIX = "flow-node-"
STOP_GRACE = 5.0


class KubeClusterError(Exception):
    pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class KubeCluster:
    """An API server on 127.0.0.1 and a kubelet running pods as local processes.

    `env` is added to every container's environment, under the pod's own env (which wins):
    what a real cluster would bake into the image, such as FLOW_HOME for the tests.
    """

    def __init__(self, workdir: Path, *, nodes: int = 1, token: str = "flow-test-token",
                 env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.nodes = nodes
        self.token = token
        self.env = dict(env or {})
        self.state_dir = self.workdir / "state"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.url = ""
        self._server: subprocess.Popen[bytes] | None = None
        self._kubelet: subprocess.Popen[bytes] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> KubeCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = os.pathsep.join(
            [str(TESTS_DIR)] + ([child_env["PYTHONPATH"]] if child_env.get("PYTHONPATH") else []))
        try:
            self._server = self._spawn(
                ["kube.apiserver", "--state-dir", str(self.state_dir), "--token", self.token],
                "apiserver.log", child_env)
            port = self._await_line(self._server, "listening on ", "apiserver.log").split()[-1]
            self.url = f"http://127.0.0.1:{port}"
            self._write_kubeconfig()
            bin_dir = str(Path(sys.executable).parent)
            container_env = {"PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin",
                                                      "/bin"]),
                             "HOME": str(home), **self.env}
            env_file = self.workdir / "container-env.json"
            env_file.write_text(json.dumps(container_env))
            self._kubelet = self._spawn(
                ["kube.kubelet", "--server", self.url, "--token", self.token, "--state-dir",
                 str(self.state_dir), "--env-file", str(env_file), "--nodes", str(self.nodes)],
                "kubelet.log", child_env)
            self._await_line(self._kubelet, "ready", "kubelet.log")
        except BaseException:
            self.stop()
            raise

    def _spawn(self, module: list[str], log_name: str,
               env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen([sys.executable, "-m", *module], stdout=subprocess.PIPE,
                                    stderr=log, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)

    def _await_line(self, process: subprocess.Popen[bytes], prefix: str, log_name: str,
                    timeout: float = 20.0) -> str:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = process.stdout.readline().decode()
                if line.startswith(prefix):
                    selector.close()
                    return line.strip()
                if not line:
                    break
        selector.close()
        log = (self.workdir / log_name).read_text(errors="replace")[-3000:]
        raise KubeClusterError(f"{process.args!r} did not start (exit code "
                               f"{process.poll()}); its log {self.workdir / log_name} "
                               f"ends with:\n{log}")

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "flow-test",
            "clusters": [{"name": "flow-test", "cluster": {"server": self.url}}],
            "users": [{"name": "flow-test", "user": {"token": self.token}}],
            "contexts": [{"name": "flow-test", "context": {"cluster": "flow-test",
                                                           "user": "flow-test",
                                                           "namespace": "default"}}],
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is YAML

    def stop(self) -> None:
        """Stops the kubelet (which kills its containers), any container it left, and the
        server."""
        for process in (self._kubelet, self._server):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for process in (self._kubelet, self._server):
            if process is not None and process.stdout is not None:
                process.stdout.close()
        self._kill_leftover_containers()
        self._kubelet = self._server = None

    def _kill_leftover_containers(self) -> None:
        """Kills the process groups of containers a dead kubelet could not reap, and waits
        until the kernel has taken them (they are not our children: no wait() to call)."""
        groups = []
        for pid_file in (self.state_dir / "pids").glob("*"):
            try:
                groups.append(int(pid_file.read_text()))
                os.killpg(groups[-1], signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
            pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + STOP_GRACE
        while groups and time.monotonic() < deadline:
            groups = [group for group in groups if _group_alive(group)]
            time.sleep(0.02)

    # -- clients ----------------------------------------------------------------------------

    def api_client(self) -> kubernetes.client.ApiClient:
        import kubernetes.client
        import kubernetes.config

        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Any:
        """A raw call to the API server, answered as parsed JSON."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise KubeClusterError(f"{method} {path}: {error.code} "
                                   f"{error.read().decode(errors='replace')}") from error

    # -- what tests inspect and do ----------------------------------------------------------

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        items: list[dict[str, Any]] = self.request("GET", path)["items"]
        return items

    def expire_watches(self) -> None:
        """Compacts history: open watches end, and any older resourceVersion gets 410."""
        self.request("POST", "/testing/compact")

    def hold_scheduling(self, held: bool = True) -> None:
        """Cordons (or uncordons) every node: new pods stay Pending, Unschedulable."""
        for index in range(self.nodes):
            self.request("PATCH", f"/api/v1/nodes/{NODE_PREFIX}{index}",
                         {"spec": {"unschedulable": True if held else None}},
                         "application/merge-patch+json")

    def kill_container(self, namespace: str, name: str, sig: int = 9) -> None:
        """Sends `sig` to the pod's running container processes (each a process group)."""
        pid_files = list((self.state_dir / "pids").glob(f"{namespace}_{name}_*"))
        if not pid_files:
            raise KubeClusterError(f"pod {namespace}/{name} has no running container")
        for pid_file in pid_files:
            try:
                os.killpg(int(pid_file.read_text()), sig)
            except (ProcessLookupError, ValueError):
                pass

    def wait_for_no_pods(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = self.pods()
            if not left:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        described = "; ".join(
            f"{pod['metadata']['namespace']}/{pod['metadata']['name']} "
            f"(phase {pod['status'].get('phase')}, "
            f"labels {pod['metadata'].get('labels') or {}}"
            + (f", deleting since {pod['metadata']['deletionTimestamp']}"
               if pod['metadata'].get('deletionTimestamp') else "") + ")"
            for pod in left)
        raise AssertionError(f"{len(left)} pod(s) left on the API server after {timeout:g}s: "
                             f"{described}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's and kubelet's own logs, for a failing test's message."""
        parts = []
        for name in ("apiserver.log", "kubelet.log"):
            path: Path = self.workdir / name
            if path.exists():
                text: IO[str]
                with path.open(errors="replace") as text:
                    parts.append(f"--- {name}\n" + "".join(text.readlines()[-lines:]))
        return "\n".join(parts)
