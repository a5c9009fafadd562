"""Layering of brainsim's modules, read from the source by an AST walk (no
module is imported, so this runs in well under a second).

The import graph has one node per module of the installed package (file
paths mapped to module names through ``package_dir`` in setup.cfg, so
``kernels/csr.py`` is ``brainsim.kernels.csr``) and an edge A -> B for every
import statement in A that reaches B, wherever it stands: module level,
inside a function, under ``if TYPE_CHECKING``, in a ``try``. Rules:

- ``import a.b.c`` is an edge to ``a.b.c``, the module named, and not to its
  parent packages ``a`` and ``a.b``: Python runs those ``__init__`` files
  too, but counting that would make every package that re-exports from its
  submodules a cycle with them.
- ``from P import name`` is an edge to ``P.name`` when that is a module.
  Otherwise, when ``name`` is a re-export of package ``P`` (its
  ``__init__`` binds it by ``from .sub import name``), the edge goes to the
  module that defines it, following re-exports down. So a submodule that
  takes a sibling's name through its own package's ``__init__`` depends on
  that sibling, and a package's ``__init__`` re-exports are edges from the
  package to its submodules. A name ``P``'s ``__init__`` defines itself is an
  edge to ``P``.
- ``importlib.import_module("literal")`` counts as ``import literal``; in a
  module that calls ``import_module`` (or ``__import__``) with anything but
  a literal, e.g. from a registry of engines, every string literal that
  names a brainsim module counts as an import of it.

The graph must have no cycle, and neither may the coarser graph in which
each subpackage (``brainsim.analysis``, ``brainsim.generation``, ...) is one
node and each top-level module (``brainsim.network``) another: two
subpackages that import each other, even through different modules and only
inside functions, are one layer in two places.

No package ``__init__`` may bind a name that is also one of its submodules
to anything but that submodule (the function ``hmda`` over the module
``hmda`` made ``import brainsim.assimilation.hmda as H`` return the
function, so tests needed importlib to reach the module).

``brainsim.kernels`` is the array-only bottom layer: it imports neither the
libraries of the upper layers (xarray, zarr, dask, distributed, matplotlib,
tqdm, pandas) nor any brainsim module outside ``brainsim.kernels`` except
``brainsim.errors``.
"""
import ast
import configparser
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Libraries that only layers above the kernels may import.
KERNEL_FORBIDDEN = ("xarray", "zarr", "dask", "distributed", "matplotlib", "tqdm", "pandas")
#: brainsim modules outside brainsim.kernels that the kernels may import.
KERNEL_ALLOWED = ("brainsim.errors",)


def package_dirs(root=ROOT):
    """Map each top-level package of setup.cfg's ``package_dir`` to its folder."""
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    mapping = {}
    for line in cfg["options"]["package_dir"].strip().splitlines():
        name, _, folder = line.partition("=")
        mapping[name.strip()] = root / folder.strip()
    return mapping


def module_files(root=ROOT):
    """``{module name: (path, is_package)}`` for every .py file of brainsim."""
    modules = {}
    # deeper packages last, so a folder mapped inside another package's folder keeps its name
    for package, folder in sorted(package_dirs(root).items(), key=lambda kv: kv[0].count(".")):
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join([package, *parts])] = (path, is_package)
    return modules


def _base(module, is_package, level, target):
    """Absolute name of a relative import ``from <level dots><target>``."""
    if level == 0:
        return target
    parts = module.split(".")
    keep = len(parts) - level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{target}" if target else base


