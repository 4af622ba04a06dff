"""The audit page (``/audit/``) and its API route (``/api/v1/audit/records``): admins only.

Both go through flow's login like every page; ``access(read="admin")`` keeps viewers and
operators out.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue

blueprint = Blueprint("audit", __name__, url_prefix="/audit", template_folder="templates")
api_blueprint = Blueprint("audit_api", __name__, url_prefix="/api/v1/audit")

PAGE_SIZE = 100
MAX_LIMIT = 1000
FILTERS = ("actor", "action", "kind", "since")


class BadQuery(ValueError):
    pass


def _filters() -> dict[str, Any]:
    from flow_audit.cli import parse_moment

    filters: dict[str, Any] = {name: request.args.get(name, "").strip() or None
                               for name in ("actor", "action", "kind")}
    since = request.args.get("since", "").strip()
    if since:
        try:
            filters["since"] = parse_moment(since, "since")
        except Exception:
            raise BadQuery(f"query parameter 'since' must be a date or date-time, got "
                           f"{since!r}") from None
    return filters


def _int(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not 0 <= value <= maximum:
        raise BadQuery(f"query parameter {name!r} must be between 0 and {maximum}, got {value}")
    return value


def _records(limit: int, offset: int, filters: dict[str, Any]) -> list[Any]:
    from flow.plugin_support import metadata_engine
    from flow_audit import store

    engine = metadata_engine()
    if not store.tables_exist(engine):
        return []
    return store.query(engine, limit=limit, offset=offset, newest_first=True, **filters)


@blueprint.get("/")
def records_page() -> ResponseReturnValue:
    try:
        filters = _filters()
        offset = _int("offset", 0, 2**31 - 1)
    except BadQuery as err:
        return render_template("audit/records.html", records=[], error=str(err),
                               filters=request.args, offset=0, page_size=PAGE_SIZE,
                               stats=None), 400
    from flow_audit.recorder import recorder

    records = _records(PAGE_SIZE + 1, offset, filters)
    return render_template("audit/records.html", records=records[:PAGE_SIZE], error=None,
                           more=len(records) > PAGE_SIZE, filters=request.args,
                           offset=offset, page_size=PAGE_SIZE,
                           stats=recorder().stats.as_dict())


@api_blueprint.get("/records")
def records_api() -> ResponseReturnValue:
    try:
        filters = _filters()
        limit = _int("limit", 100, MAX_LIMIT) or 100
        offset = _int("offset", 0, 2**31 - 1)
    except BadQuery as err:
        return _problem(400, "Bad Request", str(err))
    records = _records(limit, offset, filters)
    return jsonify({"records": [r.as_dict() for r in records], "limit": limit,
                    "offset": offset})


def _problem(status: int, title: str, detail: str) -> ResponseReturnValue:
    response = jsonify({"type": "about:blank", "title": title, "status": status,
                        "detail": detail})
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def register(app: Flask) -> None:
    from flow.web import access, menu_of

    access(read="admin", write="admin")(records_page)
    access(read="admin", write="admin")(records_api)
    app.register_blueprint(blueprint)
    app.register_blueprint(api_blueprint)
    menu_of(app).add("Audit", "audit.records_page", role="admin")
