"""The REST API's route declarations, from which the OpenAPI 3.1 document is built.

Each API view is registered with :meth:`ApiRegistry.operation`, which both adds the Flask route
(with its access rule) and records the method, path, parameters, request body and response
schema; :meth:`ApiRegistry.openapi` turns those records into the document. So the document can
not drift from the routes: a route exists only through its declaration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint

from flow.web.api import schemas
from flow.web.security import access

_PATH_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # Flask syntax, relative to /api/v1
    endpoint: str
    summary: str
    tag: str
    role: str
    query: Sequence[QueryParam]
    body: dict[str, Any] | None
    response: dict[str, Any] | None
    status: int
    public: bool = False
    errors: tuple[int, ...] = field(default=(400, 404, 409))


MAX_OFFSET = 2**31 - 1  # the largest OFFSET every database takes
PAGINATION = (
    QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
               "how many entries to return"),
    QueryParam("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
               "how many entries to skip"),
)


class ApiRegistry:
    def __init__(self, blueprint: Blueprint, prefix: str = "/api/v1") -> None:
        self.blueprint = blueprint
        self.prefix = prefix
        self.operations: list[Operation] = []

    def operation(self, method: str, path: str, *, summary: str, tag: str,
                  role: str = "viewer", query: Sequence[QueryParam] = (),
                  paginated: bool = False, body: dict[str, Any] | None = None,
                  response: dict[str, Any] | None = None, status: int = 200,
                  public: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            endpoint = view.__name__
            params = (*PAGINATION, *query) if paginated else tuple(query)
            self.operations.append(Operation(method, path, endpoint, summary, tag, role, params,
                                             body, response, status, public))
            rule = access(read=role, write=role, public=public)(view)
            self.blueprint.add_url_rule(path, endpoint, rule, methods=[method])
            return view

        return decorate

    def openapi(self, version: str) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            path = self.prefix + _PATH_PARAM.sub(r"{\2}", op.path)
            paths.setdefault(path, {})[op.method.lower()] = self._operation(op)
        return {
            "openapi": "3.1.0",
            "info": {"title": "flow REST API", "version": version,
                     "description": "Monitor and operate flow. Authenticate with "
                                    "'Authorization: Bearer <token>' (`flow users token create`)."},
            "servers": [{"url": "/"}],
            "paths": paths,
            "components": {
                "schemas": schemas.COMPONENTS,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                    "session": {"type": "apiKey", "in": "cookie",
                                                "name": "flow_session"}},
                "responses": {str(code): _problem_response(title)
                              for code, title in schemas.ERROR_TITLES.items()},
            },
            "security": [{"bearer": []}, {"session": []}],
        }

    def _operation(self, op: Operation) -> dict[str, Any]:
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 1, "maximum": 100_000}
                       if conv == "int" else
                       {"type": "string", "minLength": 1}}
                      for conv, name in _PATH_PARAM.findall(op.path)]
        parameters += [{"name": q.name, "in": "query", "required": q.required,
                        "schema": q.schema, "description": q.description} for q in op.query]
        success: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": op.response}}
        responses: dict[str, Any] = {str(op.status): success}
        codes = [400, 404, 409] if not op.public else []
        if not op.public:
            codes += [401, 403]
        if op.public and op.response is not None:
            codes = [503]
        for code in codes:
            responses[str(code)] = {"$ref": f"#/components/responses/{code}"}
        document: dict[str, Any] = {"operationId": op.endpoint, "summary": op.summary,
                                    "tags": [op.tag], "parameters": parameters,
                                    "responses": responses,
                                    "x-flow-role": "public" if op.public else op.role}
        if op.public:
            document["security"] = []
        if op.body is not None:
            document["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": op.body}}}
        return document


def _problem_response(title: str) -> dict[str, Any]:
    return {"description": title, "content": {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
