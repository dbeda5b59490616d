"""The folder tree is the architecture: rules that keep it so (docs/ARCHITECTURE.md).

* every module says what it exports (``__all__``);
* no module imports a floor above its own (lower floors never know upper ones);
* no private name (``_x``) is used outside the module that defines it;
* imports sit at the top of a file; only heavy or optional packages are imported
  lazily, and the line says why (a comment with "lazy");
* a module over 500 lines says at its top why it is long;
* a package's docstring says what the package is for; one that also lists its
  files lists all of them and nothing else (docs/ARCHITECTURE.md is the map).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "labkit"
MODULES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)

# floor of each top-level part of the package: a module may import its own floor and those below
FLOORS = {"_errors": 0, "_renamed": 0, "owners": 0, "programs": 1, "events": 1, "attach": 2, "net": 3, "hooks": 3, "lab": 4,
          "views": 5, "exercises": 6, "commands": 7, "hub": 7, "__init__": 8, "__main__": 8}
LAZY_OK = {"bcc", "pyroute2", "ipywidgets", "matplotlib", "IPython", "nbclient", "nbconvert", "nbformat",
           "jupyter_client", "traitlets", "jinja2"}
MAX_LINES = 500
LONG_REASON = "Why this file is long:"


def dotted(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # labkit itself
        return FLOORS["__init__"]
    return FLOORS[parts[1]]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def labkit_imports(tree: ast.Module, module: str, is_pkg: bool):
    """(node, imported module, names) for every import of a labkit module, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base == "labkit" or base.startswith("labkit."):
                yield node, base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("labkit"):
                    yield node, a.name, []


