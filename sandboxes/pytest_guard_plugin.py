"""The outcome collector: a pytest plugin sent into the box by ``sandboxes.pytest_guard``.

Not imported by the project: the host sends this file's text with ``_CONFIG``
filled in (a fresh key, the record path, the tests to poison, the checkout,
the files the patch wrote), pytest loads it with ``-p`` before any conftest
or project code, and it deletes its own file at once. Stdlib and pytest only.

What it does inside the test process:
- tallies each test's outcome from pytest's reports under the JUnit id, and at
  the end writes them to the record path with an HMAC under the key; a test
  reported passing whose body it saw fail (outermost wrapper of the call) is
  tampering;
- makes the "poisoned" tests fail after their body ran (the host compares);
- enforces the per-test timeout (SIGALRM, a ``BaseException`` so
  ``except Exception`` cannot swallow it);
- records tampering it can see: a changed function or class in pytest, pluggy,
  unittest, the builtins or the modules it relies on; a hook implemented by code
  the patch wrote or that appeared during the run; a test whose code or binding
  changed after collection; a checkout ``.py`` file changed during the run; and,
  through an audit hook (which cannot be removed), writes of code or reports
  and swaps of a function's ``__code__`` made while patched code is on the stack.
"""

import hmac
import json
import os
import signal
import sys
import threading
import types
import unittest  # noqa: F401 - imported so its classes are in the snapshot before project code runs

import pytest
from _pytest.junitxml import mangle_test_address

_CONFIG: dict = {}  # replaced by the host when the file is sent

_KEY = bytes.fromhex(_CONFIG["key"])
_RECORD = _CONFIG["record"]
_LIMIT = float(_CONFIG["per_test_timeout_s"])
_POISON = frozenset(_CONFIG["poison"])
_REPO = _CONFIG["repo"].rstrip("/") + "/"
_CHANGED = frozenset(_CONFIG["changed"])  # absolute paths the patch wrote
_RUN_DIR = _CONFIG["run_dir"].rstrip("/") + "/"
_SCANNED = tuple(p.rstrip("/") + "/" for p in _CONFIG["scan"])  # checkout and streamed deps
_PROTECTED = _SCANNED + (_RUN_DIR,)
_CODE_SUFFIXES = (".py", ".pyc", ".pth", ".so", ".ini", ".cfg", ".toml", ".xml", ".json")
_OWN_FILE = __file__
try:
    os.unlink(__file__)
except OSError:
    pass

# Bound now, before any project code runs, so a later swap of these names changes nothing here.
_open, _write, _close, _fsync = os.open, os.write, os.close, os.fsync
_digest, _dumps, _getframe = hmac.new, json.dumps, sys._getframe
_OUT: dict = {}  # junit id -> passed|failed|error|skipped
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_TAMPER: list = []
_POISONED: set = set()
_BODY_FAILED: set = set()  # junit ids whose call phase raised, seen before any report exists
_TESTS: dict = {}  # nodeid -> (owner, name, function, code) at collection
_PM: list = []
_busy = threading.local()


def _tamper(why):
    if why not in _TAMPER and len(_TAMPER) < 20:
        _TAMPER.append(why)


