"""Find a Docker daemon to talk to, starting Debian's ``dockerd`` if none answers.

``ensure_docker()`` is the one entry point every sandbox user goes through: it
returns a pinged ``docker.DockerClient`` or raises ``SandboxUnavailable`` with a
single line that names what is missing and how to fix it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
from docker.errors import DockerException

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
START_TIMEOUT_S = 60.0
_CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache"

_lock = threading.Lock()
_client: docker.DockerClient | None = None


class SandboxUnavailable(RuntimeError):
    """Docker (or the sandbox image) cannot be had; the message says how to fix it."""

    infrastructure = True  # the daemon, not the code run in a box


def _docker_url() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def _try_client(url: str) -> docker.DockerClient | None:
    try:
        client = docker.DockerClient(base_url=url, timeout=120)
        client.ping()
        return client
    except (DockerException, OSError, Exception):  # noqa: BLE001 - any failure means "not answering"
        return None


def _start_dockerd(url: str) -> docker.DockerClient:
    dockerd = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.path.exists(p)), None
    )
    if dockerd is None:
        raise SandboxUnavailable(f"Docker daemon not reachable at {url} and dockerd not found: run `make setup`")
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            f"Docker daemon not reachable at {url} and starting {dockerd} needs root: "
            "start it (`sudo dockerd &`) or run `make setup` as root"
        )
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = _CACHE_DIR / "dockerd.log"
    with open(log_path, "ab") as log:
        # A new session so the daemon outlives this process and is not hit by our Ctrl-C.
        proc = subprocess.Popen(
            [dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    print(f"started dockerd (pid {proc.pid}, log {log_path})", file=sys.stderr)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        client = _try_client(url)
        if client is not None:
            return client
        if proc.poll() is not None:
            # Lost a race with another starter (pid file taken)? Then that daemon will answer.
            client = _try_client(url) or (time.sleep(2) or _try_client(url))
            if client is not None:
                return client
            raise SandboxUnavailable(
                f"dockerd exited with code {proc.returncode} before answering at {url}: see {log_path}"
            )
        time.sleep(0.5)
    raise SandboxUnavailable(f"dockerd did not answer at {url} within {START_TIMEOUT_S:.0f}s: see {log_path}")


def ensure_docker() -> docker.DockerClient:
    """A pinged client; starts dockerd (as root) when no daemon answers."""
    global _client
    with _lock:
        if _client is not None and _try_ping(_client):
            return _client
        url = _docker_url()
        client = _try_client(url)
        if client is None:
            if url != DEFAULT_SOCKET:  # a remote/explicit DOCKER_HOST is not ours to start
                raise SandboxUnavailable(f"Docker daemon not reachable at {url} (DOCKER_HOST): start it or unset DOCKER_HOST")
            client = _start_dockerd(url)
        _client = client
        return client


def _try_ping(client: docker.DockerClient) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False
