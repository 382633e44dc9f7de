"""Hostile-provider mode: rules that answer chosen calls the way a misbehaving gateway does.

The provider documents promise well-formed answers; real gateways also redirect, throttle for
an hour, drip a byte at a time, answer 200 with an HTML page or nothing, send ``null`` where
a list belongs, echo credentials in error pages, fail in bursts and drop connections. Each
such class of answer is one ``Rule`` in ``RULES``:

    Rule("redirect 307 to another host", redirect(307, "elsewhere"), expect=stops("refused"))

says which providers (all by default), which of their calls (``first(1)``: the first), what
answer (an ``Answer``: a function of the ``Exchange``), and what the tap is expected to do
(``Expect``; ``tests/test_hostile.py`` runs every provider through every rule and checks
it, plus what holds for every rule: no row lost, no key empty or colliding, no secret out).

``install(sandbox, rule, elsewhere=...)`` turns a rule on for a sandbox; the server asks
``Hostile.answer`` before its faults and routes. Rules count calls per provider, so
``nth(2)`` is the provider's second call whichever page it asks for.
"""

from __future__ import annotations

import json
import re
import threading
import typing as t
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs

from sandbox.server import Request, Response

if t.TYPE_CHECKING:
    from sandbox.server import Sandbox

PROVIDERS = ("mudu", "shangzhibo", "nuoyun", "talkcloud")
#: Path prefixes of each provider's endpoints (as the sandbox serves them).
PROVIDER_PATHS = {
    "mudu": ("/api/v2/activities/",),
    "shangzhibo": ("/api/activity/", "/api/v3/agent/"),
    "nuoyun": ("/Api/RoomRounds/",),
    "talkcloud": ("/WebAPI/",),
}
#: Where each provider's answer keeps its rows (``()``: the answer is the list).
ROW_LISTS: dict[str, tuple[str, ...]] = {
    "mudu": (),
    "shangzhibo": ("items",),
    "nuoyun": ("data", "list"),
    "talkcloud": ("logininfo",),
}
#: Where an answer says how many rows the query has (providers that say it).
TOTALS: dict[str, tuple[str, ...]] = {"shangzhibo": ("pager", "total"), "nuoyun": ("data", "total")}
#: A free-text field of each provider's rows (not part of any key).
TEXT_FIELDS = {
    "mudu": "nick",
    "shangzhibo": "nickname",
    "nuoyun": "wechat_user_name",
    "talkcloud": "username",
}


def provider_of(path: str) -> str | None:
    """Which provider a request path belongs to."""
    for provider, prefixes in PROVIDER_PATHS.items():
        if path.startswith(prefixes):
            return provider
    return None


# ------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Expect:
    """What the tap must do under a rule, beyond what holds for every rule.

    ``exit_zero``: the first run's exit status must be 0 (``True``), non-zero (``False``) or
    either (``None``). ``complete``: every row arrives in the first run. ``says``: a regular
    expression its stderr must match (the one line that tells the user what happened).
    ``once``: no row comes twice within the first run.
    """

    exit_zero: bool | None = None
    complete: bool = False
    says: str = ""
    once: bool = False


OK = Expect(exit_zero=True, complete=True)


def stops(says: str) -> Expect:
    """The run stops with a non-zero exit and a line matching ``says``; a re-run finishes."""
    return Expect(exit_zero=False, says=says)


def pauses(says: str) -> Expect:
    """The run stops reading for now but exits 0 with a warning matching ``says`` (Mudu's budget)."""
    return Expect(exit_zero=True, says=says)


@dataclass
class Exchange:
    """What an answer sees: the request, the provider, the real answer on demand, the other host."""

    request: Request
    provider: str
    sandbox: Sandbox
    elsewhere: str | None
    hostile: Hostile | None = None

    def real(self, request: Request | None = None) -> Response:
        """The answer the emulated provider gives (to ``request``, by default this one)."""
        return self.sandbox.dispatch(request or self.request)


Answer = Callable[[Exchange], Response]


def first(count: int) -> Callable[[int], bool]:
    """The provider's first ``count`` calls."""
    return lambda n: n <= count


def nth(*numbers: int) -> Callable[[int], bool]:
    """The provider's calls with these numbers (1 is the first)."""
    return lambda n: n in numbers


def every(n: int) -> bool:
    """Every call."""
    return True


