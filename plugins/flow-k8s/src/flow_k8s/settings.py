"""The ``[kubernetes]`` section of ``flow.toml`` (each key overridable by
``FLOW__KUBERNETES__KEY``).

Where the cluster is (``in_cluster``, ``kubeconfig`` + ``context``, or ``conn_id``: a flow
connection of type ``kubernetes``), where pods go (``namespace``), what they run (``image``,
``pod_template_file`` or ``pod_template`` -- a TOML table or JSON -- and ``worker_command``),
and how the executor treats them (deletion, timeouts, batching, the scheduler id label).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

SECTION = "kubernetes"


class KubernetesConfigError(ValueError):
    """A ``[kubernetes]`` setting, a pod template or an ``executor_config`` is unusable; the
    message names it."""


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str = "default"
    image: str = ""
    pod_template_file: str = ""
    pod_template: dict[str, Any] = field(default_factory=dict)
    worker_command: tuple[str, ...] = ("flow",)
    in_cluster: bool = False
    kubeconfig: str = ""
    context: str = ""
    conn_id: str = ""
    delete_worker_pods: bool = True
    delete_worker_pods_on_failure: bool = False
    worker_pods_pending_timeout: float = 300.0
    image_pull_grace: float = 60.0
    worker_pods_creation_batch_size: int = 16
    scheduler_id: str = ""
    watch_timeout: int = 30
    api_retries: int = 5

    @classmethod
    def load(cls, config: Any = None) -> KubernetesSettings:
        from flow.plugin_support import plugin_settings

        section = plugin_settings(SECTION, config)
        default = cls()
        inline = _inline_template(section, config)
        command = section.get_str("worker_command", "flow")
        return cls(
            namespace=section.get_str("namespace", default.namespace),
            image=section.get_str("image", default.image),
            pod_template_file=section.get_str("pod_template_file", ""),
            pod_template=inline,
            worker_command=_command(command, section.source("worker_command")),
            in_cluster=section.get_bool("in_cluster", default.in_cluster),
            kubeconfig=section.get_str("kubeconfig", ""),
            context=section.get_str("context", ""),
            conn_id=section.get_str("conn_id", ""),
            delete_worker_pods=section.get_bool("delete_worker_pods", True),
            delete_worker_pods_on_failure=section.get_bool("delete_worker_pods_on_failure",
                                                           False),
            worker_pods_pending_timeout=max(0.0, section.get_float(
                "worker_pods_pending_timeout", default.worker_pods_pending_timeout)),
            image_pull_grace=max(0.0, section.get_float("image_pull_grace",
                                                        default.image_pull_grace)),
            worker_pods_creation_batch_size=max(1, section.get_int(
                "worker_pods_creation_batch_size", default.worker_pods_creation_batch_size)),
            scheduler_id=section.get_str("scheduler_id", ""),
            watch_timeout=max(1, section.get_int("watch_timeout", default.watch_timeout)),
            api_retries=max(0, section.get_int("api_retries", default.api_retries)),
        )


def _inline_template(section: Any, config: Any) -> dict[str, Any]:
    """``pod_template``: a JSON string (from a variable or the file), or a TOML table."""
    import tomllib
    from pathlib import Path

    from flow.config import Config, ConfigError

    try:
        text = section.get_str("pod_template", "")
    except ConfigError:  # not a string: a table of flow.toml, read as it is
        path = Path((config or Config()).path)
        table = tomllib.loads(path.read_text()).get(SECTION, {}).get("pod_template")
        if not isinstance(table, dict):
            raise KubernetesConfigError(f"[kubernetes] pod_template in {path} must be a table "
                                        "or a JSON string (a pod manifest)") from None
        return table
    return _json_object(text, section.source("pod_template")) if text else {}


def _json_object(text: str, origin: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise KubernetesConfigError(f"[kubernetes] pod_template from {origin} is not JSON: "
                                    f"{err}") from None
    if not isinstance(value, dict):
        raise KubernetesConfigError(f"[kubernetes] pod_template from {origin} must be a JSON "
                                    f"object (a pod manifest), got {type(value).__name__}")
    return value


def _command(text: str, origin: str | None) -> tuple[str, ...]:
    """``worker_command``: a JSON list or a shell-quoted string (``/venv/bin/flow``)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parts = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise KubernetesConfigError(f"[kubernetes] worker_command from {origin} is not a "
                                        f"JSON list: {err}") from None
    else:
        parts = shlex.split(stripped)
    if not parts or not all(isinstance(part, str) and part for part in parts):
        raise KubernetesConfigError(f"[kubernetes] worker_command from {origin} must name the "
                                    f"flow command, e.g. \"flow\", got {text!r}")
    return tuple(parts)
