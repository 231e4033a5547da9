"""The package's layers: every import (lazy ones inside functions included) goes down the data flow, never up;
so no two parts can import each other, directly or through a third."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nas_harness"

# Bottom to top; parts on one line are peers and may not import each other.
LAYERS: list[set[str]] = [
    {"errors"},
    {"_config"},
    {"arch"},
    {"scaling"},
    {"presets"},
    {"space", "flops", "model"},
    {"kernels", "data"},
    {"train"},
    {"latency"},
    {"records", "objectives"},
    {"evaluators"},
    {"supernet", "tables"},
    {"trial"},
    {"backends"},
    {"results"},
    {"plots"},
    {"report"},
    {"tracking"},
    {"study"},
    {"evaluation"},
    {"ablation", "scaling_curves"},
    {"benchmark"},
    {"bench"},
    {"doctor"},
    {"cli"},
]
LEVEL = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "nas_harness"


def _imports(path: Path) -> set[str]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    here = list(rel.parts if path.name != "__init__.py" else rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if path.name == "__init__.py" else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "nas_harness":
                out.update(f"nas_harness.{a.name}" for a in node.names)
            elif target.startswith("nas_harness."):
                out.add(target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("nas_harness."))
    return out


def test_every_part_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts == set(LEVEL), f"unplaced: {sorted(parts - set(LEVEL))}, gone: {sorted(set(LEVEL) - parts)}"


def test_imports_only_go_down() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if rel.parts == ("nas_harness", "__init__"):  # the package's own re-exports (lazy) from below
            continue
        src = _part(".".join(rel.parts))
        for target in _imports(path):
            dst = _part(target)
            if dst != src and LEVEL[dst] >= LEVEL[src]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports {target}")
    assert not upward, "\n".join(upward)