@dataclass(frozen=True)
class Rule:
    """One class of hostile answer: for which providers, on which calls, and what the tap must do."""

    name: str
    answer: Answer
    calls: Callable[[int], bool] = field(default=first(1))
    providers: tuple[str, ...] = PROVIDERS
    expect: Expect | Mapping[str, Expect] = field(default_factory=Expect)
    #: Rows the rule takes the identity from cannot be matched to the provider's rows by key:
    #: the test then checks they are either kept under distinct keys or announced as left out.
    damages_identity: bool = False

    def expectation(self, provider: str) -> Expect:
        if isinstance(self.expect, Expect):
            return self.expect
        return self.expect.get(provider, Expect())


class Hostile:
    """The rule in force on one sandbox, with its per-provider call counts."""

    def __init__(self, rule: Rule, elsewhere: str | None = None) -> None:
        self.rule = rule
        self.elsewhere = elsewhere
        self.calls: dict[str, int] = {}
        self.answered = 0
        #: Rows whose identity fields an answer removed (the tests account for them).
        self.damaged = 0
        self._lock = threading.Lock()

    def answer(self, sandbox: Sandbox, request: Request) -> tuple[str, Response] | None:
        """``(label, response)`` when the rule answers this call, else ``None`` (served normally)."""
        provider = provider_of(request.path)
        if provider is None or provider not in self.rule.providers:
            return None
        with self._lock:
            self.calls[provider] = number = self.calls.get(provider, 0) + 1
        if not self.rule.calls(number):
            return None
        self.answered += 1
        exchange = Exchange(request, provider, sandbox, self.elsewhere, self)
        return f"hostile:{self.rule.name}", self.rule.answer(exchange)


def install(sandbox: Sandbox, rule: Rule | None, *, elsewhere: str | None = None) -> Hostile | None:
    """Put ``rule`` in force on ``sandbox`` (``None``: behave again)."""
    sandbox.hostile = Hostile(rule, elsewhere) if rule is not None else None
    return sandbox.hostile


# ---------------------------------------------------------------------- answers


def status(code: int, body: t.Any = None, *, retry_after: str | None = None) -> Answer:
    """An HTTP error status (with ``Retry-After`` when given)."""

    def answer(exchange: Exchange) -> Response:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return Response(code, body if body is not None else {"message": f"HTTP {code}"}, headers)

    return answer


def retry_after_date(seconds: float) -> str:
    """``Retry-After`` as an HTTP date ``seconds`` from now."""
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds), usegmt=True)


def redirect(code: int, where: str, *, relative: bool = False) -> Answer:
    """A redirect of the same request: to the ``same`` host, ``elsewhere`` (another host), or
    to ``another-name`` (the same server under the name ``localhost``)."""

    def answer(exchange: Exchange) -> Response:
        target = exchange.request.target
        if where == "same":
            location = target if relative else f"{exchange.sandbox.base_url}{target}"
        elif where == "elsewhere":
            location = f"{exchange.elsewhere}{target}"
        else:
            location = exchange.sandbox.base_url.replace("127.0.0.1", "localhost") + target
        return Response(code, {"message": "moved"}, {"Location": location})

    return answer


def drip(every_s: float) -> Answer:
    """The real answer, its body sent one byte every ``every_s`` seconds."""
    return lambda exchange: replace(exchange.real(), drip_s=every_s)


def reset(exchange: Exchange) -> Response:
    """The connection is closed without an answer."""
    return Response(reset=True)