def _signature(path):
    """Size, mtime and inode: any rewrite changes them, and putting an mtime back is an audited os.utime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _code_files():
    out = {}
    for top in _SCANNED:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    out[path] = _signature(path)
    return out


_FILES = _code_files()


def _watched():
    """Modules whose functions and classes decide or report outcomes."""
    for name, mod in list(sys.modules.items()):
        if isinstance(mod, types.ModuleType) and (
                name in ("pytest", "_pytest", "pluggy", "unittest", "builtins", "hmac", "hashlib", "json", "os")
                or name.startswith(("_pytest.", "pluggy.", "unittest.", "json."))):
            yield name, mod


def _snapshot():
    entries = []
    for name, mod in _watched():
        for attr, val in list(vars(mod).items()):
            if isinstance(val, (types.FunctionType, types.BuiltinFunctionType, type)):
                entries.append((name, mod, attr, val))
                if isinstance(val, type) and getattr(val, "__module__", None) == name and name != "builtins":
                    for cattr, cval in list(vars(val).items()):
                        if isinstance(cval, (types.FunctionType, classmethod, staticmethod, property)):
                            entries.append((f"{name}.{val.__qualname__}", val, cattr, cval))
    return entries


_SNAPSHOT = _snapshot()


def _live(snapshot):
    # Tests may monkeypatch os/builtins/json until their teardown: those are compared at the end only.
    return [e for e in snapshot if e[0].startswith(("_pytest", "pytest", "pluggy"))]


_LIVE = _live(_SNAPSHOT)


def _compare(entries):
    for owner_name, owner, attr, val in entries:
        if vars(owner).get(attr) is not val:
            _tamper(f"{owner_name}.{attr} was replaced during the run")


def _trusted_code(path):
    """Code from a file the patch did not write and that existed, unchanged, when the run began."""
    if path in _CHANGED or not path.startswith("/"):
        return False
    if path.startswith(_PROTECTED) or os.access(os.path.dirname(path), os.W_OK):
        return path in _FILES and _signature(path) == _FILES[path]
    return True  # the image's read-only files


def _origin(val):
    fn = val.fget if isinstance(val, property) else getattr(val, "__func__", val)
    code = getattr(fn, "__code__", None)
    return code.co_filename if code is not None else None


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """pytest patches its own classes while configuring (e.g. legacypath on Config): take those in,
    but only replacements by the image's own read-only code."""
    global _SNAPSHOT, _LIVE
    for owner_name, owner, attr, val in _SNAPSHOT:
        now = vars(owner).get(attr)
        if now is not val and not (now is not None and _origin(now) and _trusted_code(_origin(now))
                                   and not _origin(now).startswith(_PROTECTED)):
            _tamper(f"{owner_name}.{attr} was replaced before the tests ran")
    _SNAPSHOT = _snapshot()
    _LIVE = _live(_SNAPSHOT)


def _check_hooks(pm, names=None):
    for name in names or [n for n in dir(pm.hook) if n.startswith("pytest_")]:
        caller = getattr(pm.hook, name, None)
        for impl in (caller.get_hookimpls() if hasattr(caller, "get_hookimpls") else ()):
            fn = getattr(impl.function, "__func__", impl.function)
            code = getattr(fn, "__code__", None)
            if code is not None and code.co_filename == _OWN_FILE and fn in _OWN:
                continue
            if code is None or not _trusted_code(code.co_filename):
                _tamper(f"hook {name} is implemented by code the patch wrote or the run created "
                        f"({getattr(code, 'co_filename', type(fn).__name__)})")


def _untrusted_on_stack():
    f = _getframe(2)
    while f is not None:
        path = f.f_code.co_filename
        if path in _CHANGED or f.f_globals.get("__file__") in _CHANGED:
            return True
        if path.startswith(_PROTECTED) and path not in _FILES and path != _OWN_FILE:
            return True
        f = f.f_back
    return False


def _audit(event, args):
    if event not in _EVENTS or getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        _EVENTS[event](args)
    except Exception:  # noqa: BLE001 - an odd argument must never break the operation it audits
        pass
    finally:
        _busy.on = False


def _path(p):
    """An absolute str path, or None for an fd (``os.PathLike`` objects included: no way around it)."""
    if hasattr(p, "__fspath__"):
        p = os.fspath(p)
    return os.path.abspath(os.fsdecode(p)) if isinstance(p, (str, bytes)) else None


def _on_open(args):
    path, mode, flags = _path(args[0]), args[1], args[2]
    if path is None:
        return
    writes = (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND) or \
        any(c in (mode or "") for c in "wax+")
    if path.startswith("/proc/") and path.endswith("/mem") and writes:
        _tamper(f"the run opened {path} for writing")
    elif writes:
        _on_write((path,))


def _on_write(args):
    for path in map(_path, args):
        if path is None or not path.startswith(_PROTECTED):
            continue
        if (path.startswith(_RUN_DIR) or path.endswith(_CODE_SUFFIXES)) and _untrusted_on_stack():
            _tamper(f"patched code wrote {path} during the run")


def _on_setattr(args):
    obj, name = args[0], args[1]
    if name in ("__code__", "__defaults__", "__kwdefaults__") and _untrusted_on_stack():
        _tamper(f"patched code replaced {getattr(obj, '__qualname__', obj)!s}.{name}")


