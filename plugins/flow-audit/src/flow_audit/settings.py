"""The ``[audit]`` section of ``flow.toml`` (each key overridable by ``FLOW__AUDIT__KEY``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AuditSettings:
    record_state_changes: bool = False
    record_connection_access: bool = True
    hmac_key: str = ""
    fail_closed: bool = False
    batch_size: int = 500
    flush_interval: float = 1.0
    max_buffer: int = 100_000
    shutdown_timeout: float = 10.0

    @classmethod
    def load(cls, config: Any = None) -> AuditSettings:
        from flow.plugin_support import plugin_settings

        section = plugin_settings("audit", config)
        default = cls()
        return cls(
            record_state_changes=section.get_bool("record_state_changes",
                                                  default.record_state_changes),
            record_connection_access=section.get_bool("record_connection_access",
                                                      default.record_connection_access),
            hmac_key=section.get_str("hmac_key", default.hmac_key),
            fail_closed=section.get_bool("fail_closed", default.fail_closed),
            batch_size=max(1, section.get_int("batch_size", default.batch_size)),
            flush_interval=max(0.0, section.get_float("flush_interval",
                                                      default.flush_interval)),
            max_buffer=max(1, section.get_int("max_buffer", default.max_buffer)),
            shutdown_timeout=max(0.0, section.get_float("shutdown_timeout",
                                                        default.shutdown_timeout)),
        )

    def __repr__(self) -> str:  # never print the key
        return (f"AuditSettings(record_state_changes={self.record_state_changes}, "
                f"hmac={'on' if self.hmac_key else 'off'}, fail_closed={self.fail_closed})")