def in_type_checking(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, sub.end_lineno + 1))
    return lines


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_module_declares_all(path):
    if path.name == "__main__.py":
        return
    names = {t.id for n in parse(path).body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "__all__" in names, f"{path.relative_to(PKG)} has no __all__"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_upward_imports(path):
    module = dotted(path)
    tree = parse(path)
    typing_only = in_type_checking(tree)
    mine = floor_of(module)
    for node, target, _ in labkit_imports(tree, module, path.name == "__init__.py"):
        if node.lineno in typing_only:
            continue
        if target == "labkit" and module != "labkit":
            # `from labkit import x` where x is a subpackage or module: judge the module
            continue
        assert floor_of(target) <= mine, \
            f"{module} (floor {mine}) imports {target} (floor {floor_of(target)}) at line {node.lineno}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_private_names_across_modules(path):
    module = dotted(path)
    tree = parse(path)
    aliases = {}
    for node, target, names in labkit_imports(tree, module, path.name == "__init__.py"):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                imported = f"{target}.{a.name}"
                assert not a.name.startswith("_") or a.name in ("__version__",), \
                    f"{module} imports private {imported} (line {node.lineno}): make it public or move the caller"
                if (PKG.parent / imported.replace(".", "/")).with_suffix(".py").exists() or \
                        (PKG.parent / imported.replace(".", "/")).is_dir():
                    aliases[a.asname or a.name] = imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            assert not node.attr.startswith("_"), \
                f"{module} uses private {aliases[node.value.id]}.{node.attr} (line {node.lineno})"


def said_lazy(src: list[str], lineno: int) -> bool:
    """A comment with 'lazy' on the import's line, or on the block of imports and comments just above it."""
    i = lineno - 1
    while i >= 0:
        line = src[i].strip()
        if "lazy" in line:
            return True
        if i != lineno - 1 and not line.startswith(("import ", "from ", "#")):
            return False
        i -= 1
    return False


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_at_the_top_unless_lazy_for_a_reason(path):
    src = path.read_text().splitlines()
    tree = parse(path)
    top = {id(n) for n in tree.body}
    typing_only = in_type_checking(tree)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top or node.lineno in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "__future__":
            continue
        roots = [(node.module or "").split(".")[0]] if isinstance(node, ast.ImportFrom) else \
            [a.name.split(".")[0] for a in node.names]
        said = said_lazy(src, node.lineno)
        where = f"{path.relative_to(PKG)}:{node.lineno}"
        ok_module = all(r in LAZY_OK for r in roots) or (path.name == "cli.py" and roots == ["labkit"])
        assert ok_module, f"{where}: import of {roots} inside a function; move it to the top of the file"
        assert said, f"{where}: a lazy import says why on its line or the line above (a comment with 'lazy')"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_long_modules_say_why(path):
    text = path.read_text()
    n = text.count("\n")
    if n > MAX_LINES:
        doc = ast.get_docstring(parse(path)) or ""
        assert LONG_REASON in doc, f"{path.relative_to(PKG)} has {n} lines: split it, or its docstring says " \
                                   f"'{LONG_REASON} ...'"


def documented_tree() -> set[str]:
    """Paths named in docs/ARCHITECTURE.md's tree (files, and folders ending in /)."""
    doc = (PKG.parent / "docs" / "ARCHITECTURE.md").read_text()
    block = doc.split("<!-- tree:start -->", 1)[1].split("<!-- tree:end -->", 1)[0]
    paths, stack = set(), []
    for line in block.splitlines():
        if not line.strip() or not line.startswith("    "):
            continue
        body = line[4:]
        indent = (len(body) - len(body.lstrip())) // 2
        name = body.strip().split()[0]
        if name.startswith("(") or not (name.endswith("/") or "." in name):
            continue  # a continuation line of a description
        stack = stack[:indent] + [name]
        paths.add("".join(stack))
    return paths


def test_architecture_doc_names_every_module_and_nothing_else():
    documented = documented_tree()
    on_disk = {str(p.relative_to(PKG.parent)) for p in MODULES}
    folders = {str(p.parent.relative_to(PKG.parent)) + "/" for p in MODULES}
    # a folder documented as a whole ("report/") covers the files inside it
    whole = {d for d in documented if d.endswith("/") and not any(x != d and x.startswith(d) for x in documented)}
    covered = {f for f in on_disk if any(f.startswith(d) for d in whole)}
    missing = sorted(on_disk - documented - covered - {"labkit/__init__.py"} - {
        f for f in on_disk if f.endswith("/__init__.py") and f.rsplit("/", 1)[0] + "/" in documented})
    assert not missing, f"docs/ARCHITECTURE.md's tree does not name: {missing}"
    stale = sorted(d for d in documented if d not in on_disk and d not in folders)
    assert not stale, f"docs/ARCHITECTURE.md's tree names what does not exist: {stale}"


PACKAGES = sorted(p.parent for p in MODULES if p.name == "__init__.py")
#: a line of a file list in a docstring: ``name.py`` or ``name/`` first, then a description
LIST_LINE = re.compile(r"^\s*(?P<name>\w+\.py|\w+/)\s+\S")


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: str(p.relative_to(PKG.parent)))
def test_a_package_docstring_that_lists_its_files_lists_exactly_them(pkg):
    doc = ast.get_docstring(parse(pkg / "__init__.py")) or ""
    listed = {m["name"].removesuffix(".py").rstrip("/") for line in doc.splitlines() if (m := LIST_LINE.match(line))}
    if not listed:
        return  # it says what the package is for; the files are docs/ARCHITECTURE.md's to name
    there = ({p.stem for p in pkg.glob("*.py") if p.name != "__init__.py"}
             | {d.name for d in pkg.iterdir() if (d / "__init__.py").exists()})
    assert listed == there, (f"{pkg.relative_to(PKG.parent)}/__init__.py lists {sorted(listed - there)} that are not "
                             f"there and leaves out {sorted(there - listed)}: fix the list, or say what the package "
                             "is for without one")


def test_the_docstring_check_reads_a_list():
    assert LIST_LINE.match("    cli.py       dispatch") and LIST_LINE.match("xdp/          XDP")
    assert not LIST_LINE.match("The ``labkit`` command: one module per subcommand")
