"""Print ``export`` lines that point Meltano's tap settings at a running sandbox.

Reads the settings ``python -m sandbox --config-out FILE`` wrote and turns each provider's
nested setting into Meltano's environment variable (``mudu.access_token`` becomes
``TAP_LIVESTREAM_VIEWERS_MUDU_ACCESS_TOKEN``); lists and objects are passed as JSON.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

PREFIX = "TAP_LIVESTREAM_VIEWERS_"


def env_lines(settings: dict[str, dict]) -> list[str]:
    lines = []
    for provider, values in settings.items():
        for name, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"export {PREFIX}{provider.upper()}_{name.upper()}={shlex.quote(text)}")
    return lines


if __name__ == "__main__":
    print("\n".join(env_lines(json.loads(Path(sys.argv[1]).read_text()))))
