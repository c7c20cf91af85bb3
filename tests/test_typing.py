"""The package is typed (py.typed): type checkers see every public name with its annotations.

bridge exports its names lazily (``__getattr__``), which type checkers cannot follow, so
``bridge/__init__.py`` imports each one under ``TYPE_CHECKING``; these tests keep that list
complete and the public signatures annotated. They read the source, so they need no type checker.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import bridge

PACKAGE = pathlib.Path(bridge.__file__).parent
INIT = ast.parse((PACKAGE / "__init__.py").read_text())


def _type_checking_imports() -> dict[str, str]:
    """{name: module} imported under ``if TYPE_CHECKING:`` in bridge/__init__.py."""
    (block,) = [n for n in INIT.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"]
    imported = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.unparse(node)
        for alias in node.names:
            imported[alias.asname or alias.name] = node.module
    return imported


def test_py_typed_marker_is_in_the_package():
    assert (PACKAGE / "py.typed").is_file()


def test_every_public_name_is_visible_to_type_checkers():
    imported = _type_checking_imports()
    for name, module in bridge._LAZY_NAMES.items():
        assert imported.get(name) == module, f"add `from {module} import {name}` under TYPE_CHECKING in bridge/__init__.py"
    for module in bridge._LAZY_MODULES:
        assert imported.get(module) == "bridge", f"add `from bridge import {module}` under TYPE_CHECKING"


def _public_modules() -> list[str]:
    modules = {module for module in bridge._LAZY_NAMES.values()}
    modules |= {f"bridge.{module}" for module in bridge._LAZY_MODULES}
    return sorted(modules)


def _source(module: str) -> pathlib.Path:
    relative = pathlib.Path(*module.split(".")[1:])
    path = PACKAGE / relative.with_suffix(".py")
    return path if path.exists() else PACKAGE / relative / "__init__.py"


def _unannotated(tree: ast.Module) -> list[str]:
    problems = []

    def check(function: ast.FunctionDef, owner: str = "") -> None:
        if function.name.startswith("_") and function.name not in ("__init__", "__new__", "__call__"):
            return
        arguments = function.args
        named = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
        missing = [a.arg for a in named if a.annotation is None and a.arg not in ("self", "cls")]
        missing += [f"*{a.arg}" for a in (arguments.vararg, arguments.kwarg) if a is not None and a.annotation is None]
        if function.returns is None and function.name != "__init__":
            missing.append("return")
        if missing:
            problems.append(f"{owner}{function.name}(line {function.lineno}): {', '.join(missing)}")

    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            check(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for member in node.body:
                if isinstance(member, ast.FunctionDef):
                    check(member, f"{node.name}.")
    return problems


@pytest.mark.parametrize("module", _public_modules())
def test_public_signatures_are_annotated(module):
    assert _unannotated(ast.parse(_source(module).read_text())) == []
