"""One module per provider: its auth, streams and quirks.

Each module exposes ``active_stream_types(config)``: the stream classes its config enables.
"""

from __future__ import annotations

from tap_livestream_viewers.providers import mudu, nuoyun, shangzhibo, talkcloud

PROVIDERS = (shangzhibo, mudu, nuoyun, talkcloud)
