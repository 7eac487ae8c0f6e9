"""docs/architecture.md's layer table stays true: every module of livehub/ is in it, and
no module imports from a layer below its own; the core and the engine stay free of I/O
frameworks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "livehub"
DOC = (ROOT / "docs" / "architecture.md").read_text()

ROW = re.compile(r"^\| (\d) (\w+) \| `([\w/]+\.py)` \| .+ \|$", re.M)
LAYERS: dict[str, tuple[int, str]] = {m[3]: (int(m[1]), m[2]) for m in ROW.finditer(DOC)}
# Never in the core: it is pure, tested without sockets, event loops or servers.
NOT_IN_CORE = {"asyncio", "starlette", "redis", "uvicorn", "httpx", "websockets", "socket"}
# Nor in the engine: it serves every transport and knows none.
NOT_IN_ENGINE = {"starlette", "uvicorn", "websockets"}


def _modules() -> list[str]:
    found = sorted(str(f.relative_to(PACKAGE)) for f in PACKAGE.rglob("*.py"))
    return [m for m in found if m != "__init__.py"]  # the empty package marker


def _path_of(module: str) -> str:
    """``livehub.broker.base`` -> ``broker/base.py``; a package -> its ``__init__.py``."""
    rel = module.removeprefix("livehub").lstrip(".").replace(".", "/")
    if (PACKAGE / rel).is_dir():
        return f"{rel}/__init__.py"
    return f"{rel}.py"


def _imports(path: str) -> tuple[set[str], set[str]]:
    """(livehub modules as table paths, other top-level packages) that ``path`` imports."""
    tree = ast.parse((PACKAGE / path).read_text())
    ours: set[str] = set()
    theirs: set[str] = set()
    package = "livehub." + path.removesuffix(".py").replace("/", ".")
    package = package.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names = []
            for alias in node.names:
                full = f"{base}.{alias.name}"
                sub = full.removeprefix("livehub.").replace(".", "/")
                is_module = base.startswith("livehub") and (
                    (PACKAGE / f"{sub}.py").exists() or (PACKAGE / sub).is_dir())
                names.append(full if is_module else base)
        else:
            continue
        for name in names:
            if name == "livehub" or name.startswith("livehub."):
                if name != "livehub":
                    ours.add(_path_of(name))
            elif name != "__future__":
                theirs.add(name.split(".")[0])
    return ours, theirs


def test_the_table_is_found() -> None:
    assert {"room.py", "hub.py", "service.py", "sequencer.py", "events.py"} <= LAYERS.keys()


def test_every_module_is_in_the_layer_table_once() -> None:
    modules = set(_modules())
    missing = sorted(modules - LAYERS.keys())
    gone = sorted(LAYERS.keys() - modules)
    assert not missing, f"add {missing} to the layer table in docs/architecture.md"
    assert not gone, f"the layer table in docs/architecture.md names missing modules {gone}"
    assert len(ROW.findall(DOC)) == len(LAYERS), "a module is listed twice"


@pytest.mark.parametrize("module", _modules())
def test_imports_keep_to_the_layers(module: str) -> None:
    if module not in LAYERS:
        pytest.skip("not in the table (the test above says so)")
    level, name = LAYERS[module]
    ours, theirs = _imports(module)
    for imported in sorted(ours):
        their_level, their_name = LAYERS.get(imported, (99, "unlisted"))
        assert their_level <= level, (
            f"{module} ({level} {name}) imports {imported} ({their_level} {their_name}), "
            "a layer below it in docs/architecture.md")
    if name == "core":
        assert not theirs & NOT_IN_CORE, f"core module {module} imports {theirs & NOT_IN_CORE}"
    if name == "engine":
        assert not theirs & NOT_IN_ENGINE, (
            f"engine module {module} imports {theirs & NOT_IN_ENGINE}")


def test_the_check_sees_a_layering_mistake() -> None:
    ours, theirs = _imports("hub.py")
    assert {"room.py", "sequencer.py", "service.py", "broker/base.py"} <= ours
    assert "asyncio" in theirs
    assert LAYERS["ws.py"][0] > LAYERS["hub.py"][0]  # so hub importing ws would fail
