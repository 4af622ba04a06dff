"""The pool of a server database: a connection the server dropped (a restart, a killed backend)
is replaced at checkout once it sat idle, and a connection in steady use is handed out again
without a ping round trip."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

servers = pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)

OWN_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}


def _kill(engine, server_id: int) -> None:
    from flow.store.session import make_engine

    killer = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with killer.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_terminate_backend(:id)"), {"id": server_id})
            else:
                connection.execute(text(f"KILL {int(server_id)}"))
    finally:
        killer.dispose()


@servers
def test_a_dropped_connection_is_replaced_at_checkout_and_a_busy_one_is_not_pinged(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flow.store import session
    from flow.store.session import make_engine

    engine = make_engine(db_url)
    pings: list[int] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping",
                        lambda dbapi_connection: pings.append(1) or real_ping(dbapi_connection))
    own_id = text(OWN_ID[engine.dialect.name])
    try:
        with engine.connect() as connection:
            first = connection.scalar(own_id)
        with engine.connect() as connection:  # checked in a moment ago: no round trip
            assert connection.scalar(own_id) == first
        assert pings == []

        _kill(engine, first)
        monkeypatch.setattr(session, "PING_AFTER_IDLE", 0.05)
        time.sleep(0.2)  # idle in the pool for longer than the window

        with engine.connect() as connection:  # pinged, found dead, replaced: no error
            replacement = connection.scalar(own_id)
        assert replacement != first
        assert pings, "the idle connection was handed out without a ping"
    finally:
        engine.dispose()
