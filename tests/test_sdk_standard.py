"""The Singer SDK's standard tap tests, run against every provider the sandbox emulates.

The sandbox runs in this process on a loopback port; its demo data and the tap settings
that read it come from ``python -m sandbox``'s own ``build``/``tap_settings``, so a provider
joins these tests as soon as its emulation exists.
"""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from sandbox.__main__ import build, tap_settings
from tap_livestream_viewers.tap import TapLivestreamViewers

_SANDBOX, _DATASETS = build()
_BASE_URL = _SANDBOX.start()

SAMPLE_CONFIG = {
    "start_date": "2026-09-01T00:00:00Z",
    "backoff_base_seconds": 0.05,
    **tap_settings(_DATASETS, _BASE_URL),
}

TestTapLivestreamViewers = get_tap_test_class(
    tap_class=TapLivestreamViewers,
    config=SAMPLE_CONFIG,
    suite_config=SuiteConfig(max_records_limit=500),
)
