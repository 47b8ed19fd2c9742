"""The Python API: `from flukeid import ...` gives the objects a notebook needs, each loaded on first use, and
`import flukeid` alone stays light."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import flukeid


def test_import_flukeid_loads_no_other_part_and_no_torch() -> None:
    code = (
        "import sys, flukeid; loaded = sorted(m for m in sys.modules if m.startswith('flukeid.') or m == 'torch');"
        "print(loaded); assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_api_name_is_the_object_its_module_defines() -> None:
    for name, module in flukeid._EXPORTS.items():
        assert getattr(flukeid, name) is getattr(importlib.import_module(module), name), name
    assert set(flukeid.__all__) == {"NEW_WHALE", "__version__", *flukeid._EXPORTS}
    assert set(flukeid.__all__) <= set(dir(flukeid))
    from flukeid import Identifier, load_catalogue  # the form a notebook uses

    assert Identifier.__module__ == "flukeid.identify.identifier" and callable(load_catalogue)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Identifer'"):
        _ = flukeid.Identifer  # type: ignore[attr-defined]


def test_the_type_checking_imports_match_the_exports() -> None:
    """Editors and type checkers see the same names, from the same modules, as `__getattr__` loads."""
    tree = ast.parse(Path(flukeid.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    seen = {a.name: n.module for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert seen == flukeid._EXPORTS
