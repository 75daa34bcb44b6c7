"""Per-project sandbox images: the base image plus the project's test dependencies.

Test deps (exact pins from ``configs/code-projects.yaml``) are fetched on the
host as wheels for the sandbox's Python (``pip download --only-binary :all:
--python-version 3.11``) and installed offline (``--no-index --target``) into
``.cache/code/deps/KEY``; the image copies that folder to
``/opt/trajforge/deps/KEY`` (read-only at run time, nothing fetched at run
time). Every project gets an image, even one whose suite needs only the
pytest of the base image, so pools and runs treat them alike; the tag is
``trajforge-code-<name>:<hash of base tag + deps + recipe>``.

The project's own code is *not* in the image (see ``sandboxes.project``).

CLI: ``python -m synthesizers.domains.code.images build [--project NAME ...]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sandboxes.daemon import ensure_docker
from sandboxes.image import ensure_image
from sandboxes.project import IMAGE_DEPS_ROOT, ProjectSpec, deps_dir_host

RECIPE_VERSION = "2"  # 2: the project's own package scrubbed from the image (``scrub_command``)
SANDBOX_PYTHON = "3.11"  # Debian bookworm's python3 in the base image


class ImageBuildError(RuntimeError):
    pass


def image_tag(spec: ProjectSpec, base: str) -> str:
    recipe = {"base": base, "deps": sorted(spec.test_deps), "python": SANDBOX_PYTHON, "v": RECIPE_VERSION,
              "project": spec.name}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"trajforge-code-{spec.name.lower()}:{digest}"


def install_deps(spec: ProjectSpec) -> Path | None:
    """Host folder with the test deps installed for the sandbox's Python (None: no deps)."""
    if not spec.test_deps:
        return None
    target = deps_dir_host(spec)
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PIP_CONSTRAINT="")  # the pins here are exact; no site constraints apply
    common = ["--only-binary", ":all:", "--no-deps", "--python-version", SANDBOX_PYTHON]
    with tempfile.TemporaryDirectory(prefix="tf-deps-", dir=target.parent) as tmp:
        wheels, site = Path(tmp) / "wheels", Path(tmp) / "site"
        steps = [
            [sys.executable, "-m", "pip", "download", "-q", *common, "-d", str(wheels), *spec.test_deps],
            [sys.executable, "-m", "pip", "install", "-q", *common, "--no-index", "--find-links", str(wheels),
             "--target", str(site), *spec.test_deps],
        ]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
                raise ImageBuildError(f"{spec.name} test deps: {' '.join(cmd[3:5])} failed: {tail[0]}")
        for junk in site.rglob("__pycache__"):
            shutil.rmtree(junk, ignore_errors=True)
        (site / ".complete").write_text("\n".join(spec.test_deps) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(site, target)
    return target


def own_modules(spec: ProjectSpec) -> list[str]:
    """The project's top-level import names (from its source dirs) and its distribution name."""
    names = {s.rstrip("/").rsplit("/", 1)[-1].removesuffix(".py") for s in spec.source}
    return sorted(names | {spec.name.replace("-", "_")})


def scrub_command(spec: ProjectSpec) -> str:
    """Shell that deletes every copy of the project's own package from the image: Debian ships some
    of the projects in the base (``python3-more-itertools``, a dependency of pytest's packages, and
    a vendored copy in ``pkg_resources``), and an installed original hands out any injected bug's fix.
    Only that project's image loses them; its own suite never imports them (the checkout is first)."""
    # Top-level entries of a site/dist-packages folder or of a vendoring folder only: a bare name
    # match would also hit the standard library (urllib/parse.py for the project ``parse``).
    names = " -o ".join(f"-path '*{where}/{n}{tail}'" for n in own_modules(spec)
                        for where in ("-packages", "/_vendor")
                        for tail in ("", ".py", "-*.dist-info", "-*.egg-info"))
    return (f"find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /work \\) -prune -o "
            f"\\( {names} \\) -print -exec rm -rf {{}} +")


def _context(spec: ProjectSpec, base: str, deps: Path | None) -> bytes:
    lines = [f"FROM {base}", "USER 0", f"RUN {scrub_command(spec)}", f"USER {_base_user(base)}"]
    if deps is not None:
        lines.append(f"COPY deps {IMAGE_DEPS_ROOT}/{spec.deps_key}")
    lines.append(f'LABEL trajforge.code.project="{spec.name}" trajforge.code.version="{spec.version}"')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = ("\n".join(lines) + "\n").encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        if deps is not None:
            # Owned by root, world-readable: the sandbox user can import but never change them.
            tar.add(str(deps), arcname="deps", filter=_root_readonly)
    return buf.getvalue()


def _root_readonly(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def _base_user(base: str) -> str:
    user = ensure_docker().images.get(base).attrs.get("Config", {}).get("User") or "0"
    return user


def ensure_project_image(spec: ProjectSpec, base: str | None = None) -> str:
    """The project's image tag, built once (cached by recipe hash)."""
    from docker.errors import BuildError, ImageNotFound

    client = ensure_docker()
    base = base or ensure_image()
    tag = image_tag(spec, base)
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    deps = install_deps(spec)
    try:
        client.images.build(fileobj=io.BytesIO(_context(spec, base, deps)), custom_context=True, tag=tag,
                            rm=True, forcerm=True, network_mode="none", pull=False)
    except BuildError as exc:
        raise ImageBuildError(f"building {tag} failed: {exc}") from exc
    return tag


def main(argv: list[str] | None = None) -> int:
    from synthesizers.domains.code.projects import ProjectConfigError, fetch, load_projects

    ap = argparse.ArgumentParser(prog="python -m synthesizers.domains.code.images")
    ap.add_argument("command", choices=["build"])
    ap.add_argument("--config", default=None)
    ap.add_argument("--project", action="append")
    args = ap.parse_args(argv)
    try:
        for spec in load_projects(args.config, args.project):
            fetch(spec)
            print(f"{spec.name}: {ensure_project_image(spec)}")
    except (ProjectConfigError, ImageBuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
