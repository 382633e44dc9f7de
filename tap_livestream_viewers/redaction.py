"""Which strings are secret, and masking them wherever text leaves the tap.

A credential rarely comes back whole: ``nuoyun.headers.Authorization = "Bearer <token>"`` is
configured, but a gateway echoes ``<token>`` alone ("invalid token <token>"). So each secret
value is masked together with its secret parts (``secret_forms``): the words after an
authentication scheme, the password of ``user:pass``, the decoded text of Basic credentials,
the values of ``name=value`` lists, and their URL-encoded forms. Scheme names (``Bearer``,
``Basic``) are not secret and stay readable.

Log lines are masked at the source: ``register`` adds secrets to a log-record factory, so
every record's message (the SDK's, libraries', ours) is masked when it is formatted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import typing as t
from urllib.parse import quote, quote_plus, unquote, urlsplit

#: Values shorter than this are not masked: "1000" in a secret body is not worth hiding
#: everywhere it appears, and no real credential is that short.
MIN_SECRET_LENGTH = 6
MASK = "***"
_SEPARATORS = re.compile(r"[\s,;]+")


def secret_forms(value: str) -> t.Iterator[str]:
    """``value`` and each part of it that is secret on its own, as text may show them."""
    forms = {value, *_parts(value)}
    for form in list(forms):
        forms.update({quote(form, safe=""), quote_plus(form)})
    yield from (form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def _parts(value: str) -> t.Iterator[str]:
    words = [word for word in _SEPARATORS.split(value.strip()) if word]
    if len(words) > 1 and words[0].isalpha():
        words = words[1:]  # "Bearer", "Basic", "Token": an authentication scheme, not a secret
    for word in words:
        yield word
        name, equals, assigned = word.partition("=")
        if equals and name and assigned:
            yield assigned.strip("\"'")  # Digest-style name="value" lists
        yield from _user_password(word)
        decoded = _basic_credentials(word)
        if decoded:
            yield decoded
            yield from _user_password(decoded)


def _user_password(word: str) -> t.Iterator[str]:
    """The password of ``user:password`` (the user name alone is an identifier, not a secret)."""
    user, colon, password = word.partition(":")
    if colon and user and password and "//" not in word:
        yield password
    if "//" in word:  # scheme://user:password@host/... (e.g. call_budget_store)
        try:
            in_url = urlsplit(word).password
        except ValueError:
            in_url = None
        if in_url:
            yield in_url
            yield unquote(in_url)


def _basic_credentials(word: str) -> str | None:
    """``user:password`` when ``word`` is its base64 (the Basic scheme's encoding), else ``None``."""
    if len(word) < 8 or len(word) % 4:
        return None
    try:
        text = base64.b64decode(word, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return text if ":" in text and text.isprintable() else None


def mask(text: str, secrets: t.Sequence[str]) -> str:
    """``text`` with every secret (longest first) replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_values(value: t.Any, secrets: t.Sequence[str] | None = None) -> t.Any:
    """``value`` (a record: dicts, lists, text) with every secret in its text masked.

    ``secrets`` defaults to those ``register`` was given (every stream's config secrets).
    """
    secrets = _registered if secrets is None else secrets
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {key: mask_values(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_values(item, secrets) for item in value]
    return value


def ordered(secrets: t.Iterable[str]) -> list[str]:
    """Secrets longest first, so a secret is masked before any part of it."""
    return sorted(set(secrets), key=len, reverse=True)


_registered: list[str] = []
_lock = threading.Lock()
_installed = False


def register(secrets: t.Iterable[str]) -> None:
    """Mask ``secrets`` in every log record from now on (all loggers, all handlers)."""
    global _installed  # one factory per process
    with _lock:
        _registered[:] = ordered([*_registered, *secrets])
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: t.Any, **kwargs: t.Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            plain = record.getMessage
            record.getMessage = lambda: mask(plain(), _registered)  # type: ignore[method-assign]
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
