"""The dependency direction inside ``fmlm``, read from the source with ``ast`` (imports inside functions
count too), plus one runtime check that the reports load without torch.

(a) ``fmlm.reports`` imports from ``fmlm`` only the run-folder contract (``fmlm.experiment.run_folder``),
    the sweeps' choice rule (``fmlm.experiment.sweep_choice``, so the report names the value the run used),
    the file helpers (``fmlm.files``), the interval mechanism (``fmlm.intervals``) and itself;
(b) the torch-free modules (``TORCH_FREE``) import no torch, neither directly nor through the ``fmlm``
    modules they import (followed transitively; a package's ``__init__`` counts with the imports it makes
    at import time);
(c) no module imports one from a higher layer of ``LAYERS``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fmlm"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("fmlm.config", "fmlm.files", "fmlm.intervals"),
    ("fmlm.experiment.run_folder", "fmlm.experiment.sweep_choice", "fmlm.math", "fmlm.data", "fmlm.evaluation"),
    ("fmlm.synthetic",),
    ("fmlm.nn.rotary",),
    ("fmlm.nn.cpu",),
    ("fmlm.nn",),
    ("fmlm.losses", "fmlm.samplers"),
    ("fmlm.train",),
    ("fmlm.models",),
    ("fmlm.experiment",),
    ("fmlm.reproduce", "fmlm.study"),
    ("fmlm.reports",),
    ("fmlm.cli",),
    ("fmlm", "fmlm.__main__"),
)
"""Bottom to top. A unit is a module or package (a module belongs to the longest unit naming it; ``fmlm``
itself is only ``fmlm/__init__.py``). A module may import its own unit and units of lower layers; units
side by side in one layer import each other only when ``PEERS`` pairs them. ``fmlm.experiment.run_folder``
(it imports only ``fmlm.files``) sits at the bottom: it is the contract between the main job, which
writes run folders, and the reports, which read them. ``fmlm.data`` and ``fmlm.evaluation`` import only
the bottom layer. The network (``fmlm.nn``) sits on its CPU kernels (``fmlm.nn.cpu``), which know of it
only the rotation formula (``fmlm.nn.rotary``)."""

PEERS: set[frozenset[str]] = set()
"""Units of one layer that may import each other (none: the command line is one package, ``fmlm.cli``)."""

REPORTS_MAY_IMPORT = ("fmlm.experiment.run_folder", "fmlm.experiment.sweep_choice", "fmlm.files", "fmlm.intervals")
"""What ``fmlm.reports`` may import from ``fmlm`` besides itself."""

TORCH_PACKAGES = ("torch", "accelerate", "transformers")
"""Top-level packages that are torch or import it."""


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    line: int
    target: str  # a module of fmlm, or the full name of an external one
    top_level: bool  # executed when the importing module is imported (not inside a function)

    @property
    def internal(self) -> bool:
        return self.target == "fmlm" or self.target.startswith("fmlm.")

    def where(self) -> str:
        return f"{MODULES[self.source].relative_to(ROOT)}:{self.line}: {self.source} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _walk(node: ast.AST, in_function: bool = False):
    """Every import statement below ``node`` with whether it sits inside a function body."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        yield from _walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


@lru_cache(maxsize=None)
def imports_of(module: str) -> tuple[Import, ...]:
    """The imports of ``module``; ``from pkg import name`` names ``pkg.name`` when that is a module."""
    path = MODULES[module]
    found = []
    for node, in_function in _walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        found += [Import(module, node.lineno, t, not in_function) for t in dict.fromkeys(targets)]
    return tuple(found)


def unit_of(module: str) -> str | None:
    units = [u for layer in LAYERS for u in layer if module == u or (u != "fmlm" and module.startswith(u + "."))]
    return max(units, key=len) if units else None


RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def torch_chains(start: str) -> list[str]:
    """How importing ``start`` may reach a torch package: one chain per torch import reached."""
    seen: dict[tuple[str, bool], tuple[tuple[str, bool], Import] | None] = {}
    queue: list[tuple[str, bool]] = []

    def visit(module: str, full: bool, parent: tuple[tuple[str, bool], Import] | None) -> None:
        # full: every import of the module counts; else (a package entered on the way) only top-level ones
        for node in [(a, False) for a in _ancestors(module)] + [(module, full)]:
            if node not in seen and node[0] in MODULES:
                seen[node] = parent
                queue.append(node)

    visit(start, True, None)
    chains = []
    while queue:
        node = queue.pop(0)
        for imp in imports_of(node[0]):
            if not (node[1] or imp.top_level):
                continue
            if imp.internal:
                visit(imp.target, True, (node, imp))
            elif any(imp.target == p or imp.target.startswith(p + ".") for p in TORCH_PACKAGES):
                steps, link = [imp.where()], seen[node]
                while link is not None:
                    steps.append(link[1].where())
                    link = seen[link[0]]
                chains.append(" <- ".join(steps))
    return chains


TORCH_FREE = sorted({"fmlm.experiment.run_folder", "fmlm.experiment.sweep_choice", "fmlm.files", "fmlm.config",
                     "fmlm.intervals",
                     *(m for m in MODULES if m == "fmlm.reports" or m.startswith("fmlm.reports."))})


def test_the_scan_sees_the_package():
    assert {"fmlm.cli", "fmlm.reports", "fmlm.reports.build", "fmlm.experiment.run_folder"} <= set(MODULES)
    assert any(i.target == "fmlm.experiment.run_folder" for i in imports_of("fmlm.reports.loading"))


def test_every_module_has_a_layer():
    unlisted = [m for m in MODULES if unit_of(m) is None]
    assert not unlisted, f"modules in no unit of LAYERS: {unlisted}"


def test_fmlm_imports_name_existing_modules():
    unknown = [i.where() for m in MODULES for i in imports_of(m) if i.internal and i.target not in MODULES]
    assert not unknown, "\n".join(unknown)


def test_reports_import_only_the_run_folder_contract_and_files():
    bad = [i.where() for m in TORCH_FREE if m.startswith("fmlm.reports") for i in imports_of(m)
           if i.internal and i.target not in REPORTS_MAY_IMPORT and not i.target.startswith("fmlm.reports")]
    assert not bad, "\n".join(bad)


def test_torch_free_modules_reach_no_torch():
    chains = [chain for m in TORCH_FREE for chain in torch_chains(m)]
    assert not chains, "\n".join(chains)


def test_torch_free_modules_load_without_torch():
    code = (
        "import importlib, sys\n"
        f"for name in {TORCH_FREE!r}:\n"
        "    importlib.import_module(name)\n"
        "import fmlm.reports.build\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({TORCH_PACKAGES!r}))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_no_module_imports_a_higher_layer():
    upward = []
    for module in MODULES:
        source = unit_of(module)
        for imp in imports_of(module):
            target = unit_of(imp.target) if imp.internal and imp.target in MODULES else None
            if target is None or target == source or RANK[target] < RANK[source]:
                continue
            if RANK[target] == RANK[source] and frozenset({source, target}) in PEERS:
                continue
            upward.append(f"{imp.where()} (layer {RANK[target]} {target} over layer {RANK[source]} {source})")
    assert not upward, "\n".join(upward)
