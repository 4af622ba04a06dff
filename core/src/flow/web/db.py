"""One database session per request, closed (and rolled back if uncommitted) at its end."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session


def db() -> Session:
    session: Session | None = g.get("_db")
    if session is None:
        from flow.store.session import get_engine, new_session

        session = g._db = new_session(get_engine())
    return session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def close(_error: BaseException | None) -> None:
        session: Session | None = g.pop("_db", None)
        if session is not None:
            session.close()
