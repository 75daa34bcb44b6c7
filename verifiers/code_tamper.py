"""Static refusal of repo-level patches that reach for the test run instead of fixing code.

A fix changes what the project's functions compute. It has no need to import
the test framework, to look things up by names built at run time, to read the
interpreter's frames or object graph, to rewrite other modules' attributes, or
to end, signal or spawn processes. Each of those is the *means* of every known
way for code under test to forge a pytest result in-process (rewrite report
objects, register hooks or plugins, swap ``sys.modules`` entries, replace a
test's code, exit with a forged report), so a patch that adds one is refused
before any test runs, with the reason naming the file, the line and the rule.

Only what the patch *adds* counts: every finding is keyed by (rule, the
unparsed node) and the findings of the pristine file are subtracted, so a
project that uses ``importlib`` or ``sys._getframe`` itself can still be fixed
in the same file, and a gold fix (which restores pristine code) never trips it.

This is one of two layers; the other (``sandboxes.pytest_guard``) watches the
test run itself and does not depend on this list being complete.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass

# Modules whose mere import by project code serves the harness, reflection, or process control.
_MODULES = {
    "pytest": "imports the test framework", "_pytest": "imports the test framework",
    "pluggy": "imports the test framework", "py": "imports the test framework",
    "unittest": "imports the test framework", "xdist": "imports the test framework",
    "gc": "reads the interpreter's object graph", "ctypes": "reads or writes interpreter memory",
    "_ctypes": "reads or writes interpreter memory", "importlib": "imports by a name built at run time",
    "imp": "imports by a name built at run time", "runpy": "runs code by a name built at run time",
    "zipimport": "imports by a name built at run time", "pkgutil": "imports by a name built at run time",
    "builtins": "rewrites the builtins", "__builtin__": "rewrites the builtins",
    "atexit": "hooks interpreter exit", "signal": "plays with signals", "faulthandler": "plays with signals",
    "code": "runs code from strings", "codeop": "runs code from strings", "marshal": "loads code objects",
    "pickle": "calls objects named in data", "_pickle": "calls objects named in data",
    "copyreg": "calls objects named in data", "dill": "calls objects named in data",
    "cloudpickle": "calls objects named in data", "shelve": "calls objects named in data",
    "subprocess": "spawns processes", "multiprocessing": "spawns processes", "pty": "spawns processes",
    "sitecustomize": "hooks interpreter start", "usercustomize": "hooks interpreter start",
    "posix": "ends, signals or spawns processes", "_signal": "plays with signals",
    "_thread": "runs code behind the test framework's back",
}
_CALLS = {"__import__": "imports by a name built at run time", "exec": "runs code from strings",
          "eval": "runs code from strings", "compile": "compiles code from strings",
          "globals": "reads module globals as a dict", "breakpoint": "enters a debugger"}
# os.<name>: process control and exit paths that skip the test framework's own bookkeeping.
_OS_CALLS = re.compile(r"_exit|abort|kill|killpg|fork|forkpty|system|popen|exec\w*|spawn\w*|posix_spawn\w*"
                       r"|setsid|setpgid|setpgrp|register_at_fork")
_SYS_ATTRS = {"modules": "rewrites or reads sys.modules", "_getframe": "reads the caller's frames",
              "_current_frames": "reads other threads' frames", "settrace": "traces the test run",
              "setprofile": "traces the test run", "meta_path": "hooks the import system",
              "path_hooks": "hooks the import system", "path_importer_cache": "hooks the import system",
              "path": "changes the import path", "addaudithook": "hooks interpreter events",
              "argv": "reads the test run's command line", "excepthook": "hooks error reporting"}
# Attribute names (or getattr strings) that lead from any object to frames, code or globals.
_ATTRS = {"f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
          "gi_frame", "cr_frame", "ag_frame", "__globals__", "__builtins__", "__subclasses__", "__loader__",
          "__import__"}
# Reading these is ordinary introspection (signatures, wrappers); writing them swaps a function's body.
_STORE_ATTRS = {"__code__", "__defaults__", "__kwdefaults__"}
_INSPECT = {"stack", "currentframe", "getouterframes", "getinnerframes", "trace", "getframeinfo",
            "getmodule", "getmembers", "getclosurevars"}
# Words in string literals that only code aimed at the harness needs (as before: names, paths, files).
_STRINGS = re.compile(r"pytest|junit|pluggy|conftest|sitecustomize|usercustomize|\.pth\b|/proc/|/tmp/"
                      r"|__pycache__|__builtins__|__import__|__globals__|__subclasses__|\bTestReport\b|\bCallInfo\b"
                      r"|PluginManager|pluginmanager|hookimpl|hookwrapper|call_and_report|from_item_and_call"
                      r"|runtestprotocol|\bLogXML\b|\b_getframe\b|\bget_(?:objects|referrers|referents)\b"
                      r"|\bimport_module\b|\bf_back\b|\btb_frame\b|\bmeta_path\b|\bset(?:trace|profile)\b|\b_exit\b")


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int
    snippet: str


def _unparse(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - a node ast cannot print still counts, by its type
        text = type(node).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _imported_modules(tree: ast.AST) -> dict[str, str]:
    """{local name: module} for every ``import m`` / ``import m as n`` / ``from p import m`` in the file."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _attr_rule(base: str | None, attr: str, store: bool, foreign: bool) -> str | None:
    """The rule an access ``<base>.<attr>`` breaks (``base``: the module it names, if any)."""
    if attr in _ATTRS or (store and attr in _STORE_ATTRS):
        return "reaches frames, code or globals by attribute name"
    if base == "sys" and attr in _SYS_ATTRS:
        return _SYS_ATTRS[attr]
    if base == "os" and _OS_CALLS.fullmatch(attr):
        return "ends, signals or spawns processes"
    if base == "inspect" and attr in _INSPECT:
        return "reads the caller's frames"
    if attr == "__dict__" and foreign:
        return f"reads or rewrites module {base} as a dict"
    return None


