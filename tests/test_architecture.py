"""The package's layers (ARCHITECTURE.md): every import between flukeid's parts points down or sideways, never up,
and no two parts import each other (lazy imports inside functions and TYPE_CHECKING imports count too)."""

from __future__ import annotations

import ast
import itertools
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import flukeid

ROOT = Path(flukeid.__file__).parent

LAYERS: list[set[str]] = [
    {"flukeid", "errors", "config", "progress", "folders", "metrics", "scores"},  # core: no flukeid part above
    {"data", "synth"},  # catalogues, photos, splits; synthetic catalogues
    {"models", "matchers"},  # embedding networks and model folders; local feature matchers
    {"detect"},  # detector, crops
    {"embed", "gallery"},  # photos -> vectors; catalogue photos with vectors and local features
    {"identify"},  # the pipeline: shortlist, local matching, calibrated fusion, ranking, evaluation, tuning
    {"train", "report", "embed_ray"},  # metric learning (validated by identify), reports, Ray batch jobs
    {"serve", "demo"},  # the curator service; the demo
    {"cli", "__main__", "api"},  # the command line: parse, call one library function, print; the Python API
]
"""Bottom to top. A part may import parts of its own layer or below; not two parts importing each other.

The package root is two things: constants every part imports (``flukeid``, the core), and the public API that
re-exports objects of the upper parts, loaded lazily (``api``, the top). So the root's own imports count as the
API's; they must be lazy (in functions or under TYPE_CHECKING: `test_the_package_root_imports_lazily`), else
``import flukeid`` by any part would load the parts above it. A part importing an API name from the root imports
the part that defines it."""

API = "api"
"""The part that the package root's own imports belong to (see LAYERS)."""


def part_of(module: str) -> str:
    """The part of ``flukeid.x.y`` (x), or "flukeid" for the package root itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "flukeid"


def imports() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> where: every flukeid import between two different parts."""
    found: dict[tuple[str, str], list[str]] = {}
    for file in sorted(ROOT.rglob("*.py")):
        module = ".".join(("flukeid", *file.relative_to(ROOT).with_suffix("").parts))
        source = part_of(module.removesuffix(".__init__"))
        source = API if source == "flukeid" else source
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flukeid":
                targets = [node.module]
                if node.module == "flukeid":  # `from flukeid import gallery` names a part, or an API name its module
                    targets = [flukeid._EXPORTS.get(a.name, f"flukeid.{a.name}") for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "flukeid"]
            else:
                continue
            for target in targets:
                part = part_of(target)
                if not ((ROOT / part).is_dir() or (ROOT / f"{part}.py").is_file()):
                    part = "flukeid"  # a name defined in flukeid/__init__.py
                if part != source:
                    where = f"{file.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault((source, part), []).append(where)
    return found


def layer_of() -> dict[str, int]:
    return {part: level for level, parts in enumerate(LAYERS) for part in parts}


def test_every_part_has_a_layer() -> None:
    parts = {
        p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    missing = sorted(parts - {"__init__"} - layer_of().keys())
    assert not missing, f"add these parts of flukeid to LAYERS (and ARCHITECTURE.md): {missing}"


def test_imports_only_point_down() -> None:
    level = layer_of()
    upward = [
        f"{source} (layer {level[source]}) imports {target} (layer {level[target]}) at {', '.join(where)}"
        for (source, target), where in sorted(imports().items())
        if source in level and target in level and level[target] > level[source]
    ]
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)


def test_parts_import_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in imports():
        graph.setdefault(source, set()).add(target)
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        where = [f"{a} -> {b}: {', '.join(imports()[(b, a)])}" for a, b in itertools.pairwise(cycle)]
        raise AssertionError("parts of flukeid import each other in a cycle:\n" + "\n".join(where)) from exc


def test_the_package_root_imports_lazily() -> None:
    """Module-level imports of other parts in flukeid/__init__.py would run whenever any part imports flukeid."""
    tree = ast.parse((ROOT / "__init__.py").read_text())
    eager = [
        f"__init__.py:{node.lineno}"
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            name.split(".")[0] == "flukeid"
            for name in [getattr(node, "module", None) or ""] + [a.name for a in node.names]
        )
    ]
    assert not eager, f"the package root imports parts of flukeid eagerly: {eager}"


def test_api_names_count_as_imports_of_the_parts_that_define_them() -> None:
    found = imports()
    assert (API, "identify") in found and ("identify", API) not in found
    assert all(source != "flukeid" for source, _ in found)  # the root's own imports are the API's


def test_the_scan_finds_imports_from_functions_too() -> None:
    found = imports()
    assert ("identify", "gallery") in found  # a top-level import
    assert any(where.startswith("embed_ray.py") for where in found.get(("embed_ray", "detect"), []))  # lazy ones
