"""A pass-through HTTP proxy in front of an S3 server that can hold chosen requests: how the fault-injection tests
stop a real ``python -m flows.bronze`` at a stage they can name, with no hook in the product.

Every S3 client of the project (boto3, pyarrow's S3 filesystem, delta-rs) speaks plain HTTP/1.1 to
``AWS_ENDPOINT_URL``; pointed at this proxy, their requests are forwarded byte for byte (SigV4 signs the ``Host``
header the client sent, which reaches the server unchanged). A :class:`Hold` matches requests by method, bucket
and key: a matching request is not forwarded until the hold is released, so the process that sent it is known to
be at that point (the first PUT of a manifest: handing off; the first GET of a Parquet file: validating; a PUT
into a Delta log: merging). Tests then ``kill -9`` it, or let it go on.

Requests are parsed only as far as needed to find where the next one starts (``Content-Length`` or a chunked
body); answers are copied back unparsed. One asyncio loop in a daemon thread serves every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import unquote, urlsplit

__all__ = ["Hold", "S3Proxy", "S3Request"]


@dataclass(frozen=True)
class S3Request:
    """One request as the proxy saw it (path-style addressing: ``/<bucket>/<key>``)."""

    method: str
    bucket: str
    key: str
    query: str
    at: float

    def __str__(self) -> str:
        return f"{self.method} {self.bucket}/{self.key}{'?' + self.query if self.query else ''}"


@dataclass
class Hold:
    """Lets the first ``skip`` requests matching ``match`` through, then holds the next ``count`` until
    :meth:`release`; ``held`` lists them."""

    match: Callable[[S3Request], bool]
    count: int = 1
    skip: int = 0
    held: list[S3Request] = field(default_factory=list)
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, request: S3Request) -> bool:
        """Whether this request is held (it matches and the hold is not full or released yet)."""
        if self.released.is_set() or not self.match(request):
            return False
        with self._lock:
            if self.skip > 0:
                self.skip -= 1
                return False
            if len(self.held) >= self.count:
                return False
            self.held.append(request)
            if len(self.held) == self.count:
                self.reached.set()
            return True

    def wait(self, timeout: float, why: str = "") -> list[S3Request]:
        """Block until ``count`` requests are held; AssertionError after ``timeout`` seconds."""
        if not self.reached.wait(timeout):
            raise AssertionError(f"no request held after {timeout:.0f} s {why}(held so far: {self.held})")
        return list(self.held)

    def release(self) -> None:
        """Forward the held requests (a request whose client died meanwhile is dropped) and stop holding."""
        self.released.set()


class S3Proxy:
    """Context manager: a proxy on 127.0.0.1 forwarding to ``upstream`` (``http://host:port``); ``url`` is its
    endpoint. ``requests`` records every request seen."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname and parts.port, upstream
        self.upstream = (parts.hostname, parts.port)
        self.url = ""
        self.requests: list[S3Request] = []
        self._holds: list[Hold] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()

    def __enter__(self) -> S3Proxy:
        self._thread = threading.Thread(target=self._run, name="s3-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the S3 proxy did not start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for hold in self._holds:
            hold.release()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def hold(self, match: Callable[[S3Request], bool], count: int = 1, skip: int = 0) -> Hold:
        """Hold the next ``count`` requests matching ``match``, after letting ``skip`` through (see :class:`Hold`)."""
        hold = Hold(match, count, skip)
        with self._lock:
            self._holds.append(hold)
        return hold

    def seen(self, match: Callable[[S3Request], bool]) -> list[S3Request]:
        with self._lock:
            return [r for r in self.requests if match(r)]

    # -- the loop ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        back = asyncio.ensure_future(_copy(up_r, client_w))
        try:
            while True:
                head = await client_r.readuntil(b"\r\n\r\n")
                request, length, chunked = self._parse(head)
                hold = self._claim(request)
                if hold is not None:
                    while not hold.released.is_set() and not _gone(client_r) and not back.done():
                        await asyncio.sleep(0.01)
                    if _gone(client_r) or back.done():
                        return  # its sender died while it was held: as if it was never sent
                up_w.write(head)
                if chunked:
                    await _copy_chunked(client_r, up_w)
                else:
                    await _copy_exactly(client_r, up_w, length)
                await up_w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            up_w.close()
            back.cancel()
            with contextlib.suppress(Exception):
                client_w.close()

    def _parse(self, head: bytes) -> tuple[S3Request, int, bool]:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition("?")
        if "://" in path:  # absolute-form target
            path = urlsplit(path).path
        bucket, _, key = unquote(path).lstrip("/").partition("/")
        request = S3Request(method, bucket, key, query, time.monotonic())
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        return request, int(headers.get("content-length", "0") or 0), chunked

    def _claim(self, request: S3Request) -> Hold | None:
        with self._lock:
            self.requests.append(request)
            holds = list(self._holds)
        return next((hold for hold in holds if hold.claim(request)), None)


def _gone(reader: asyncio.StreamReader) -> bool:
    """The client closed its side (a killed process's sockets are closed by the kernel)."""
    return bool(getattr(reader, "_eof", False))


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def _copy_exactly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    while length > 0:
        data = await reader.read(min(length, 1 << 16))
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        writer.write(data)
        length -= len(data)
        await writer.drain()


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the empty line
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    return
        await _copy_exactly(reader, writer, size + 2)
