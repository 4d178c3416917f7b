"""Static checks on lorac's own code: nothing that runs a shell, evaluates text or loads YAML
unsafely."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lorac"


def _calls(tree: ast.AST):  # noqa: ANN202
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def test_no_shell_eval_exec_or_unsafe_yaml() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for call in _calls(tree):
            name = _name(call.func)
            where = f"{path.relative_to(PACKAGE.parent)}:{call.lineno}"
            if name in ("eval", "exec", "os.system", "os.popen", "pickle.load",
                        "pickle.loads", "marshal.loads"):
                problems.append(f"{where}: {name}()")
            for kw in call.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                              and kw.value.value is False):
                    problems.append(f"{where}: shell=…")
            if name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
                problems.append(f"{where}: {name}() (use yaml.safe_load)")
    assert not problems, "\n".join(problems)
