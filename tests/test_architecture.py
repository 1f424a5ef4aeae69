"""The shape of the package stays livable: packages in layers that import only downwards, no
import cycles, no module reaching into another's private names, no source file too long to
read in one sitting and no line too wide to read without scrolling.

Everything here reads the source with :mod:`ast` (nothing is imported), so a failure
names the file and line to fix.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "spherefer"
MAX_LINES = 400
MAX_COLUMNS = 120

# The packages from the ground up: a package imports its own modules and those of lower layers,
# never a higher one. ``spherefer`` itself (the public names) stands above all but the front ends.
LAYERS = (
    ("core",),  # images, files, names, the unit sphere, ONNX Runtime sessions
    ("face", "data"),  # faces in photos; datasets on disk
    ("bank",),  # the class centers: scoring rules, enrolment, adaptation, the unknown score
    ("runtime",),  # model folders, embedders, the recognizer, streams, tracking
    ("evaluation",),  # accuracy, calibration, open-vocabulary protocols
    ("training", "engines", "viz"),  # PyTorch (training only); batch and Ray engines; pictures
    ("",),  # the public names (spherefer/__init__.py)
    ("serve", "cli"),  # the front ends
)


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the package: ``module`` and the ``names`` taken from it."""

    source: str  # the importing module
    module: str  # the imported module (a submodule named in ``from pkg import sub`` counts as the module)
    name: str | None  # the name taken from ``module`` (None: the module itself)
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:`` (never executed)


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under the source folder ``root``, by dotted name."""
    return {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _base(source: str, path: Path, level: int, module: str | None) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if level == 0:
        return module or ""
    parts = source.split(".")
    if not _is_package(path):
        parts = parts[:-1]  # a plain module's ``.`` is its package
    parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(source: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a package module by ``source``, at any depth (functions included)."""
    tree = ast.parse(path.read_text(), str(path))
    guarded = _type_checking_lines(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.append(Import(source, alias.name, None, node.lineno, node.lineno in guarded))
        elif isinstance(node, ast.ImportFrom):
            base = _base(source, path, node.level, node.module)
            if base not in modules:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.append(Import(source, sub, None, node.lineno, node.lineno in guarded))
                else:
                    found.append(Import(source, base, alias.name, node.lineno, node.lineno in guarded))
    return found


def import_graph(modules: dict[str, Path], include_type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports (itself left out)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imp in imports_of(name, path, modules):
            if imp.module != name and (include_type_checking or not imp.type_checking):
                graph[name].add(imp.module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def private_uses(modules: dict[str, Path]) -> list[str]:
    """``file:line`` and what for every private name one package module takes from another:
    imported (``from .x import _y``) or read off an imported module (``x._y``)."""
    problems = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        module_aliases: dict[str, str] = {}  # local name -> package module it is bound to
        for imp in imports_of(name, path, modules):
            if (
                imp.module != name
                and imp.name is not None
                and imp.name.startswith("_")
                and not imp.name.startswith("__")
            ):
                problems.append(f"{path}:{imp.line} imports {imp.module}.{imp.name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _base(name, path, node.level, node.module)
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        module_aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        module_aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and module_aliases[node.value.id] != name
            ):
                problems.append(f"{path}:{node.lineno} reads {module_aliases[node.value.id]}.{node.attr}")
    return problems


# ---------------------------------------------------------------- the checker checks itself


def test_the_cycle_finder_finds_cycles_and_only_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_the_checks_find_cycles_and_private_names_in_a_made_up_package(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import public\n")
    (package / "a.py").write_text(
        "from .b import _hidden\nfrom . import b\npublic = b._other\n\ndef later():\n    from .sub import c\n"
    )
    (package / "b.py").write_text("_hidden = _other = 1\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text(
        "from ..a import public\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import b\n"
    )
    modules = package_modules(tmp_path, "pkg")
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b", "pkg.sub.c"} and graph["pkg.sub.c"] == {
        "pkg.a"
    }  # the TYPE_CHECKING import is left out
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.c", "pkg.a"]
    assert import_graph(modules, include_type_checking=True)["pkg.sub.c"] == {"pkg.a", "pkg.b"}
    problems = private_uses(modules)
    assert (
        len(problems) == 2
        and "a.py:1 imports pkg.b._hidden" in problems[0]
        and "a.py:3 reads pkg.b._other" in problems[1]
    )


def test_relative_imports_resolve_to_package_modules() -> None:
    modules = package_modules()
    assert f"{PACKAGE}.cli" in modules and f"{PACKAGE}.face.results" in modules
    targets = {
        imp.module
        for imp in imports_of(f"{PACKAGE}.runtime.recognizer", modules[f"{PACKAGE}.runtime.recognizer"], modules)
    }
    assert {f"{PACKAGE}.bank.centers", f"{PACKAGE}.face"} <= targets


# ---------------------------------------------------------------- the rules


def layer_of(module: str) -> int:
    parts = module.split(".")
    package = parts[1] if len(parts) > 1 else ""
    for level, packages in enumerate(LAYERS):
        if package in packages:
            return level
    raise AssertionError(f"{module} is in no layer of LAYERS: add its package there")


def test_every_package_imports_only_its_own_layer_or_lower_ones() -> None:
    """An arrow that runs up (a lower package importing a higher one) makes the layers a tangle."""
    modules = package_modules()
    upward = []
    for name, path in modules.items():
        for imp in imports_of(name, path, modules):
            if not imp.type_checking and layer_of(imp.module) > layer_of(name):
                upward.append(f"{path.relative_to(SRC)}:{imp.line} imports {imp.module}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_only_the_training_package_imports_torch() -> None:
    found = []
    for name, path in package_modules().items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            )
            if any(n == "torch" or n.startswith("torch.") for n in names) and not name.startswith(
                f"{PACKAGE}.training"
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, "torch imported outside spherefer.training: " + ", ".join(found)


def test_the_import_graph_has_no_cycle() -> None:
    """Counting every import that runs, at module level or inside functions (only
    ``if TYPE_CHECKING:`` blocks, which never run, are left out)."""
    cycle = find_cycle(import_graph(package_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_uses_another_modules_private_names() -> None:
    problems = private_uses(package_modules())
    assert not problems, "private names used across modules (make them public or move the code):\n" + "\n".join(
        problems
    )


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def test_the_documented_package_graph_is_the_codes() -> None:
    """docs/ARCHITECTURE.md draws who imports whom between the packages; it must stay true."""
    graph = import_graph(package_modules())
    actual = {(package_of(a), package_of(b)) for a, targets in graph.items() for b in targets}
    actual = {(a, b) for a, b in actual if a != b}
    text = (SRC.parent / "docs" / "ARCHITECTURE.md").read_text()
    drawn = {tuple(line.split(" --> ")) for line in (line.strip() for line in text.splitlines()) if " --> " in line}
    assert drawn == actual, (
        f"missing from the picture: {sorted(actual - drawn)}; not in the code: {sorted(drawn - actual)}"
    )


@pytest.mark.parametrize("path", sorted((SRC / PACKAGE).rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_is_too_long(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines (at most {MAX_LINES}): split it by concept"


@pytest.mark.parametrize("path", sorted((SRC / PACKAGE).rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_line_is_too_wide(path: Path) -> None:
    wide = [number for number, line in enumerate(path.read_text().splitlines(), 1) if len(line) > MAX_COLUMNS]
    assert not wide, f"{path.relative_to(SRC)} has lines over {MAX_COLUMNS} characters: {wide}"
