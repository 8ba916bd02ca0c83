"""The house plan, enforced over the source with `ast` (README: Developing: the layers). Every import of the
product's own modules points down the layers; the engine never imports Dagster or the toy world; nothing
imports the code location; there is no import loop; a module over ~250 lines says in its docstring why it
is kept whole. Function-level imports count: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compute", "assets", "orchestration", "infra")

# (module prefix, layer, rank): a module may import its own layer and layers of lower rank only. The most
# specific prefix wins. Two layers of one rank (the code location and the application) never import each other.
LAYERS = [
    ("compute", "engine", 0),
    ("compute.toyworld", "toy world", 1),
    ("infra", "infra", 1),
    ("orchestration.wiring", "wiring", 2),
    ("assets", "assets", 3),
    ("orchestration.automation", "automation", 4),
    ("orchestration.definitions", "code location", 5),
    ("orchestration.app", "application", 5),
    ("orchestration.bench", "benchmarks", 6),
    ("orchestration", "orchestration package", 6),  # its __init__: a docstring only
]
TOP = "orchestration.definitions"
LONG = 260  # lines; "~250"
KEPT_WHOLE = "kept whole"


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the product `name` imports, at any depth of its code (`from x import y` counts y when
    y is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _layer(module: str) -> tuple[str, int]:
    prefix, layer, rank = max((entry for entry in LAYERS if module == entry[0] or module.startswith(entry[0] + ".")),
                              key=lambda entry: len(entry[0]))
    return layer, rank


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def upward(name: str, targets: set[str]) -> list[str]:
    """The imports of `name` that point up, or sideways into another layer of its rank."""
    layer, rank = _layer(name)
    out = []
    for target in sorted(targets):
        if target not in MODULES and target.rpartition(".")[0] in MODULES:
            target = target.rpartition(".")[0]  # `from package import name` where name is not a module
        their_layer, their_rank = _layer(target)
        if their_layer != layer and their_rank >= rank:
            out.append(f"{target} ({their_layer}, rank {their_rank})")
    return out


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """An import loop among the graph's modules, as a path that ends where it started; None when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(t for t in graph.get(name, ()) if t in graph and t != name):
            if target.startswith(name + "."):  # a package's __init__ naming its own submodule
                continue
            if state.get(target) == 1:
                return path + [target]
            if target not in state and (loop := visit(target, path + [target])):
                return loop
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (loop := visit(name, [name])):
            return loop
    return None


def test_every_module_has_a_layer():
    for name in MODULES:
        _layer(name)  # raises ValueError (max of nothing) for a module outside every layer


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    assert not (found := upward(name, GRAPH[name])), f"{name} ({_layer(name)[0]}) imports up or sideways: {found}"


def test_nothing_imports_the_code_location():
    assert [name for name, targets in GRAPH.items() if TOP in targets] == []


# A module run or loaded by name is a dependency the import graph cannot see: each one is listed here, with
# who may name it. The code location is loaded only by the application's `location` module.
BY_NAME = {
    TOP: {"orchestration.app.location"},
    "orchestration.bench.bench": {"orchestration.app.cli"},  # `shiftlake bench` runs the benchmark program
    "orchestration.app.cli": {"orchestration.bench.stages"},  # the benchmark times the demo as a user runs it
    "compute.workers": {"compute.workers"},  # verifier workers: fresh interpreters
    "compute.toyworld.grpo_writer": {"orchestration.app.live"},  # the live demo's trainer
}


def _named_modules(path: Path) -> set[str]:
    """Product modules named in string constants (`-m module`, `importlib.import_module(name)`)."""
    strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    return {s for s in strings if s in MODULES and "." in s}


def test_modules_named_as_strings_are_the_listed_ones():
    found = {(target, name) for name, path in MODULES.items() for target in _named_modules(path)}
    allowed = {(target, name) for target, names in BY_NAME.items() for name in names}
    assert found - allowed == set(), "a module loaded or run by its name outside BY_NAME"
    assert ("orchestration.definitions", "orchestration.app.location") in found  # the rule sees it


def test_the_orchestration_package_itself_imports_nothing():
    assert GRAPH["orchestration"] == set() and GRAPH["assets"] == set()


def _dagster_imports(tree: ast.AST) -> set[str]:
    names = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return {n for n in names if n.split(".")[0].startswith("dagster")}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n)[0] in ("engine", "toy world")))
def test_the_engine_never_imports_dagster(name):
    assert not _dagster_imports(ast.parse(MODULES[name].read_text()))


def test_the_engine_never_imports_the_toy_world():
    engine = [n for n in MODULES if _layer(n)[0] == "engine"]
    assert {n: sorted(t for t in GRAPH[n] if t.startswith("compute.toyworld")) for n in engine
            if any(t.startswith("compute.toyworld") for t in GRAPH[n])} == {}


def test_no_import_loop():
    assert (loop := find_loop(GRAPH)) is None, "import loop: " + " -> ".join(loop)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_long_modules_say_why(name):
    text = MODULES[name].read_text()
    lines = text.count("\n")
    if lines > LONG:
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert KEPT_WHOLE in doc.lower(), (f"{name}: {lines} lines; split it, or say in its docstring "
                                           "why it is kept whole")


def test_the_rules_find_what_they_guard(tmp_path):
    """Each rule fails on the tangle it forbids: the schedule importing the code location (the old loop), an
    asset importing the automation, the engine importing the toy world or Dagster, the app importing `defs`."""
    assert upward("orchestration.automation.schedules", {TOP}) == [f"{TOP} (code location, rank 5)"]
    assert upward("assets.rollouts", {"orchestration.automation.jobs"})
    assert upward("compute.models", {"compute.toyworld.world"})
    assert upward("orchestration.app.demo", {TOP})  # beside it, not above it
    assert not upward("orchestration.app.demo", {"orchestration.automation.instance", "compute.lake"})
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from orchestration.definitions import defs\n    import dagster\n")
    assert TOP in _imports("compute.bad", source)
    assert _dagster_imports(ast.parse(source.read_text())) == {"dagster"}
    assert _dagster_imports(ast.parse("from dagster_aws.s3 import S3Resource\n")) == {"dagster_aws.s3"}