_EVENTS = {"open": _on_open, "os.remove": _on_write, "os.rename": _on_write, "os.rmdir": _on_write,
           "os.chmod": _on_write, "os.utime": _on_write, "os.truncate": _on_write, "os.symlink": _on_write,
           "os.link": _on_write, "os.mkdir": _on_write, "object.__setattr__": _on_setattr,
           "object.__delattr__": _on_setattr}
sys.addaudithook(_audit)


def _test_id(nodeid):
    names = mangle_test_address(nodeid)
    cls = ".".join(names[:-1])
    return f"{cls}::{names[-1]}" if cls else names[-1]


class _Poisoned(AssertionError):
    pass


def _poison(item):
    run = item.runtest

    def runtest():
        run()
        _POISONED.add(_test_id(item.nodeid))
        raise _Poisoned("made to fail by the verifier after its body ran")

    item.runtest = runtest


def _binding(item):
    owner = getattr(item, "cls", None)
    owner = owner if owner is not None else getattr(item, "module", None)
    name = getattr(item, "originalname", None) or item.name
    fn = getattr(owner, name, None) if owner is not None else None
    fn = getattr(fn, "__func__", fn)
    return owner, name, fn, getattr(fn, "__code__", None)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    _PM.append(config.pluginmanager)
    _compare(_LIVE)
    _check_hooks(config.pluginmanager)
    for item in items:
        owner, name, fn, code = _TESTS[item.nodeid] = _binding(item)
        if code is not None and not _trusted_code(code.co_filename):
            _tamper(f"test {item.nodeid} runs code the patch wrote ({code.co_filename})")
        if _test_id(item.nodeid) in _POISON:
            _poison(item)


def _alarm(signum, frame):
    raise _Timeout(f"test took longer than {_LIMIT} s (per-test timeout)")


class _Timeout(BaseException):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, _LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item):
    """Outermost around the test body: whether it failed, seen here before any report is made of it
    (unittest items keep their failures in ``_excinfo`` instead of raising)."""
    outcome = yield
    if getattr(outcome, "excinfo", None) is not None or getattr(item, "_excinfo", None):
        _BODY_FAILED.add(_test_id(item.nodeid))


_REPORT_HOOKS = ["pytest_runtest_makereport", "pytest_runtest_logreport", "pytest_report_teststatus",
                 "pytest_runtest_call", "pytest_pyfunc_call", "pytest_runtest_protocol"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    tid = _test_id(report.nodeid)
    if report.failed:
        status = "failed" if report.when == "call" else "error"
    elif report.skipped:
        status = "skipped"
    elif report.when == "call":
        status = "passed"
    else:
        status = None
    if status == "passed" and tid in _BODY_FAILED:
        _tamper(f"test {tid} was reported passing although its body failed")
    if status is not None and _RANK[status] >= _RANK.get(_OUT.get(tid, "passed"), 0):
        _OUT[tid] = status
    _compare(_LIVE)
    if _PM:
        _check_hooks(_PM[0], _REPORT_HOOKS)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _compare(_SNAPSHOT)
    _check_hooks(session.config.pluginmanager)
    for nodeid, (owner, name, fn, code) in _TESTS.items():
        now = getattr(owner, name, None) if owner is not None else None
        if getattr(now, "__func__", now) is not fn or getattr(fn, "__code__", None) is not code:
            _tamper(f"test {nodeid} was replaced after collection")
    for path, signature in _FILES.items():
        if _signature(path) != signature:
            _tamper(f"{path} changed during the run")
    body = _dumps({"outcomes": _OUT, "tamper": _TAMPER, "poisoned": sorted(_POISONED),
                   "exitstatus": int(exitstatus)}, sort_keys=True).encode()
    mac = _digest(_KEY, body, "sha256").hexdigest().encode()
    fd = _open(_RECORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write(fd, mac + b"\n" + body)
        _fsync(fd)
    finally:
        _close(fd)


_OWN = {pytest_configure, pytest_collection_modifyitems, pytest_runtest_protocol, pytest_runtest_call,
        pytest_runtest_logreport, pytest_sessionfinish}
