"""Starting and stopping the local platform's WSGI servers (moto and the HTTP gateway).

Example:
    >>> server, thread = serve(app, "127.0.0.1", 0, "streamlet-local")   # doctest: +SKIP
    >>> stop_serving(server, thread)                                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serve(app: WSGIApp, host: str, port: int, name: str, **options: Any
          ) -> tuple[Any, threading.Thread]:
    """A threaded werkzeug server for ``app`` on ``host:port`` (0: a free port), serving on
    a daemon thread called ``name``; ``options`` go to ``make_server``."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server(host, port, app, threaded=True, **options)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server, thread


def stop_serving(server: Any, thread: threading.Thread | None) -> None:
    """Shut a werkzeug server down and wait for its thread (either may be None)."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)