def findings(source: str, own_packages: frozenset[str] = frozenset()) -> list[Finding]:
    """Every use of a harness-reaching means in ``source`` (a SyntaxError propagates)."""
    tree = ast.parse(source)
    modules = _imported_modules(tree)
    shadowed = {n for n, m in modules.items() if n in _CALLS}  # e.g. ``from re import compile``
    out: list[Finding] = []
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}

    def add(rule: str, node: ast.AST) -> None:
        out.append(Finding(rule, getattr(node, "lineno", 0), _unparse(node)))

    def module_of(node: ast.AST) -> str | None:
        return modules.get(node.id) if isinstance(node, ast.Name) else None

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names if node.module]
            for name in names:
                top = name.split(".")[0]
                if top in _MODULES and not getattr(node, "level", 0):
                    add(_MODULES[top], node)
                    break
                if name in ("os._exit", "os.kill", "os.fork", "os.system", "os.popen", "inspect.stack",
                            "inspect.currentframe", "sys.modules", "sys._getframe", "sys.settrace"):
                    add("imports a process-control or reflection function", node)
                    break
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in _CALLS and fn.id not in shadowed:
                add(_CALLS[fn.id], node)
            elif isinstance(fn, ast.Name) and fn.id in ("getattr", "setattr", "delattr", "hasattr", "vars") \
                    and node.args:
                target = module_of(node.args[0])
                foreign = bool(target) and target.split(".")[0] not in own_packages
                name = node.args[1] if len(node.args) > 1 else None
                store = fn.id in ("setattr", "delattr")
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    rule = _attr_rule(target, name.value, store, foreign)
                    if rule or (store and foreign):
                        add(rule or f"monkeypatches module {target}", node)
                elif foreign:
                    add(f"looks up or rewrites attributes of module {target} by a name built at run time", node)
        elif isinstance(node, ast.Attribute):
            base = module_of(node.value)
            rule = _attr_rule(base, node.attr, not isinstance(node.ctx, ast.Load),
                              bool(base) and base.split(".")[0] not in own_packages)
            if rule:
                add(rule, node)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                base = module_of(t.value) if isinstance(t, ast.Attribute) else None
                if base and base.split(".")[0] not in own_packages:
                    add(f"monkeypatches module {base}", t)
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__", "__spec__"):
            add("reaches the builtins or import machinery", node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docstrings:
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            hits = sorted(set(_STRINGS.findall(text)))
            if hits:
                out.append(Finding(f"names the test harness ({', '.join(hits[:3])})", node.lineno, _unparse(node)))
    return out


def own_packages(source_dirs: tuple[str, ...]) -> frozenset[str]:
    """Top-level package names of a project's source dirs (``src/cachetools`` -> ``cachetools``)."""
    return frozenset(d.rstrip("/").split("/")[-1].removesuffix(".py") for d in source_dirs if d)


def refusal(final: dict[str, str | None], pristine: dict[str, str],
            own: frozenset[str] = frozenset()) -> str | None:
    """Why the patch is refused (None: nothing new reaches for the harness).

    ``final``: {path: content after the patch, None if deleted} for the files it touches.
    """
    for path in sorted(final):
        content = final[path]
        if content is None or not path.endswith(".py"):
            continue
        try:
            new = findings(content, own)
        except SyntaxError:
            continue  # cannot import either; the tests will say so
        try:
            old = Counter((f.rule, f.snippet) for f in findings(pristine.get(path, ""), own))
        except SyntaxError:
            old = Counter()
        for f in new:
            if old[(f.rule, f.snippet)] > 0:
                old[(f.rule, f.snippet)] -= 1
                continue
            return (f"patch refused: {path}:{f.line} {f.rule} (`{f.snippet}`); a fix does not need to reach the "
                    "test harness or the interpreter's internals")
    return None
