"""Connections: a task reads connection `example_api` and logs what it found.

`flow standalone` stores it (its password encrypted) when it loads the examples; `nox -s demo`
sets it as FLOW_CONN_EXAMPLE_API. Elsewhere add it yourself:
`flow connections add example_api --conn-uri http://demo:PASSWORD@127.0.0.1:8080/api`.
Nothing is contacted: the task only reads the connection. Its password is logged on purpose,
to show that the task log masks it as ***.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flow import DAG, Connection, task

log = logging.getLogger(__name__)

with DAG("example_connections", schedule=None, start_date=datetime(2024, 1, 1),
         tags=["example"], default_args={"owner": "flow"}) as dag:

    @task
    def read_connection() -> str:
        conn = Connection.get("example_api")
        log.info("connecting as %s to %s:%s with password %s", conn.login, conn.host,
                 conn.port, conn.password)
        print(f"the URI is {conn.get_uri()}")
        return f"{conn.conn_type}://{conn.host}:{conn.port}/{conn.schema}"

    read_connection()

if __name__ == "__main__":
    dag.cli()
