"""Whole classes in the firmware: every attribute a method of a class sets is declared in its
``__init__`` (on MicroPython an attribute added later grows the object's table at a moment
the heap may have no piece for it; and a reader finds the whole object in one place)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness.paths import FIRMWARE


def undeclared(root: Path) -> list[str]:
    """``path class.attr (method)`` for each attribute set outside ``__init__`` only."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for cls in [
            n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)
        ]:
            declared: set[str] = set()
            later: dict[str, str] = {}
            for fn in cls.body:
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(fn):
                    if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Store):
                        continue
                    if isinstance(node.value, ast.Name) and node.value.id == "self":
                        if fn.name == "__init__":
                            declared.add(node.attr)
                        else:
                            later.setdefault(node.attr, fn.name)
            rel = path.relative_to(root)
            found += [f"{rel} {cls.name}.{a} ({m})" for a, m in later.items() if a not in declared]
    return found


def test_every_firmware_class_declares_its_attributes_in_init() -> None:
    assert undeclared(FIRMWARE) == []


def test_the_check_finds_an_attribute_set_later(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text(
        "class A:\n    def __init__(self):\n        self.a = 1\n\n"
        "    def go(self):\n        self.a = 2\n        self.b, self.c = 3, 4\n"
    )
    assert undeclared(tmp_path) == ["x.py A.b (go)", "x.py A.c (go)"]
