"""What every API view needs: paging, body validation, the acting user, and lookups."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from flow.web.errors import ApiError
from flow.web.security import current_user, remote_addr

MAX_LIMIT = 1000


def int_arg(name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Bad Request", f"query parameter {name!r} must be an integer, "
                                           f"got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ApiError(400, "Bad Request", f"query parameter {name!r} must be between "
                                           f"{minimum} and {maximum}, got {value}")
    return value


def bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in {"true", "1", "yes"}:
        return True
    if raw.lower() in {"false", "0", "no"}:
        return False
    raise ApiError(400, "Bad Request", f"query parameter {name!r} must be true or false, "
                                       f"got {raw!r}")


def page() -> tuple[int, int]:
    limit = int_arg("limit", 100, minimum=1, maximum=MAX_LIMIT)
    offset = int_arg("offset", 0, minimum=0, maximum=2**31 - 1)
    assert limit is not None and offset is not None
    return limit, offset


def paginate(session: Session, statement: Select[Any], limit: int, offset: int
             ) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = list(session.scalars(statement.limit(limit).offset(offset)))
    return rows, int(total or 0)


def body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON body, validated against ``schema`` (400 naming the field)."""
    import jsonschema

    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "Bad Request", "the request body must be a JSON object "
                                           "(Content-Type: application/json)")
    try:
        jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the body"
        raise ApiError(400, "Bad Request", f"{where}: {err.message}") from None
    assert isinstance(data, dict)
    if "\\u0000" in json.dumps(data):
        raise ApiError(400, "Bad Request", "the body contains a NUL character (\\u0000), which "
                                           "no text column can store; remove it")
    return data


def actor() -> str:
    user = current_user()
    assert user is not None  # security.enforce let the request in
    return user.username


def action_kwargs(source: str = "api") -> dict[str, Any]:
    """The keyword arguments every flow.scheduling.actions function takes."""
    from flask import current_app

    return {"actor": actor(), "source": source, "remote_addr": remote_addr(),
            "plugins": current_app.extensions["flow.plugins"]}


def not_found(what: str) -> ApiError:
    return ApiError(404, "Not Found", f"{what} does not exist")


def record(action: str, target: str, details: dict[str, Any] | None = None, *,
           source: str = "api") -> None:
    """Record the request's action in its session (``db()``), whose changes it must follow and
    whose commit must follow it: a plugin that refuses the action raises
    :class:`~flow.exceptions.ActionVetoed` here, before anything is committed."""
    from flask import current_app

    from flow.store.event_log import record_user_action
    from flow.web.db import db

    record_user_action(actor(), action, target, {**(details or {}),
                                                 "remote_addr": remote_addr()},
                       source=source, plugins=current_app.extensions["flow.plugins"],
                       session=db())
