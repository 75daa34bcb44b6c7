"""The seed projects: a YAML list of real pure-Python projects, pinned by version and sha256.

``fetch`` runs ``pip download --no-binary :all: --no-deps NAME==VERSION`` for
each project not yet in ``.cache/code/sdists`` and refuses any file whose
sha256 differs from the pin (the file is removed, the error names it).

CLI: ``python -m synthesizers.domains.code.projects fetch [--config F]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from sandboxes.project import REPO_ROOT, ProjectSpec, code_cache_dir

DEFAULT_CONFIG = REPO_ROOT / "configs" / "code-projects.yaml"


class ProjectConfigError(ValueError):
    pass


def load_projects(path: str | Path | None = None, names: list[str] | None = None) -> list[ProjectSpec]:
    path = Path(path or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProjectConfigError(f"cannot read project list {path}: {exc}") from exc
    entries = (raw or {}).get("projects") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ProjectConfigError(f"{path}: expected a non-empty 'projects:' list")
    specs = []
    for i, entry in enumerate(entries):
        try:
            spec = ProjectSpec.from_dict(entry)
        except (KeyError, TypeError) as exc:
            raise ProjectConfigError(f"{path}: project #{i + 1} lacks {exc}") from exc
        if len(spec.sha256) != 64 or not spec.source:
            raise ProjectConfigError(f"{path}: project {spec.name} needs a sha256 and a source list")
        specs.append(spec)
    if names:
        unknown = set(names) - {s.name for s in specs}
        if unknown:
            raise ProjectConfigError(f"unknown project(s) {sorted(unknown)} (in {path}: {[s.name for s in specs]})")
        specs = [s for s in specs if s.name in names]
    return specs


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sdist_path(spec: ProjectSpec) -> Path:
    return code_cache_dir() / "sdists" / spec.sdist_name


def fetch(spec: ProjectSpec, quiet: bool = True) -> Path:
    """The verified sdist, downloaded once."""
    target = sdist_path(spec)
    if target.is_file() and sha256_of(target) == spec.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tf-sdist-", dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-d", tmp,
               f"{spec.name}=={spec.version}"] + (["-q"] if quiet else [])
        # A site-wide constraints file may pin other versions of these names; sdists are pinned here.
        env = dict(os.environ, PIP_CONSTRAINT="")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        files = sorted(Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or not files:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no sdist"]
            raise ProjectConfigError(f"pip download {spec.name}=={spec.version} failed: {tail[0]}")
        got = sha256_of(files[0])
        if got != spec.sha256:
            raise ProjectConfigError(f"{spec.name}=={spec.version}: sdist sha256 {got} != pinned {spec.sha256}")
        os.replace(files[0], target)  # normalise the name (e.g. python_slugify -> python-slugify)
    return target


def fetch_all(specs: list[ProjectSpec]) -> list[Path]:
    return [fetch(s) for s in specs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m synthesizers.domains.code.projects")
    ap.add_argument("command", choices=["fetch", "list"])
    ap.add_argument("--config", default=None)
    ap.add_argument("--project", action="append", help="only these projects")
    args = ap.parse_args(argv)
    try:
        specs = load_projects(args.config, args.project)
        for spec in specs:
            where = fetch(spec) if args.command == "fetch" else sdist_path(spec)
            print(f"{spec.name}=={spec.version}  {where}")
    except ProjectConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