def cut_body(exchange: Exchange) -> Response:
    """The real answer's headers and half of its body, then the connection closes."""
    real = exchange.real()
    return replace(real, cut_after=len(real.encoded()) // 2)


def html(code: int = 200) -> Answer:
    """A gateway's HTML page instead of the API's JSON."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    return lambda exchange: Response(code, page, content_type="text/html")


def echo_at(position: int) -> Answer:
    """200 with JSON that is no page at all, echoing the credentials from character ``position``
    of the body on: a message that quotes the first 200 characters would cut a credential."""

    def answer(exchange: Exchange) -> Response:
        said = " ".join(credentials(exchange.request)) + " rejected"
        padding = "." * max(0, position - len('{"error":"'))
        return Response(200, {"error": padding + said, "msg": padding + said})

    return answer


def empty(exchange: Exchange) -> Response:
    """200 with an empty body."""
    return Response(200, b"")


def echo(code: int, words: str = "invalid credential {}") -> Answer:
    """An error answer (provider-shaped JSON) that echoes every credential the request carried."""

    def answer(exchange: Exchange) -> Response:
        said = words.format(" ".join(credentials(exchange.request)))
        body: dict[str, t.Any] = {"code": code, "msg": said, "message": said}
        if exchange.provider == "talkcloud":
            body = {"result": 4109 if code < 500 else code, "msg": said}
        return Response(code if exchange.provider != "talkcloud" or code >= 500 else 200, body)

    return answer


def edit(change: Callable[[t.Any, Exchange], t.Any]) -> Answer:
    """The real answer with its decoded body changed by ``change(body, exchange)``."""

    def answer(exchange: Exchange) -> Response:
        real = exchange.real()
        try:
            body = json.loads(real.body) if isinstance(real.body, bytes) else real.body
        except ValueError:  # not JSON (Talk-cloud's untidy form): nothing to change
            return real
        if real.status != 200:
            return real
        return Response(real.status, change(body, exchange), real.headers, real.rows)

    return answer


def rows_become(value: Callable[[list], t.Any]) -> Answer:
    """The real answer with its row list replaced by ``value(rows)``."""
    return edit(lambda body, exchange: _replace(body, ROW_LISTS[exchange.provider], value))


def total_becomes(value: t.Any) -> Answer:
    """The real answer with its row total replaced by ``value``."""
    return edit(lambda body, exchange: _replace(body, TOTALS[exchange.provider], lambda _old: value))


def secret_in_row(exchange: Exchange) -> Response:
    """The real answer with the credentials written into the first row's free-text field."""
    said = " ".join(credentials(exchange.request))

    def change(rows: list) -> list:
        if rows and isinstance(rows[0], dict):
            rows[0] = {**rows[0], TEXT_FIELDS[exchange.provider]: f"echo {said}"}
        return rows

    return rows_become(change)(exchange)


def _replace(body: t.Any, path: tuple[str, ...], value: Callable[[t.Any], t.Any]) -> t.Any:
    if not path:
        return value(body)
    if isinstance(body, dict) and path[0] in body:
        body = dict(body)
        body[path[0]] = _replace(body[path[0]], path[1:], value)
    return body


_DOCUMENTED_FIELDS = re.compile(
    r"^(page|page_size|pageSize|perPage|p|sort|order|serial|thirdroomid|starttime|endtime|start_time|"
    r"end_time|startedAt|endedAt|update_time_start|update_time_end|wechat_user_space_id|filter_watch_time|"
    r"activityId)$"
)


def credentials(request: Request) -> list[str]:
    """Every credential-like value a request carried, bare, as a gateway would echo them.

    The token of ``Authorization`` (without its scheme), ``access-token`` headers, the form's
    ``key`` and every body value that is not a documented query field.
    """
    found: list[str] = []
    _scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if token:
        found.append(token.strip())
    found += [value for name, value in request.headers.items() if name in ("access-token", "x-api-key")]
    body: t.Any = None
    try:
        body = request.json()
    except ValueError:
        form = parse_qs(request.raw_body.decode("utf-8", "replace"))
        body = {key: values[-1] for key, values in form.items()}
    if isinstance(body, dict):
        found += [
            str(value)
            for name, value in body.items()
            if not _DOCUMENTED_FIELDS.match(str(name)) and value not in (None, "")
        ]
    return found


# ------------------------------------------------------------------------ RULES

_LONG_WAIT = stops(r"asks to wait \d+s \(Retry-After\).*max_wait_seconds")
_MUDU_LIMIT = pauses(r"daily call budget spent")
#: A success answer without its row list is retried (it is no empty page); Mudu's fails at once
#: (a retry would spend one of its 10 calls a day on the same answer).
_NO_ROW_LIST = {
    **dict.fromkeys(
        PROVIDERS, Expect(exit_zero=True, complete=True, says=r"attempt 1 failed \(HTTP 200 .*without")
    ),
    "mudu": stops(r"without a list of records"),
}
_OFF_HOST = stops(
    r"redirect from http://127\.0\.0\.1:\d+ to another host, http://(127\.0\.0\.1|localhost):\d+, refused"
)

#: One declaration per class of hostile answer; the tests run every provider through each.
RULES: list[Rule] = [
    # -- redirects: credentials go to the configured host only
    Rule("redirect 307 within the host", redirect(307, "same"), expect=OK),
    Rule("redirect 308 within the host, relative Location", redirect(308, "same", relative=True), expect=OK),
    Rule("redirect 301 within the host on page 2", redirect(301, "same"), calls=nth(2), expect=OK),
    Rule("redirect 307 to another host", redirect(307, "elsewhere"), expect=_OFF_HOST),
    Rule("redirect 302 to another host, page 2", redirect(302, "elsewhere"), calls=nth(2), expect=_OFF_HOST),
    Rule("redirect to another host name of the same server", redirect(307, "another-name"), expect=_OFF_HOST),
    Rule("redirect in circles", redirect(307, "same"), calls=every, expect=stops(r"more than \d+ redirects")),
    # -- waits: bounded by max_wait_seconds
    Rule(
        "429 with Retry-After 3600",
        status(429, {"code": 429, "msg": "too many requests"}, retry_after="3600"),
        expect={**dict.fromkeys(PROVIDERS, _LONG_WAIT), "mudu": _MUDU_LIMIT},
    ),
    Rule("503 with Retry-After 3600", status(503, retry_after="3600"), expect=_LONG_WAIT),
    Rule(
        "429 with Retry-After as an HTTP date 2 hours ahead",
        lambda exchange: status(429, retry_after=retry_after_date(7200))(exchange),
        expect={**dict.fromkeys(PROVIDERS, _LONG_WAIT), "mudu": _MUDU_LIMIT},
    ),
    Rule("429 with Retry-After 1 (within the ceiling)", status(429, retry_after="1"), expect=OK),
    # -- slow answers: every attempt has a deadline
    Rule("drip: headers, then a byte every 0.5 s (once)", drip(0.5), expect=OK),
    Rule(
        "drip on every call",
        drip(0.5),
        calls=every,
        expect=stops(r"did not arrive in full within request_timeout=\d+s \(gave up after \d+ attempts\)"),
    ),
    # -- answers that are not the documented JSON
    Rule("HTML page with 200", html(200), expect=stops(r"not JSON")),
    Rule("empty body with 200", empty, expect=stops(r"not JSON")),
    Rule(
        "null row list",
        rows_become(lambda rows: None),
        providers=("mudu", "shangzhibo", "nuoyun"),
        expect=_NO_ROW_LIST,
    ),
    Rule(
        "row list of the wrong type (an object)",
        rows_become(lambda rows: {str(i): row for i, row in enumerate(rows)}),
        expect=_NO_ROW_LIST,
    ),
    Rule(
        "row total of the wrong type (text)",
        total_becomes("many"),
        providers=tuple(TOTALS),
        expect=Expect(exit_zero=True, complete=True),
    ),
    # -- credentials echoed back: masked everywhere
    Rule("credential echoed in a 503 error body", echo(503), expect=OK),
    Rule("credential echoed in a refusal", echo(401), expect=stops(r"\*\*\*")),
    Rule(
        "credential echoed across the 200th character of a 200", echo_at(195), expect=Expect(says=r"\*\*\*")
    ),
    Rule("credential echoed inside a row", secret_in_row, expect=Expect(True, complete=True, says=r"\*\*\*")),
    # -- failures on the wire: retried
    Rule("5xx burst (502, 503)", status(502), calls=first(2), expect=OK),
    Rule("5xx on every call", status(503), calls=every, expect=stops(r"gave up after \d+ attempts")),
    Rule("connection reset twice", reset, calls=first(2), expect=OK),
    Rule("connection closed mid-body", cut_body, expect=OK),
]


# ------------------------------------------------- provider-answer classes (issue 8 items 1-3, 8, 9)

#: The fields that identify a row of each provider (its key, or what its derived key is made of).
IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "mudu": ("record_id",),
    "shangzhibo": ("visitAt", "userId", "anonymousId"),
    "nuoyun": ("room_id",),
    "talkcloud": ("userid", "entertimestamp"),
}
#: Where a request says its page size: (``query`` or ``body``, name).
PAGE_SIZES = {
    "mudu": ("body", "perPage"),
    "shangzhibo": ("query", "pageSize"),
    "nuoyun": ("body", "page_size"),
}
#: A value with a derived field next to it, made unreadable: (field, value).
MALFORMED = {
    "mudu": ("online_time", "ten"),
    "shangzhibo": ("duration", "ten"),
    "nuoyun": ("first_visit_time", "yesterday"),
    "talkcloud": ("duration", "ten"),
}


