"""The ``[celery]`` section of ``flow.toml`` (each key overridable by ``FLOW__CELERY__KEY``).

Broker and result backend URLs may hold passwords: they are never logged or printed whole
(:func:`mask_url`), and ``repr`` of the settings masks them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
# Longer than the longest task: a Redis broker hands an unacknowledged message to another
# worker once this many seconds pass, and late acknowledgement keeps a message unacknowledged
# for the whole try. A redelivery is refused by the guarded start, but it is wasted work.
DEFAULT_VISIBILITY_TIMEOUT = 6 * 3600

def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (what logs and ``flow celery status``
    show)."""
    from flow.secrets.masking import mask_url_password

    return mask_url_password(url)


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0].lower() in {"redis", "rediss", "redis+socket", "sentinel"}


@dataclass(frozen=True)
class CelerySettings:
    """What the executor and the workers read of ``[celery]``."""

    broker_url: str = DEFAULT_BROKER
    # Empty: the broker's Redis when the broker is Redis, else the metadata database through
    # Celery's SQLAlchemy backend (``db+<[database] url>``).
    result_backend: str = ""
    # Prepended to every queue name, on both sides: deployments (or test runs) that share a
    # broker keep their messages apart.
    queue_prefix: str = ""
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    worker_concurrency: int = 0  # 0: one per CPU
    # Seconds a publish or a control command may take before it counts as failed (and is
    # retried from the executor's thread, never lost).
    operation_timeout: float = 5.0
    # Seconds between looks at a result database other than PostgreSQL while tries are in
    # flight (Redis pushes results and PostgreSQL notifies: there a look every second is the
    # safety net).
    result_poll_interval: float = 0.01
    # Seconds a result stays in the backend: long enough for a restarted scheduler to adopt.
    result_expires: int = 7 * 24 * 3600
    # Seconds between checks, for tries in flight, that the metadata database still has the
    # try queued or running (a try ended by zombie detection while its worker was lost).
    reconcile_interval: float = 5.0

    @classmethod
    def load(cls, config: Any = None) -> CelerySettings:
        from flow.plugin_support import plugin_settings

        section = plugin_settings("celery", config)
        default = cls()
        settings = cls(
            broker_url=section.get_str("broker_url", default.broker_url).strip(),
            result_backend=section.get_str("result_backend", default.result_backend).strip(),
            queue_prefix=section.get_str("queue_prefix", default.queue_prefix).strip(),
            visibility_timeout=section.get_int("visibility_timeout",
                                               default.visibility_timeout),
            worker_concurrency=section.get_int("worker_concurrency",
                                               default.worker_concurrency),
            operation_timeout=section.get_float("operation_timeout",
                                                default.operation_timeout),
            result_poll_interval=section.get_float("result_poll_interval",
                                                   default.result_poll_interval),
            result_expires=section.get_int("result_expires", default.result_expires),
            reconcile_interval=section.get_float("reconcile_interval",
                                                 default.reconcile_interval),
        )
        settings.check()
        return settings

    def check(self) -> None:
        from flow.config import ConfigError

        if "://" not in self.broker_url:
            raise ConfigError(f"[celery] broker_url must be a URL such as {DEFAULT_BROKER} or "
                              f"amqp://guest:guest@127.0.0.1:5672//, got "
                              f"{mask_url(self.broker_url)!r}")
        for name in ("visibility_timeout", "operation_timeout", "result_poll_interval",
                     "result_expires", "reconcile_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"[celery] {name} must be positive, got "
                                  f"{getattr(self, name)!r}")
        if self.worker_concurrency < 0:
            raise ConfigError(f"[celery] worker_concurrency must be 0 (one per CPU) or more, "
                              f"got {self.worker_concurrency}")

    def backend_url(self) -> str:
        """The result backend: configured, or derived from the broker and the metadata
        database."""
        if self.result_backend:
            return self.result_backend
        if is_redis(self.broker_url):
            return self.broker_url
        from flow.plugin_support import metadata_url

        return f"db+{metadata_url()}"

    def queue(self, name: str) -> str:
        """The broker's name of flow's queue ``name``."""
        return f"{self.queue_prefix}{name}"

    def __repr__(self) -> str:
        return (f"CelerySettings(broker_url={mask_url(self.broker_url)!r}, "
                f"result_backend={mask_url(self.result_backend)!r}, "
                f"queue_prefix={self.queue_prefix!r}, "
                f"visibility_timeout={self.visibility_timeout})")
