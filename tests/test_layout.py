"""The package's architecture, read from its source: three layers with imports
only downward (core <- models <- app), NumPy-only math, no module reaching
into another's private names, no import cycle, and an app layer that stays
smaller than the math it serves."""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "npvae"
LAYERS = {"core": 0, "models": 1, "app": 2}
# Top-level modules: textbook.py stands alone; __init__ and __main__ gather the layers.
STANDALONE = {"npvae.textbook"}
CORE_ALLOWED = {"numpy", "scipy"}
# Issue #19: the app, about 2,100 lines of code before the redesign, at most 1,500.
APP_LINES_LIMIT = 1500


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name, path):
    """(imported module, imported names) for every import statement in the
    file, at any depth, relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((module, tuple(alias.name for alias in node.names)))
    return found


def _layer(module):
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "npvae" else None


def _targets(module, names, modules):
    """The npvae modules an import statement loads: ``from npvae.core import
    layers`` loads npvae.core.layers."""
    out = {module} if module in modules else set()
    out.update(f"{module}.{n}" for n in names if f"{module}.{n}" in modules)
    return out


MODULES = _modules()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_only_downward(name):
    mine = _layer(name)
    for module, names in _imports(name, MODULES[name]):
        for target in _targets(module, names, MODULES):
            theirs = _layer(target)
            if name in STANDALONE:
                assert False, f"{name} imports {target}: textbook.py stands alone"
            if mine is not None and theirs is not None:
                assert theirs <= mine, f"{name} (layer {mine}) imports {target} (layer {theirs})"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) == 0))
def test_core_needs_only_numpy_and_scipy(name):
    for module, _ in _imports(name, MODULES[name]):
        top = module.split(".")[0]
        if top == "npvae" or top in sys.stdlib_module_names:
            continue
        assert top in CORE_ALLOWED, f"{name} imports {module}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_names_across_modules(name):
    for module, names in _imports(name, MODULES[name]):
        if module.split(".")[0] == "npvae" or module.split(".")[0] == "sklearn":
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [part for part in module.split(".") if part.startswith("_")
                        and not part.startswith("__")]
            assert not private, f"{name} imports private {private} from {module}"


def test_no_import_cycle():
    """Module-level imports only: a cycle there fails at import time or
    depends on import order."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        top_level = ast.Module(body=[n for n in tree.body
                                     if isinstance(n, (ast.Import, ast.ImportFrom))],
                               type_ignores=[])
        edges = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in top_level.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = tuple(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                module, names = node.module, tuple(a.name for a in node.names)
            else:
                module, names = node.names[0].name, ()
            # A package's __init__ importing its own submodules is not a cycle.
            edges |= {t for t in _targets(module, names, MODULES)
                      if t != name and not t.startswith(name + ".")}
        graph[name] = edges

    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for start in graph:
        if start not in state:
            visit(start, [start])


def code_lines(path):
    """Lines of code in a file: neither blank, nor a comment, nor part of a
    docstring."""
    source = path.read_text()
    tree = ast.parse(source)
    doc_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in doc_lines)


def test_code_lines_counts_code_only(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""Doc\nstring."""\n# comment\n\ndef f():\n    """One."""\n    return 1\n')
    assert code_lines(f) == 2


def test_app_layer_is_smaller_than_its_limit():
    total = sum(code_lines(p) for p in (PACKAGE / "app").glob("*.py"))
    assert total <= APP_LINES_LIMIT, f"npvae/app has {total} lines of code"


def test_the_checks_catch_a_planted_violation(tmp_path, monkeypatch):
    """An upward import and a private name are seen."""
    core = tmp_path / "npvae" / "core"
    core.mkdir(parents=True)
    bad = core / "bad.py"
    bad.write_text("from ..app.cli import main\nfrom .layers import _ones\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "npvae")
    monkeypatch.setitem(MODULES, "npvae.app.cli", PACKAGE / "app" / "cli.py")
    monkeypatch.setitem(MODULES, "npvae.core.bad", bad)
    monkeypatch.setitem(MODULES, "npvae.core.layers", PACKAGE / "core" / "layers.py")
    with pytest.raises(AssertionError, match="imports npvae.app.cli"):
        test_imports_run_only_downward("npvae.core.bad")
    with pytest.raises(AssertionError, match="private"):
        test_no_private_names_across_modules("npvae.core.bad")
