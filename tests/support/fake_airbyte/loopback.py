"""Serving the fake's ASGI app on 127.0.0.1 from a background thread: uvicorn with one event loop (so hundreds of
concurrent connections are fine), a free port picked by the OS, and a shutdown that does not wait for requests
still sleeping on the server.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp


class LoopbackServer:
    """A listening socket on a free loopback port (:attr:`url`), served by uvicorn once :meth:`start` is called."""

    def __init__(self) -> None:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the listener
        # declares it, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, app: ASGIApp, name: str) -> threading.Thread:
        """Serve ``app`` from a daemon thread called ``name``; returns once uvicorn accepts connections."""
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
            backlog=4096,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name=name, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("fake Airbyte server thread died during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("fake Airbyte server did not start within 15 s")
            time.sleep(0.005)
        return self.thread

    def stop(self) -> None:
        """Ask uvicorn to exit (graceful for 2 s), and force it if its thread is still alive after 5 s."""
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)
            if self.thread.is_alive() and self.server is not None:
                self.server.force_exit = True
                self.thread.join(timeout=5)
