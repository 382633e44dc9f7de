"""How one HTTP attempt is sent: the configured host only, a deadline, bounded waits.

The SDK hands each attempt to ``requests``, which follows redirects to any host (re-sending
the body, and every header but ``Authorization``) and bounds each socket read, not the
attempt. This module replaces that step for every stream:

* **Redirects.** Never followed blindly. A redirect to the same scheme, host and port is
  followed (at most ``MAX_REDIRECTS`` hops, same method, headers and body: the provider
  only moved the path); a redirect anywhere else raises ``RedirectRefused`` without sending
  anything there, because the request carries credentials.
* **Deadline.** An attempt, redirects included, ends within ``timeout`` seconds: the body
  is read in pieces and each socket read is limited to the time left, so a server that
  sends a byte every few seconds cannot hold a run. Overrunning raises
  ``AttemptDeadlineExceeded``, a ``requests`` timeout, which the SDK retries like one.
* **Waits.** ``retry_wait`` is the wait before a retry: exponential with jitter, capped,
  and never shorter than a ``Retry-After`` the caller has already checked against its
  ceiling (``max_wait_seconds``).
"""

from __future__ import annotations

import random
import time
import typing as t
import weakref
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

#: Same-origin redirect hops followed within one attempt.
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 64 * 1024
#: The proxies ``requests`` resolves for each session and origin, kept for the run.
_PROXIES: weakref.WeakKeyDictionary[requests.Session, dict[t.Hashable, dict[str, str]]] = (
    weakref.WeakKeyDictionary()
)


class RedirectRefused(Exception):
    """The provider redirected the request where credentials must not go (or in circles)."""


class AttemptDeadlineExceeded(requests.exceptions.Timeout):
    """The whole answer did not arrive within the attempt's deadline (retried like a timeout)."""


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the port made explicit: what "the same host" means."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def show_origin(url: str) -> str:
    """``scheme://host[:port]`` only: a redirect target's path or query may carry secrets."""
    scheme, host, port = origin(url)
    default = _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def send(
    session: requests.Session,
    request: requests.PreparedRequest,
    *,
    timeout: float,
    before_hop: t.Callable[[], None] = lambda: None,
) -> requests.Response:
    """Send ``request`` within ``timeout`` seconds, following same-origin redirects only.

    ``before_hop`` runs before every request that goes out (call budgets count each hop).
    The returned response has its body read (``response.content`` is set).
    """
    deadline = time.monotonic() + timeout
    current = request
    for _hop in range(MAX_REDIRECTS + 1):
        before_hop()
        response = _send_once(session, current, timeout=timeout, deadline=deadline)
        target = redirect_target(response)
        if target is None:
            return response
        if origin(target) != origin(current.url or ""):
            raise RedirectRefused(
                f"HTTP {response.status_code} redirect from {show_origin(current.url or '')} to another "
                f"host, {show_origin(target)}, refused: credentials are sent to the configured host only"
            )
        current = current.copy()
        current.url = target
    raise RedirectRefused(
        f"more than {MAX_REDIRECTS} redirects within {show_origin(request.url or '')}; the provider "
        "redirects in circles"
    )


def redirect_target(response: requests.Response) -> str | None:
    """The absolute URL a 3xx answer points to, or ``None`` when it is not a redirect."""
    location = response.headers.get("Location")
    if response.status_code not in REDIRECT_STATUSES or not location:
        return None
    return urljoin(response.url, location)


def _send_once(
    session: requests.Session, request: requests.PreparedRequest, *, timeout: float, deadline: float
) -> requests.Response:
    """One request: headers within the time left, then the body against the deadline."""
    left = _time_left(deadline, timeout)
    proxies = proxies_for(session, request)
    response = session.send(
        request, timeout=(left, left), allow_redirects=False, stream=True, proxies=proxies
    )
    try:
        read_body(response, deadline, timeout)
    except BaseException:
        response.close()
        raise
    return response


def proxies_for(session: requests.Session, request: requests.PreparedRequest) -> dict[str, str]:
    """The proxies ``requests`` would use for this request (``*_PROXY``, ``NO_PROXY``, the session's).

    ``requests`` resolves them again on every send, walking the whole environment (about 2% of
    the CPU of a fast run); they depend only on the origin, so they are resolved once per origin.
    """
    key = (origin(request.url or ""), session.trust_env, tuple(sorted(session.proxies.items())))
    known = _PROXIES.setdefault(session, {})
    if key not in known:
        known[key] = requests.utils.resolve_proxies(request, dict(session.proxies), session.trust_env)
    return known[key]


def read_body(response: requests.Response, deadline: float, timeout: float) -> bytes:
    """Read the whole body, each socket read limited to the time left before ``deadline``."""
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    pieces: list[bytes] = []
    while True:
        left = _time_left(deadline, timeout)
        if sock is not None:
            sock.settimeout(left)
        try:
            piece = raw.read1(_CHUNK, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:  # the socket waited for all the time left
            raise AttemptDeadlineExceeded(_overrun(timeout)) from None
        except urllib3.exceptions.DecodeError as error:  # as requests maps them: both retried
            raise requests.exceptions.ContentDecodingError(type(error).__name__) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise requests.exceptions.ChunkedEncodingError(type(error).__name__) from None
        if not piece:
            break
        pieces.append(piece)
    content = b"".join(pieces)
    response._content = content  # what requests itself stores once a streamed body is read
    response._content_consumed = True  # type: ignore[attr-defined]
    raw.release_conn()
    return content


def _time_left(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise AttemptDeadlineExceeded(_overrun(timeout))
    return left


def _overrun(timeout: float) -> str:
    return f"the answer did not arrive in full within request_timeout={timeout:g}s"


def retry_wait(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential (``base`` × 2^attempt) plus up to 25% jitter, never above ``cap``; when the
    provider sent a ``Retry-After`` (already checked against the ceiling), at least that
    plus up to 10% jitter, so parallel runs do not return in lockstep.
    """
    uniform = rng.uniform if rng is not None else random.uniform
    wait = min(cap, base * (2**attempt))
    wait = min(cap, wait + uniform(0, wait * 0.25))
    if retry_after is not None:
        wait = max(wait, retry_after + uniform(0, retry_after * 0.1))
    return wait


def describe_failure(error: BaseException | None) -> str:
    """A short phrase for a failed attempt: its status, or what went wrong on the wire."""
    response = getattr(error, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"HTTP {response.status_code}"
    if isinstance(error, AttemptDeadlineExceeded):
        return str(error)
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(error, (requests.exceptions.ConnectionError, ConnectionError)):
        return "connection failed or was reset"
    return type(error).__name__ if error is not None else "failed"
