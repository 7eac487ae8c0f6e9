"""Print a pip constraints file pinning every dependency of pyproject.toml (and the extras
named on the command line) to its lower bound's release series (``==X.*``), so CI can
check those bounds are true.

    python .ci/lowest.py test > /tmp/lowest.txt
    pip install -c /tmp/lowest.txt -e '.[test]'
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LOWER = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(?:[^;]*?)>=\s*([0-9][^,;\s]*)")


def constraints(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for spec in specs:
        requirement, _, marker = spec.partition(";")
        found = LOWER.match(requirement)
        if found is None:
            continue  # no lower bound: nothing to pin
        name = found.group(1).lower().replace("_", "-")
        # "==X.*": the bound itself or its first patch release (2.3 may exist only as 2.3.1)
        line = f"{name}=={found.group(2)}.*" + (f"; {marker.strip()}" if marker else "")
        pins.setdefault(name, line)
    return sorted(pins.values())


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(constraints(root / "pyproject.toml", sys.argv[1:])))
