"""``python -m tap_livestream_viewers``: the same CLI as ``tap-livestream-viewers``."""

from tap_livestream_viewers.tap import TapLivestreamViewers

TapLivestreamViewers.cli()
