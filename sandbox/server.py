"""A local HTTP server that emulates the four providers' documented endpoints.

It is a real server on loopback: the tap under test talks HTTP to it exactly as it would to
the providers. Each provider module registers its routes and data on a ``Sandbox``; the
sandbox adds what tests need around them:

* a log of every call (method, path, query, body, status), to count calls and check ranges;
* injected faults (HTTP status with optional ``Retry-After``, connection reset, delay,
  garbage body), each for a number of matching calls;
* global latency, and a clock that tests can move (Mudu's daily quota resets at midnight);
* a hostile mode (``sandbox/hostile.py``): rules that answer chosen calls the way a
  misbehaving gateway does (redirects, long ``Retry-After``, a dripping body, HTML, ...).

Control endpoints under ``/_sandbox/`` expose the same to a sandbox run as its own process
(the demo and the benchmarks): ``GET calls``, ``POST reset``, ``POST faults``, ``POST clock``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Handler = t.Callable[["Request"], "Response"]


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    path: str
    params: dict[str, str]  # path parameters from the route pattern
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    raw_body: bytes
    target: str = ""  # the request line's target: path and query as sent

    def json(self) -> t.Any:
        """The body as JSON (``{}`` when empty); ``ValueError`` if it is not JSON."""
        if not self.raw_body:
            return {}
        return json.loads(self.raw_body)

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` fields."""
        parsed = parse_qs(self.raw_body.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def bearer_token(self) -> str | None:
        """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive)."""
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    """What a route handler returns; ``body`` is JSON-encoded unless it is bytes."""

    status: int = 200
    body: t.Any = None
    headers: dict[str, str] = field(default_factory=dict)
    rows: int | None = None  # rows on this page, recorded in the call log for assertions
    #: Misbehaviour on the wire: close without answering; send the body a byte every
    #: ``drip_s`` seconds; send only ``cut_after`` bytes of the body, then close.
    reset: bool = False
    drip_s: float = 0.0
    cut_after: int | None = None
    content_type: str = "application/json; charset=utf-8"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Call:
    """One request the sandbox answered (for assertions)."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int
    at: float
    fault: str | None = None
    rows: int | None = None
    host: str = ""  # the Host header: which name the client thought it was talking to

    def json(self) -> t.Any:
        return json.loads(self.body) if self.body else {}

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.body.decode("utf-8", "replace"),
            "status": self.status,
            "at": self.at,
            "fault": self.fault,
            "rows": self.rows,
            "host": self.host,
        }


@dataclass
class Fault:
    """Misbehave on the next ``count`` calls whose path contains ``path``.

    ``kind``: ``status`` (answer ``status``, with ``Retry-After`` if given), ``reset`` (close
    the connection without answering), ``delay`` (sleep ``delay_s`` then answer normally),
    ``garbage`` (200 with a body that is not JSON).
    """

    path: str = ""
    kind: str = "status"
    status: int = 503
    count: int = 1
    retry_after: float | None = None
    delay_s: float = 0.0
    body: t.Any = None
    after: int = 0  # let this many matching calls through first

    def matches(self, path: str) -> bool:
        return self.count > 0 and self.path in path


class Sandbox:
    """The emulated providers behind one local HTTP server."""

    def __init__(self, *, latency_s: float = 0.0, now: datetime | None = None) -> None:
        self.latency_s = latency_s
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._base_now = now
        self._clock_offset = timedelta(0)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.providers: dict[str, t.Any] = {}
        #: Hostile rules (``sandbox.hostile.Hostile``): consulted before faults and routes.
        self.hostile: t.Any = None
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        #: Every arrival (+1) and departure (-1) by path, in order (``peak_paths_in_flight``).
        self._moves: list[tuple[str, int]] = []

    # --------------------------------------------------------------------- clock

    def now(self) -> datetime:
        """The sandbox's current time (UTC): real time, or a fixed one, plus any advance."""
        base = self._base_now or datetime.now(timezone.utc)
        return base + self._clock_offset

    def advance_clock(self, *, days: float = 0, seconds: float = 0) -> None:
        """Move the sandbox clock forward (e.g. to the next day's Mudu quota)."""
        self._clock_offset += timedelta(days=days, seconds=seconds)

    # -------------------------------------------------------------------- routes

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` and a path like ``/api/activity/{id}/x``."""
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
        self._routes.append((method.upper(), regex, handler))

    def calls_to(self, fragment: str) -> list[Call]:
        """Calls whose path contains ``fragment`` (faults and errors included)."""
        with self._lock:
            return [call for call in self.calls if fragment in call.path]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self._peak.clear()
            self._moves = [(path, 1) for path, count in self._in_flight.items() for _ in range(count)]

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    # -------------------------------------------------------------------- serving

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL."""
        handler_class = _make_handler(self)
        self._server = ThreadingHTTPServer((host, port), handler_class)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ dispatch

    def _take_fault(self, path: str) -> Fault | None:
        """The first due fault for ``path``; every matching fault's ``after`` counts this call."""
        with self._lock:
            due = None
            for fault in self.faults:
                if not fault.matches(path):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                elif due is None:
                    due = fault
            if due is not None:
                due.count -= 1
            return due

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox/"):
            return self._control(request)
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match and method == request.method:
                request.params = match.groupdict()
                return handler(request)
        return Response(404, {"message": f"no route for {request.method} {request.path}"})

    def _control(self, request: Request) -> Response:
        action = request.path.removeprefix("/_sandbox/")
        if action == "calls":
            with self._lock:
                return Response(200, [call.as_dict() for call in self.calls])
        if action == "reset":
            self.reset_calls()
            return Response(200, {"ok": True})
        if action == "faults":
            for spec in request.json().get("faults", []):
                self.add_fault(Fault(**spec))
            return Response(200, {"ok": True})
        if action == "clock":
            spec = request.json()
            self.advance_clock(days=spec.get("days", 0), seconds=spec.get("seconds", 0))
            return Response(200, {"now": self.now().isoformat()})
        if action == "health":
            return Response(200, {"ok": True, "providers": sorted(self.providers)})
        return Response(404, {"message": f"unknown control {action}"})

    def arrive(self, path: str) -> None:
        """A request is being served: count it, and the most served at once on its path."""
        with self._lock:
            self._in_flight[path] = self._in_flight.get(path, 0) + 1
            self._peak[path] = max(self._peak.get(path, 0), self._in_flight[path])
            self._moves.append((path, 1))

    def leave(self, path: str) -> None:
        with self._lock:
            self._in_flight[path] -= 1
            self._moves.append((path, -1))

    def in_flight(self, fragment: str) -> int:
        """Requests being served now on paths containing ``fragment``."""
        with self._lock:
            return sum(count for path, count in self._in_flight.items() if fragment in path)

    def peak_in_flight(self, fragment: str) -> int:
        """The most requests served at the same time on paths containing ``fragment``."""
        with self._lock:
            return max((peak for path, peak in self._peak.items() if fragment in path), default=0)

    def peak_paths_in_flight(self, fragment: str) -> int:
        """The most distinct paths containing ``fragment`` served at the same time (e.g. several
        activities' paths at once, where ``peak_in_flight`` counts each path apart)."""
        with self._lock:
            moves = [(path, step) for path, step in self._moves if fragment in path]
        serving: dict[str, int] = {}
        peak = 0
        for path, step in moves:
            serving[path] = serving.get(path, 0) + step
            peak = max(peak, sum(1 for count in serving.values() if count > 0))
        return peak

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)


def _make_handler(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    class SandboxHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: t.Any) -> None:
            """Quiet: the call log is the record."""

        def _handle(self) -> None:
            path = urlsplit(self.path).path
            sandbox.arrive(path)
            try:
                self._serve()
            finally:
                sandbox.leave(path)

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            request = Request(
                method=self.command,
                path=parts.path,
                params={},
                query=query,
                headers={key.lower(): value for key, value in self.headers.items()},
                raw_body=raw,
                target=self.path,
            )
            host = request.headers.get("host", "")
            if sandbox.latency_s:
                time.sleep(sandbox.latency_s)
            control = parts.path.startswith("/_sandbox/")
            hostile = None if control or sandbox.hostile is None else sandbox.hostile.answer(sandbox, request)
            if hostile is not None:
                rule, response = hostile
                sandbox.record(
                    Call(self.command, parts.path, query, raw, response.status, time.time(), rule, None, host)
                )
                self._send(response)
                return
            fault = None if control else sandbox._take_fault(parts.path)
            if fault and fault.kind == "reset":
                sandbox.record(
                    Call(self.command, parts.path, query, raw, 0, time.time(), "reset", None, host)
                )
                self._reset()
                return
            if fault and fault.kind == "delay":
                time.sleep(fault.delay_s)
                fault = None
            if fault and fault.kind == "status":
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                response = Response(fault.status, fault.body or {"message": "injected fault"}, headers)
            elif fault and fault.kind == "garbage":
                response = Response(200, b"<html>502 Bad Gateway</html>")
            else:
                try:
                    response = sandbox.dispatch(request)
                except Exception as error:  # a sandbox bug must show, not hang the client
                    response = Response(500, {"message": f"sandbox error: {error!r}"})
            if not control:
                sandbox.record(
                    Call(
                        self.command,
                        parts.path,
                        query,
                        raw,
                        response.status,
                        time.time(),
                        fault.kind if fault else None,
                        response.rows,
                        host,
                    )
                )
            self._send(response)

        def _reset(self) -> None:
            """Close the connection without (finishing) an answer, as a dropped link does."""
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

        def _send(self, response: Response) -> None:
            if response.reset:
                self._reset()
                return
            payload = response.encoded()
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                if response.cut_after is not None:
                    self.wfile.write(payload[: response.cut_after])
                    self._reset()
                elif response.drip_s:
                    self.wfile.flush()
                    for index in range(len(payload)):
                        self.wfile.write(payload[index : index + 1])
                        self.wfile.flush()
                        time.sleep(response.drip_s)
                else:
                    self.wfile.write(payload)
            except OSError:  # the client gave up (a deadline, a timeout): nothing to answer
                self.close_connection = True

        do_GET = _handle
        do_POST = _handle

    return SandboxHandler
