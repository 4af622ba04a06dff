"""JSON schemas of the REST API's resources (OpenAPI 3.1, i.e. JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
NDT = {"type": ["string", "null"], "format": "date-time"}
DT = {"type": "string", "format": "date-time"}
INT = {"type": "integer"}
NINT = {"type": ["integer", "null"]}
NNUM = {"type": ["number", "null"]}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: bool = True, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(properties)
    return schema


def collection(key: str, item: str) -> dict[str, Any]:
    properties: dict[str, Any] = {key: {"type": "array", "items": ref(item)},
                                  "total_entries": INT}
    return {"type": "object", "properties": properties, "required": list(properties)}


ERROR_TITLES = {400: "Bad Request", 401: "Authentication required", 403: "Forbidden",
                404: "Not Found", 409: "Conflict", 503: "Service Unavailable"}

TI_STATES = ["scheduled", "queued", "running", "success", "failed", "up_for_retry",
             "upstream_failed", "skipped", "removed"]
RUN_STATES = ["queued", "running", "success", "failed"]

COMPONENTS: dict[str, Any] = {
    "Problem": obj(type=STR, status=INT, title=STR, detail=STR),
    "Dag": obj(dag_id=STR, is_paused=BOOL, is_active=BOOL, owners={"type": "array",
               "items": STR}, tags={"type": "array", "items": STR}, description=NSTR,
               schedule=STR, fileloc=STR, next_dagrun=NDT, last_parsed_at=NDT,
               dag_hash=NSTR, max_active_runs=NINT, max_active_tasks=NINT),
    "DagDetail": {"allOf": [ref("Dag"), obj(
        params=OBJ, tasks={"type": "array", "items": ref("Task")}, timezone=STR,
        catchup=BOOL, start_date=NSTR, end_date=NSTR, doc_md=NSTR)]},
    "Task": obj(task_id=STR, task_type=STR, trigger_rule=STR, is_mapped=BOOL,
                upstream_task_ids={"type": "array", "items": STR},
                downstream_task_ids={"type": "array", "items": STR}, task_group_id=NSTR),
    "DagSource": obj(dag_id=STR, fileloc=STR, source_code=STR),
    "DagRun": obj(dag_id=STR, run_id=STR, logical_date=NDT, data_interval_start=NDT,
                  data_interval_end=NDT, run_type=STR, state=STR, conf=OBJ,
                  queued_at=NDT, start_date=NDT, end_date=NDT, duration=NNUM, dag_hash=NSTR),
    "TaskInstance": obj(dag_id=STR, run_id=STR, task_id=STR, map_index=INT,
                        try_number=INT, max_tries=INT, state=NSTR, operator=STR, pool=STR,
                        queue=STR, hostname=STR, queued_at=NDT, start_date=NDT, end_date=NDT,
                        duration=NNUM, rendered_fields={"type": ["object", "null"]},
                        note=NSTR),
    "TaskInstanceTry": obj(try_number=INT, state=NSTR, hostname=STR, start_date=NDT,
                           end_date=NDT, duration=NNUM, error=NSTR),
    "Log": obj(content=STR, continuation_token=STR, end_of_log=BOOL, try_number=INT),
    "XCom": obj(dag_id=STR, run_id=STR, task_id=STR, map_index=INT, key=STR, value={},
                timestamp=DT),
    "Connection": obj(conn_id=STR, conn_type=STR, description=NSTR, host=NSTR, schema=NSTR,
                      login=NSTR, port=NINT, extra={"type": ["object", "null"]},
                      has_password=BOOL),
    "ConnectionTest": obj(status=BOOL, message=STR),
    "Variable": obj(key=STR, value=STR, description=NSTR, masked=BOOL),
    "Pool": obj(name=STR, slots=INT, description=NSTR, occupied_slots=INT, running_slots=INT,
                queued_slots=INT, open_slots=INT),
    "Plugin": obj(name=STR, distribution=STR, version=STR, status=STR, reason=STR,
                  hooks={"type": "array", "items": STR}, builtin=BOOL),
    "EventLog": obj(id=INT, dttm=DT, actor=STR, action=STR, source=STR, target=STR,
                    dag_id=NSTR, run_id=NSTR, task_id=NSTR, details=OBJ),
    "User": obj(username=STR, email=NSTR, role=STR, active=BOOL, created_at=DT,
                last_login=NDT),
    "Health": obj(status=STR, metadatabase=obj(status=STR),
                  scheduler=obj(status=STR, latest_heartbeat=NDT,
                                heartbeat_age_seconds=NNUM)),
    "ClearResult": obj(task_instances={"type": "array", "items": ref("TaskInstance")},
                       total_entries=INT),
    "ImportError": obj(id=INT, filename=STR, lineno=NINT, message=STR, timestamp=DT),
}

for _name, _key, _item in (("DagCollection", "dags", "Dag"),
                           ("DagRunCollection", "dag_runs", "DagRun"),
                           ("TaskInstanceCollection", "task_instances", "TaskInstance"),
                           ("XComCollection", "xcom_entries", "XCom"),
                           ("ConnectionCollection", "connections", "Connection"),
                           ("VariableCollection", "variables", "Variable"),
                           ("PoolCollection", "pools", "Pool"),
                           ("PluginCollection", "plugins", "Plugin"),
                           ("EventLogCollection", "event_logs", "EventLog"),
                           ("UserCollection", "users", "User"),
                           ("TryCollection", "tries", "TaskInstanceTry"),
                           ("ImportErrorCollection", "import_errors", "ImportError")):
    COMPONENTS[_name] = collection(_key, _item)

# Request bodies: additionalProperties false, so a misspelled field is a 400 naming it.
BODIES: dict[str, dict[str, Any]] = {
    "DagPatch": {"type": "object", "properties": {"is_paused": BOOL}, "required": ["is_paused"],
                 "additionalProperties": False},
    "TriggerDagRun": {"type": "object", "additionalProperties": False, "properties": {
        "run_id": {"type": "string", "minLength": 1, "maxLength": 250},
        "logical_date": {"type": "string", "format": "date-time"}, "conf": OBJ}},
    "ClearDagRun": {"type": "object", "additionalProperties": False, "properties": {
        "only_failed": BOOL, "dry_run": BOOL}},
    "ClearTaskInstances": {"type": "object", "additionalProperties": False, "properties": {
        "task_ids": {"type": "array", "items": STR},
        "map_indexes": {"type": "array", "items": {"type": "integer", "minimum": -1,
                                                   "maximum": 2**31 - 1}},
        "downstream": BOOL, "upstream": BOOL, "only_failed": BOOL, "dry_run": BOOL}},
    "TaskInstanceState": {"type": "object", "additionalProperties": False,
                          "required": ["state"], "properties": {
                              "state": {"enum": ["success", "failed"]},
                              "map_index": {"type": "integer", "minimum": -1,
                                            "maximum": 2**31 - 1}}},
    "ConnectionBody": {"type": "object", "additionalProperties": False,
                       "required": ["conn_id", "conn_type"], "properties": {
                           "conn_id": {"type": "string", "minLength": 1, "maxLength": 250,
                                       "pattern": r"^[A-Za-z0-9_.\-]+$"},
                           "conn_type": {"type": "string", "minLength": 1}, "description": NSTR,
                           "host": NSTR, "schema": NSTR, "login": NSTR, "password": NSTR,
                           "port": {"type": ["integer", "null"], "minimum": 0,
                                    "maximum": 65535},
                           "extra": {"type": ["object", "null"]}}},
    "ConnectionPatch": {"type": "object", "additionalProperties": False, "properties": {
        "conn_type": {"type": "string", "minLength": 1}, "description": NSTR, "host": NSTR,
        "schema": NSTR, "login": NSTR, "password": NSTR,
        "port": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535},
        "extra": {"type": ["object", "null"]}}},
    "VariableBody": {"type": "object", "additionalProperties": False,
                     "required": ["key", "value"], "properties": {
                         "key": {"type": "string", "minLength": 1, "maxLength": 250},
                         "value": STR, "description": NSTR}},
    "VariablePatch": {"type": "object", "additionalProperties": False, "required": ["value"],
                      "properties": {"value": STR, "description": NSTR}},
    "PoolBody": {"type": "object", "additionalProperties": False, "required": ["name", "slots"],
                 "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 256},
                                "slots": {"type": "integer", "minimum": 0,
                                          "maximum": 1_000_000},
                                "description": NSTR}},
    "PoolPatch": {"type": "object", "additionalProperties": False, "properties": {
        "slots": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "description": NSTR}},
    "UserBody": {"type": "object", "additionalProperties": False,
                 "required": ["username", "password", "role"], "properties": {
                     "username": {"type": "string", "minLength": 1, "maxLength": 256},
                     "password": {"type": "string", "minLength": 8},
                     "role": {"enum": ["admin", "op", "viewer"]}, "email": NSTR}},
}
