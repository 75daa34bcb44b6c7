"""A pinned Python project checked out in a sandbox: where it comes from, what may change, how it is staged.

Generic (no domain knows itself here): a project is a ``ProjectSpec`` (name,
version, sdist sha256, source dirs, PYTHONPATH entries, test paths, pytest
args, test-deps pins). The pristine files are read from the pinned sdist in
the host cache (``.cache/code/sdists``, or ``$TRAJFORGE_CODE_CACHE/sdists``)
and checked against the sha256 every time they are loaded.

Test dependencies live in a project image under ``/opt/trajforge/deps/KEY``
(read-only, so code in the box cannot tamper with them). When a box of
another image is handed over (e.g. the base image), the same files are
streamed from ``.cache/code/deps/KEY`` into ``/work/.tf-deps/KEY``.

The project's own source is deliberately *not* baked into an image: a
pristine copy readable inside the box would hand out any injected bug's fix
(``diff -r``). A checkout travels into the box as a tar stream instead.

``change_allowed`` is the policy for patches to a checkout: only Python files
inside the project's source dirs that are not tests or test config.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxes.base import Sandbox
from sandboxes.tree_diff import apply_patch, parse_diff

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_DEPS_ROOT = "/opt/trajforge/deps"
TEST_CONFIG_NAMES = {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "setup.py",
                     ".coveragerc", "noxfile.py", "sitecustomize.py", "usercustomize.py"}
TEST_DIR_NAMES = {"test", "tests", "testing"}
MAX_SDIST_MEMBER_BYTES = 2_000_000
# Where every checkout of a project lives in its box, relative to the workdir (``/work/repo``):
# the baseline, bug validation, the rollout's tools and the verifier all use it, because a suite may
# depend on its absolute path (boltons' ``test_iter_find_files`` ``lstrip``s it), and a test that
# passes at one path and fails at another would make a sound instance fail its own gold fix.
CHECKOUT_DIR = "repo"


class ProjectUnavailable(RuntimeError):
    """The project's sdist or deps are not in the cache, or do not match their pins."""


