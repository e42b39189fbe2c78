"""One error tree: every exception class Jarvis defines lives in jarvis/errors.py, under JarvisError,
and its docstring's tree names each one."""
import ast
import inspect
import re
from pathlib import Path

from jarvis import errors

PACKAGE = Path(__file__).resolve().parent.parent / "jarvis"


def test_no_exception_class_outside_errors_module():
    strays = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).split(".")[-1] for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    strays.append(f"{path.relative_to(PACKAGE.parent)}: class {node.name}({', '.join(bases)})")
    assert not strays, "exception classes belong in jarvis/errors.py:\n" + "\n".join(strays)


def test_every_error_is_in_the_tree_and_documented():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) > 10
    for cls in classes:
        assert issubclass(cls, errors.JarvisError), cls
        assert re.search(rf"(^|[ ─]){cls.__name__} ", errors.__doc__, re.M), f"{cls.__name__} missing from the tree"


def test_callers_branch_on_types():
    assert issubclass(errors.MissingTokenError, errors.RemoteAccessError)
    assert issubclass(errors.RateLimitedError, errors.TransientRemoteError)
    assert errors.ModelLoadingError("busy", 3.0).wait_hint == 3.0
    assert issubclass(errors.ExecutionError, errors.TaskError) and issubclass(errors.RemoteError, errors.TaskError)
