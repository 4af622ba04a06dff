"""What the test cluster itself costs: `python -m kube.bench [--pods N]` (with `tests/` on
PYTHONPATH) creates N trivial pods through the official client, waits for all to finish and
deletes them, and prints the time of each step. flow's own pod costs come on top."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from .cluster import KubeCluster


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kube.bench")
    parser.add_argument("--pods", type=int, default=200)
    args = parser.parse_args()
    import kubernetes.client

    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        with KubeCluster(Path(workdir)) as cluster:
            ready = time.perf_counter()
            with cluster.api_client() as api_client:
                core = kubernetes.client.CoreV1Api(api_client)
                for index in range(args.pods):
                    manifest: Any = {  # the client takes a dict as the body, too
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"bench-{index}", "labels": {"bench": "yes"}},
                        "spec": {"restartPolicy": "Never", "containers": [
                            {"name": "main", "image": "bench", "command": ["true"]}]}}
                    core.create_namespaced_pod("default", manifest)
                created = time.perf_counter()
                while sum(pod["status"].get("phase") == "Succeeded"
                          for pod in cluster.pods()) < args.pods:
                    time.sleep(0.05)
                finished = time.perf_counter()
                core.delete_collection_namespaced_pod("default", label_selector="bench=yes")
                cluster.wait_for_no_pods(60)
                deleted = time.perf_counter()
        stopped = time.perf_counter()
    print(f"cluster start            {ready - started:7.2f} s")
    print(f"create {args.pods:4d} pods         {created - ready:7.2f} s "
          f"({args.pods / (created - ready):.0f} pods/s)")
    print(f"all succeeded after      {finished - created:7.2f} s more")
    print(f"delete all               {deleted - finished:7.2f} s")
    print(f"cluster stop             {stopped - deleted:7.2f} s")


if __name__ == "__main__":
    main()