def code_cache_dir() -> Path:
    return Path(os.environ.get("TRAJFORGE_CODE_CACHE") or REPO_ROOT / ".cache" / "code")


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    version: str
    sha256: str
    source: tuple[str, ...]
    python_path: tuple[str, ...] = (".",)
    test_paths: tuple[str, ...] = ("tests",)
    pytest_args: tuple[str, ...] = ()
    test_deps: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProjectSpec":
        tup = lambda key, default: tuple(str(x) for x in (d.get(key) or default))  # noqa: E731
        return cls(name=str(d["name"]), version=str(d["version"]), sha256=str(d["sha256"]).lower(),
                   source=tup("source", ()), python_path=tup("python_path", (".",)),
                   test_paths=tup("test_paths", ("tests",)), pytest_args=tup("pytest_args", ()),
                   test_deps=tup("test_deps", ()))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "source": list(self.source),
                "python_path": list(self.python_path), "test_paths": list(self.test_paths),
                "pytest_args": list(self.pytest_args), "test_deps": list(self.test_deps)}

    @property
    def sdist_name(self) -> str:
        return f"{self.name}-{self.version}.tar.gz"

    @property
    def deps_key(self) -> str:
        """Content key of the test-deps set ('' when the project needs only pytest)."""
        if not self.test_deps:
            return ""
        digest = hashlib.sha256("\n".join(sorted(self.test_deps)).encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"


def is_test_path(path: str) -> bool:
    parts = path.split("/")
    base = parts[-1]
    return (any(p in TEST_DIR_NAMES for p in parts[:-1]) or base.startswith("test_")
            or base.endswith("_test.py") or base in TEST_CONFIG_NAMES)


def in_source(spec: ProjectSpec, path: str) -> bool:
    return any(path == s or path.startswith(s.rstrip("/") + "/") for s in spec.source)


def change_allowed(spec: ProjectSpec, path: str) -> bool:
    """May an agent's patch touch ``path``? Source .py files only; never tests or config."""
    norm = posixpath.normpath(path)
    if norm != path or norm.startswith(("/", "../")) or not norm.endswith(".py"):
        return False
    return in_source(spec, norm) and not is_test_path(norm)


def _sdist_path(spec: ProjectSpec) -> Path:
    return code_cache_dir() / "sdists" / spec.sdist_name


@functools.lru_cache(maxsize=32)
def _pristine(name: str, version: str, sha256: str, path: str) -> tuple[tuple[str, bytes], ...]:
    data = Path(path).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise ProjectUnavailable(f"{path}: sha256 {got} does not match the pinned {sha256}")
    files = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.size > MAX_SDIST_MEMBER_BYTES:
                continue
            rel = member.name.split("/", 1)[1] if "/" in member.name else ""
            rel = posixpath.normpath(rel)
            if not rel or rel.startswith(("/", "..")):
                continue
            files.append((rel, tar.extractfile(member).read()))
    return tuple(sorted(files))


def pristine_files(spec: ProjectSpec) -> dict[str, bytes]:
    """The sdist's files (top folder stripped), sha256-checked."""
    path = _sdist_path(spec)
    if not path.is_file():
        raise ProjectUnavailable(f"{path} missing: run `python -m synthesizers.domains.code.projects fetch`")
    return dict(_pristine(spec.name, spec.version, spec.sha256, str(path)))


def deps_dir_host(spec: ProjectSpec) -> Path:
    return code_cache_dir() / "deps" / spec.deps_key


def _deps_files(spec: ProjectSpec) -> dict[str, bytes]:
    root = deps_dir_host(spec)
    if not (root / ".complete").is_file():
        raise ProjectUnavailable(f"test deps of {spec.name} not installed at {root}: run "
                                 "`python -m synthesizers.domains.code.images build`")
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def stage_deps(box: Sandbox, spec: ProjectSpec) -> str | None:
    """The absolute deps dir inside the box (None: no deps), streaming them in if the image lacks them."""
    key = spec.deps_key
    if not key:
        return None
    in_image = f"{IMAGE_DEPS_ROOT}/{key}"
    if box.exec(["test", "-f", f"{in_image}/.complete"], timeout_s=10).exit_code == 0:
        return in_image
    target = posixpath.join(box.workdir, ".tf-deps", key)
    box.put_files({f"{target}/{rel}": data for rel, data in _deps_files(spec).items()})
    return target


def stage_files(box: Sandbox, files: dict[str, bytes | str], dest: str) -> str:
    """Write a checkout under ``dest`` (relative to the box's workdir); returns its absolute path."""
    root = posixpath.join(box.workdir, dest)
    box.exec(["rm", "-rf", root], timeout_s=30)  # never merge into a stale tree
    box.put_files({f"{root}/{rel}": data for rel, data in files.items()})
    return root


def python_path(spec: ProjectSpec, repo_dir: str, deps_dir: str | None) -> list[str]:
    entries = [posixpath.normpath(posixpath.join(repo_dir, p)) for p in spec.python_path]
    return entries + ([deps_dir] if deps_dir else [])


def text_files(files: dict[str, bytes]) -> dict[str, str]:
    """The UTF-8 files of a checkout, decoded; binaries left out."""
    out = {}
    for path, data in files.items():
        try:
            out[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out


def patched_checkout(spec: ProjectSpec, patch: str) -> tuple[dict[str, bytes], dict[str, str]]:
    """(all pristine files, text files with ``patch`` applied strictly); PatchError if it does not apply."""
    raw = pristine_files(spec)
    text = text_files(raw)
    for path, content in apply_patch(text, parse_diff(patch)).items():
        if content is None:
            text.pop(path, None)
        else:
            text[path] = content
    return raw, text
