"""Serve the web app: werkzeug's threaded WSGI server (one process, a thread per request)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def serve(host: str, port: int) -> None:
    """Run the UI and REST API on ``host:port`` until interrupted (``flow webserver``,
    ``flow standalone``)."""
    from werkzeug.serving import make_server

    from flow.web.app import create_app

    app = create_app()
    server = make_server(host, port, app, threaded=True)
    plugins = app.extensions["flow.plugins"]
    try:
        plugins.component_started("webserver")
        log.info("flow web server listening on http://%s:%s", host, server.server_port)
        server.serve_forever()
    finally:
        server.server_close()
        plugins.component_stopped("webserver")