def _asked(request: Request, where: str, name: str, change: Callable[[t.Any], t.Any]) -> Request:
    """``request`` with one query or JSON-body parameter changed (what the provider then serves)."""
    if where == "query":
        return replace(request, query={**request.query, name: str(change(request.query.get(name)))})
    body = dict(request.json())
    body[name] = change(body.get(name))
    return replace(request, raw_body=json.dumps(body).encode())


def larger_pages(exchange: Exchange) -> Response:
    """Pages of twice the rows asked for (the total stays right), as a gateway with its own size."""
    where, name = PAGE_SIZES[exchange.provider]
    return exchange.real(_asked(exchange.request, where, name, lambda size: int(size) * 2))


def inclusive_end(exchange: Exchange) -> Response:
    """A range whose end is inclusive: Shangzhibo also serves visits at exactly ``endedAt``.

    The other emulations already include both ends (``BETWEEN``).
    """
    real = exchange.real()
    query = exchange.request.query
    if exchange.provider != "shangzhibo" or real.status != 200 or "endedAt" not in query:
        return real
    data = exchange.sandbox.providers["shangzhibo"]
    started, ended = (
        datetime.fromisoformat(query[k].replace("Z", "+00:00")) for k in ("startedAt", "endedAt")
    )
    rows = data.visits_between(exchange.request.params["id"], started, ended + timedelta(milliseconds=1))
    pager = dict(real.body["pager"])
    page, size = int(pager["page"]), int(pager["pageSize"])
    items = rows[(page - 1) * size : page * size]
    return Response(200, {"pager": {**pager, "total": len(rows)}, "items": items}, rows=len(items))