def _dynamic_import(node):
    """For a call of ``import_module`` or ``__import__``: its literal module
    name, or "" when the name is computed; None for any other node."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""


def _module_literals(tree):
    """String literals of ``tree`` that look like brainsim module names."""
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and node.value.startswith("brainsim")
            and node.value.replace(".", "").replace("_", "").isalnum()}


def raw_imports(source, module, is_package):
    """Every import of ``source``: a list of ``(module, names, lineno)``.

    ``names`` is None for ``import module`` and the tuple of imported names
    for ``from module import ...``; relative imports are made absolute.
    """
    found, computed = [], None
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, is_package, node.level, node.module)
            found.append((base, tuple(a.name for a in node.names), node.lineno))
        elif (dynamic := _dynamic_import(node)) is not None:
            if dynamic:
                found.append((dynamic, None, node.lineno))
            else:
                computed = computed or node.lineno
    if computed:  # a computed module name: any module named in the source may be it
        found += [(name, None, computed) for name in sorted(_module_literals(tree))]
    return found


def reexports(tree, module):
    """Names a package ``__init__`` binds at module level by ``from X import``:
    ``{bound name: (X, original name)}``."""
    bound = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = _base(module, True, node.level, node.module)
            for alias in node.names:
                bound[alias.asname or alias.name] = (base, alias.name)
    return bound


class ImportGraph:
    """The import graph of brainsim's modules under the rules of this file."""

    def __init__(self, root=ROOT):
        self.modules = module_files(root)
        self.sources = {m: path.read_text() for m, (path, _) in self.modules.items()}
        self.bound = {m: reexports(ast.parse(self.sources[m]), m)
                      for m, (_, is_pkg) in self.modules.items() if is_pkg}
        self.edges = {m: {} for m in self.modules}  # module -> {target: first line}
        self.external = {m: {} for m in self.modules}  # module -> {top-level lib: line}
        for m, (_, is_pkg) in self.modules.items():
            for target, names, line in raw_imports(self.sources[m], m, is_pkg):
                self._add(m, target, names, line)

    def _module_of(self, dotted):
        """The longest prefix of ``dotted`` that is a brainsim module, else None."""
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):
            if ".".join(parts[:k]) in self.modules:
                return ".".join(parts[:k])
        return None

    def defining_module(self, package, name, seen=()):
        """The module that ``from package import name`` depends on."""
        if f"{package}.{name}" in self.modules:
            return f"{package}.{name}"
        source = self.bound.get(package, {}).get(name)
        if source is None or source[0] not in self.modules or (package, name) in seen:
            return package
        if source[0] in self.bound:  # re-exported from a package: follow it down
            return self.defining_module(source[0], source[1], seen + ((package, name),))
        return source[0]

    def _add(self, module, target, names, line):
        if not target.startswith("brainsim"):
            self.external[module].setdefault(target.split(".")[0], line)
            return
        if names is None or names == ("*",) or target not in self.modules:
            found = {self._module_of(target)}
        else:
            found = {self.defining_module(target, n) for n in names}
        for dest in found - {None, module}:
            self.edges[module].setdefault(dest, line)

    def shadowed(self):
        """``(package, name)`` for each name a package ``__init__`` binds to
        something other than its submodule of that name (e.g. a function
        ``hmda`` over the module ``hmda``): ``import package.name as x``
        would then give the function, and only importlib reaches the module."""
        out = []
        for package, bound in self.bound.items():
            tree = ast.parse(self.sources[package])
            defined = {t.id for node in tree.body if isinstance(node, ast.Assign)
                       for t in node.targets if isinstance(t, ast.Name)}
            defined |= {node.name for node in tree.body
                        if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            for name in sorted(set(bound) | defined):
                source = bound.get(name)
                if f"{package}.{name}" in self.modules and (
                        name in defined or f"{source[0]}.{source[1]}" != f"{package}.{name}"):
                    out.append((package, name))
        return out

    def where(self, a, b):
        """``file:line`` of the import in ``a`` that makes the edge a -> b."""
        path = self.modules[a][0].relative_to(ROOT)
        return f"{path}:{self.edges[a][b]}"


def find_cycle(graph):
    """One cycle of the directed ``graph`` ``{node: iterable of successors}``
    as a list ``[n0, n1, ..., n0]``, or None when the graph is acyclic.

    Iterative depth-first search with three colours; successors that are
    not keys of ``graph`` are leaves.
    """
    state = {}  # node -> 1 on the current path, 2 finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def all_cycles(graph):
    """Every strongly connected component of more than one node (Tarjan),
    each as a sorted list: the cycles, grouped."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return ImportGraph()


# ---------------------------------------------------------------- the finder


def test_find_cycle_reports_a_planted_cycle():
    acyclic = {"a": ["b", "c"], "b": ["c"], "c": ["ext"], "d": ["a"]}
    assert find_cycle(acyclic) is None
    assert all_cycles(acyclic) == []
    planted = dict(acyclic, c=["ext", "d"])  # c -> d -> a -> b -> c
    cycle = find_cycle(planted)
    assert cycle[0] == cycle[-1] and len(cycle) >= 3
    assert all(b in planted[a] for a, b in zip(cycle, cycle[1:]))
    assert set(cycle) <= {"a", "b", "c", "d"}
    assert all_cycles(planted) == [["a", "b", "c", "d"]]
    assert find_cycle({"x": ["x"]}) == ["x", "x"]


def test_graph_rules_on_a_synthetic_package(tmp_path):
    """Relative imports, imports inside functions, re-exports through a
    package ``__init__`` and package_dir mapping give the edges the module
    docstring states, and a lazy import that closes a loop is a cycle."""
    (tmp_path / "setup.cfg").write_text(
        "[options]\npackage_dir =\n    brainsim = core\n    brainsim.kernels = kern\n")
    core, kern = tmp_path / "core", tmp_path / "kern"
    core.mkdir()
    kern.mkdir()
    (core / "__init__.py").write_text("from .net import Net\nfrom .io import save\n"
                                      "from .plan import plan\nfrom . import io as io\n")
    (core / "plan.py").write_text("def plan():\n    pass\n")
    (core / "registry.py").write_text("import importlib\nWHERE = {'a': 'brainsim.plan'}\n"
                                      "def get(k):\n    return importlib.import_module(WHERE[k])\n")
    (core / "net.py").write_text("from brainsim.kernels import csr\n"
                                 "def save(n):\n    from . import io\n")
    (core / "io.py").write_text("from brainsim import Net\nVALUE = 1\n")
    (kern / "__init__.py").write_text("")
    (kern / "csr.py").write_text("import numpy\n")
    g = ImportGraph(tmp_path)
    assert g.edges["brainsim"] == {"brainsim.net": 1, "brainsim.io": 2, "brainsim.plan": 3}
    assert g.edges["brainsim.registry"] == {"brainsim.plan": 4}  # the computed import
    assert g.shadowed() == [("brainsim", "plan")]  # the function plan over the module plan
    assert set(g.edges["brainsim.net"]) == {"brainsim.kernels.csr", "brainsim.io"}
    assert g.edges["brainsim.io"] == {"brainsim.net": 1}  # through __init__ to the sibling
    assert sorted(find_cycle(g.edges)[:-1]) == ["brainsim.io", "brainsim.net"]
    assert g.external["brainsim.kernels.csr"] == {"numpy": 1}


# ------------------------------------------------------------ brainsim itself


def test_graph_covers_every_subpackage(graph):
    for name in ("brainsim.network", "brainsim.kernels.csr", "brainsim.kernels.neurons.base",
                 "brainsim.generation.connectome", "brainsim.assimilation.enkf",
                 "brainsim.backends.cpu", "brainsim.analysis.rates"):
        assert name in graph.modules
    assert "brainsim.neurons" in graph.edges["brainsim.network"]


def test_every_package_folder_is_installed():
    # setup.cfg lists packages by hand; a folder with an __init__.py missing
    # from that list is absent from a non-editable install (and an editable
    # one hides the gap), so `import brainsim` fails only for users and CI.
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    packages = {name for name, (_, is_package) in module_files().items() if is_package}
    assert packages - listed == set(), "packages missing from setup.cfg [options] packages"
    assert listed - packages == set(), "setup.cfg lists packages that have no __init__.py"


def _describe_cycles(edges, where):
    """Text for each group of modules that import each other: one cycle of
    the group, then every import that stays inside the group."""
    lines = []
    for group in all_cycles(edges):
        inner = {m: [t for t in edges[m] if t in group] for m in group}
        lines.append("cycle: " + " -> ".join(find_cycle(inner)))
        lines += [f"    {a} -> {b}   ({where(a, b)})" for a in group for b in sorted(inner[a])]
    return "\n".join(lines)


def subpackage_of(module):
    """``brainsim.<sub>`` for a module inside a subpackage, else the module."""
    parts = module.split(".")
    return module if len(parts) < 3 else ".".join(parts[:2])


def test_no_import_cycle(graph):
    text = _describe_cycles(graph.edges, graph.where)
    if text:
        pytest.fail("import cycles among brainsim modules:\n" + text)


def test_no_import_cycle_between_subpackages(graph):
    edges, first = {}, {}
    for a, targets in graph.edges.items():
        for b in targets:
            pa, pb = subpackage_of(a), subpackage_of(b)
            if pa != pb:
                edges.setdefault(pa, set()).add(pb)
                first.setdefault((pa, pb), graph.where(a, b) + f" {a} -> {b}")
    text = _describe_cycles(edges, lambda a, b: first[(a, b)])
    if text:
        pytest.fail("subpackages that import each other:\n" + text)


def test_no_name_shadows_a_module(graph):
    bad = [f"{package}.{name} is a module and also a name {package}/__init__ binds to "
           f"something else" for package, name in graph.shadowed()]
    assert not bad, "\n".join(bad)


def test_kernels_import_no_upper_layer(graph):
    bad = []
    for module, targets in graph.edges.items():
        if not module.startswith("brainsim.kernels"):
            continue
        for lib, line in graph.external[module].items():
            if lib in KERNEL_FORBIDDEN:
                bad.append(f"{module} imports {lib} (line {line})")
        for target in targets:
            if target != "brainsim.kernels" and not target.startswith("brainsim.kernels.") \
                    and target not in KERNEL_ALLOWED:
                bad.append(f"{module} imports {target} ({graph.where(module, target)})")
    assert not bad, "brainsim.kernels reaches above its layer:\n" + "\n".join(bad)
