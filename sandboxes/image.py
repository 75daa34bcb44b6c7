"""The base sandbox image: minbase Debian + python3 + pytest + coreutils, user ``sandbox``.

``ensure_image()`` returns a tag ``trajforge-sandbox:<recipe hash>``: it pulls
``TRAJFORGE_SANDBOX_IMAGE`` when that is set and pullable, otherwise builds the
image once with ``debootstrap --variant=minbase`` into a temp dir and streams
the root file system into ``docker import``. The Debian mirror comes from the
machine's apt sources so no mirror URL lives in code. Builds are serialised by
a file lock, so concurrent test sessions / pipeline workers build at most once.

CLI: ``python -m sandboxes.image build|check``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandboxes.daemon import _CACHE_DIR, SandboxUnavailable, ensure_docker

IMAGE_RECIPE_VERSION = "1"  # bump when the build steps below change
IMAGE_REPO = "trajforge-sandbox"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-pytest", "coreutils")
SANDBOX_UID = 10001
SANDBOX_USER = "sandbox"
# Appended to /etc/passwd and /etc/group instead of running useradd in a chroot:
# deterministic, and needs no package that minbase may lack.
USER_SETUP = (
    f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:/work:/bin/sh",
    f"{SANDBOX_USER}:x:{SANDBOX_UID}:",
)
IMAGE_CHANGES = ["WORKDIR /work", f"USER {SANDBOX_UID}:{SANDBOX_UID}", 'CMD ["sleep", "infinity"]',
                 "ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1"]
# Bulky paths the sandbox never needs; dropping them roughly halves the image.
_PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
          "usr/share/locale", "usr/share/info")


def recipe_tag() -> str:
    recipe = {"suite": SUITE, "packages": sorted(PACKAGES), "user": USER_SETUP,
              "changes": IMAGE_CHANGES, "prune": _PRUNE, "version": IMAGE_RECIPE_VERSION}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{IMAGE_REPO}:{digest}"


def debian_mirror(sources_dir: Path = Path("/etc/apt/sources.list.d"),
                  sources_list: Path = Path("/etc/apt/sources.list")) -> str:
    """The first apt source that serves the Debian suite (not -security/-updates)."""
    candidates: list[tuple[str, list[str]]] = []
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, v in (line.split(":", 1) for line in stanza.splitlines()
                             if ":" in line and not line.lstrip().startswith("#"))
            )
            if "deb" in fields.get("types", "").split():
                for uri in fields.get("uris", "").split():
                    candidates.append((uri, fields.get("suites", "").split()))
    if sources_list.is_file():
        for line in sources_list.read_text().splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()  # drop "[signed-by=...]" options
            if len(parts) >= 3 and parts[0] == "deb":
                candidates.append((parts[1], [parts[2]]))
    for uri, suites in candidates:
        if SUITE in suites:
            return uri
    for uri, suites in candidates:
        if "security" not in uri and not any(s.endswith(("-security", "-updates")) for s in suites):
            return uri
    raise SandboxUnavailable(
        f"no Debian mirror in {sources_dir}/*.sources or {sources_list}: add an apt source "
        "or set TRAJFORGE_SANDBOX_IMAGE to a pullable image"
    )


def _image_exists(client, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def _try_pull(client, ref: str) -> str | None:
    try:
        client.images.pull(ref)
        return ref
    except Exception as exc:  # noqa: BLE001 - offline/unknown image: fall back to building
        print(f"could not pull TRAJFORGE_SANDBOX_IMAGE={ref} ({exc.__class__.__name__}); building instead",
              file=sys.stderr)
        return None


def _debootstrap(root: Path, mirror: str, log) -> None:
    if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        raise SandboxUnavailable("debootstrap not found: run `make setup` (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise SandboxUnavailable("building the sandbox image needs root (debootstrap): run `make setup` as root")
    cmd = [shutil.which("debootstrap") or "/usr/sbin/debootstrap", "--variant=minbase",
           f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SandboxUnavailable(f"debootstrap failed (exit {proc.returncode}): see {log.name}")


def _customise(root: Path) -> None:
    with open(root / "etc/passwd", "a") as f:
        f.write(USER_SETUP[0] + "\n")
    with open(root / "etc/group", "a") as f:
        f.write(USER_SETUP[1] + "\n")
    (root / "work").mkdir(mode=0o755, exist_ok=True)
    os.chown(root / "work", SANDBOX_UID, SANDBOX_UID)
    for rel in _PRUNE:
        target = root / rel
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()


def _import(client, root: Path, tag: str) -> None:
    repo, _, version = tag.partition(":")
    # Stream the tar straight into the daemon: nothing of ~250 MB is held in memory.
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."],
                           stdout=subprocess.PIPE)
    try:
        client.api.import_image(src=tar.stdout, repository=repo, tag=version,
                                changes=IMAGE_CHANGES, stream_src=True)
    finally:
        tar.stdout.close()
        if tar.wait() != 0:
            raise SandboxUnavailable(f"tar of the sandbox root file system failed (exit {tar.returncode})")


def build_image(client, tag: str) -> float:
    """Build and import the image; returns the seconds it took."""
    started = time.monotonic()
    mirror = debian_mirror()
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = _CACHE_DIR / "sandbox-image-build.log"
    print(f"building sandbox image {tag} from {mirror} (log {log_path}) ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="trajforge-rootfs-") as tmp, open(log_path, "w") as log:
        root = Path(tmp) / "root"
        _debootstrap(root, mirror, log)
        _customise(root)
        _import(client, root, tag)
    if not _image_exists(client, tag):
        raise SandboxUnavailable(f"docker import did not produce {tag}: see {log_path}")
    took = time.monotonic() - started
    print(f"built {tag} in {took:.1f}s", file=sys.stderr)
    return took


def ensure_image(override: str | None = None) -> str:
    """The sandbox image tag, pulled or built on first use (idempotent, concurrent-safe)."""
    client = ensure_docker()
    wanted = override or os.environ.get("TRAJFORGE_SANDBOX_IMAGE")
    if wanted:
        if _image_exists(client, wanted) or _try_pull(client, wanted):
            return wanted
    tag = recipe_tag()
    if _image_exists(client, tag):
        return tag
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(_CACHE_DIR / "sandbox-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same tag
        if not _image_exists(client, tag):
            build_image(client, tag)
    return tag


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "build"
    try:
        if command == "build":
            print(ensure_image())
            return 0
        if command == "check":
            from sandboxes.checks import run_checks

            return run_checks(ensure_image())
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m sandboxes.image build|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