def without_identity(count: int) -> Answer:
    """The real page with the identity fields taken out of its first ``count`` rows."""

    def answer(exchange: Exchange) -> Response:
        def change(rows: list) -> list:
            rows = list(rows or [])
            for index in range(min(count, len(rows))):
                rows[index] = {
                    k: v for k, v in rows[index].items() if k not in IDENTITY_FIELDS[exchange.provider]
                }
                if exchange.hostile is not None:
                    exchange.hostile.damaged += 1
            return rows

        return rows_become(change)(exchange)

    return answer


def malformed_value(exchange: Exchange) -> Response:
    """The real page with one row's value unreadable (``duration: "ten"``)."""
    name, value = MALFORMED[exchange.provider]
    return rows_become(lambda rows: [{**rows[0], name: value}, *rows[1:]] if rows else rows)(exchange)


def numeric_visit_at(exchange: Exchange) -> Response:
    """Shangzhibo: one row's ``visitAt`` as unix milliseconds instead of ISO-8601 text."""

    def change(rows: list) -> list:
        if not rows:
            return rows
        moment = datetime.fromisoformat(rows[0]["visitAt"].replace("Z", "+00:00"))
        if exchange.hostile is not None:
            exchange.hostile.damaged += 1
        return [{**rows[0], "visitAt": int(moment.timestamp() * 1000)}, *rows[1:]]

    return rows_become(change)(exchange)


def talkcloud_result_0(logininfo: str) -> Answer:
    """Talk-cloud ``result: 0`` with ``logininfo`` ``null`` or ``absent``."""

    def change(body: t.Any, exchange: Exchange) -> t.Any:
        if not isinstance(body, dict) or body.get("result") != 0:
            return body
        body = dict(body)
        if logininfo == "absent":
            body.pop("logininfo", None)
        else:
            body["logininfo"] = None
        return body

    return edit(change)


RULES += [
    Rule("Talk-cloud result 0 with logininfo null", talkcloud_result_0("null"), providers=("talkcloud",)),
    Rule("Talk-cloud result 0 without logininfo", talkcloud_result_0("absent"), providers=("talkcloud",)),
    Rule("pages larger than asked", larger_pages, calls=every, providers=tuple(PAGE_SIZES)),
    Rule(
        "window ends inclusive",
        inclusive_end,
        calls=every,
        providers=("shangzhibo", "talkcloud"),
        expect=Expect(exit_zero=True, complete=True, once=True),
    ),
    Rule("rows without their identity fields", without_identity(2), damages_identity=True),
    Rule(
        "one malformed value",
        malformed_value,
        expect={p: Expect(True, complete=True, says=f"WARNING.*{MALFORMED[p][0]}") for p in PROVIDERS},
    ),
    Rule(
        "numeric visitAt",
        numeric_visit_at,
        providers=("shangzhibo",),
        expect=Expect(exit_zero=True, complete=True),
        damages_identity=True,
    ),
]
