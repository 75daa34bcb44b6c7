"""gVisor (``runsc``) as the sandbox runtime: a user-space kernel between the box and the host.

Selected with ``sandbox.runtime: runsc`` in a run config (``DockerSandboxPool(runtime="runsc")``).
Docker only runs it once ``runsc`` is registered in the daemon's ``daemon.json`` and the daemon has
re-read it. trajforge never does that on its own; on a host where you want it::

    apt-get install -y runsc                       # Debian ships gVisor as `runsc`
    sudo .venv/bin/python -m sandboxes.gvisor register   # adds runtimes.runsc to /etc/docker/daemon.json,
                                                   # then SIGHUP to dockerd (running containers stay up)
    .venv/bin/python -m sandboxes.gvisor check     # starts a box under runsc and runs `true` in it

``register`` keeps every other key of ``daemon.json`` and writes it atomically; ``--dry-run``
prints the file it would write. It registers runsc with ``--network=none`` (sandboxes never have a
network): without it, runsc 20221219 (Debian 12) refuses every container on a host like the 2-core
VM with "setting up network: creating interfaces from net namespace ...: cannot run with network
enabled in root network namespace", even under ``docker run --network=none``. A pool asked for a runtime the daemon does not list fails at once
with one line saying so (``require_runtime``).

What the containment suite found under runsc 0.0~20221219.0 (Debian 12) on the 2-core VM
(``TRAJFORGE_SANDBOX_RUNTIME=runsc pytest tests/sandboxes/test_containment.py
tests/sandboxes/test_runner_attacks.py``: 14 failed, 11 errors, 21 passed; most errors follow from
boxes that died earlier in the session), each cause then checked alone on a fresh box through
``docker exec``; runsc is *not* a drop-in stronger runtime here:

- **The runner's channel is reachable from inside.** The sandbox user (uid 10001) opens
  ``/proc/1/fd/0`` and ``/proc/1/fd/1`` of PID 1 (the runner), which runc refuses; code in the box
  could write forged replies onto the host's channel. Hence a pool under runsc must use
  ``exec_via="docker"`` (it refuses ``runner`` with one line). ``/proc/1/mem`` and ptrace stay refused.
- **The memory limit ends the whole box.** The container's memory limit is the sandbox's (the
  Sentry's) total: a 1 GB allocation stops the container (the next exec gets 409 "not running"),
  where runc's OOM killer ends only the process. A rollout then ends as an infrastructure failure
  (retried, never scored) rather than the model's.
- **A fork bomb breaks the exec instead of meeting the pid limit** (``pids_limit`` counts the
  Sentry's host threads, not the guest's tasks): the exec ends with 128 and "urpc method
  containerManager.WaitPID failed: EOF" rather than forks being refused.
- Filling ``/work`` is bounded as under runc (ENOSPC at the tmpfs size).
- ``/proc/self/status`` has no ``NoNewPrivs`` line (the test reads it; not an escape).
- Exec is slower: see the ``gvisor`` rows of ``bench/results/sandbox.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DAEMON_JSON = Path("/etc/docker/daemon.json")
RUNTIMES = ("runc", "runsc")


class RuntimeUnavailable(RuntimeError):
    """The configured container runtime is not registered with this host's Docker daemon."""

    infrastructure = False  # a configuration error: fail the run, do not retry it


def daemon_runtimes(client) -> list[str]:
    return sorted((client.info().get("Runtimes") or {}).keys())


def require_runtime(client, runtime: str) -> None:
    """Raise ``RuntimeUnavailable`` (one line) unless the daemon can start containers under ``runtime``."""
    known = daemon_runtimes(client)
    if runtime in known:
        return
    hint = ("install gVisor (`apt-get install -y runsc`) and register it: "
            "`sudo .venv/bin/python -m sandboxes.gvisor register`" if runtime == "runsc"
            else "register it in the daemon's daemon.json")
    raise RuntimeUnavailable(f"sandbox.runtime {runtime!r} is not registered with the Docker daemon "
                             f"(it has: {', '.join(known) or 'none'}); {hint}")


def registered_config(current: dict, runsc_path: str, args: list[str] | None = None) -> dict:
    config = dict(current)
    runtimes = dict(config.get("runtimes") or {})
    entry: dict = {"path": runsc_path}
    if args:
        entry["runtimeArgs"] = list(args)
    runtimes["runsc"] = entry
    config["runtimes"] = runtimes
    return config


def _dockerd_pids() -> list[int]:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def register(daemon_json: Path = DAEMON_JSON, runsc_path: str | None = None, args: list[str] | None = None,
             dry_run: bool = False, reload: bool = True) -> dict:
    runsc_path = runsc_path or shutil.which("runsc")
    if not runsc_path:
        raise SystemExit("runsc is not installed (Debian: apt-get install -y runsc)")
    current = json.loads(daemon_json.read_text()) if daemon_json.exists() and daemon_json.read_text().strip() else {}
    config = registered_config(current, runsc_path, args)
    if dry_run:
        print(json.dumps(config, indent=2))
        return config
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = daemon_json.with_suffix(".json.trajforge-tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, daemon_json)
    if reload:  # dockerd re-reads `runtimes` on SIGHUP; running containers are not touched
        for pid in _dockerd_pids():
            os.kill(pid, signal.SIGHUP)
        time.sleep(1.0)
    return config


def check(image: str | None = None) -> int:
    """Start one box under runsc and run a command in it; prints what happened, returns an exit code."""
    from sandboxes.daemon import ensure_docker
    from sandboxes.pool import DockerSandboxPool

    client = ensure_docker()
    try:
        require_runtime(client, "runsc")
    except RuntimeUnavailable as exc:
        print(exc)
        return 1
    if image is None:
        from sandboxes.image import ensure_image

        image = ensure_image()
    with DockerSandboxPool(image=image, size=1, runtime="runsc", exec_via="docker") as pool, pool.acquire() as box:
        r = box.exec("uname -a; cat /proc/version; echo ok")
        print(r.stdout.strip() or r.stderr.strip())
        return 0 if r.exit_code == 0 and r.stdout.strip().endswith("ok") else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandboxes.gvisor", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("register", help="add runsc to the Docker daemon's runtimes and reload it")
    r.add_argument("--daemon-json", type=Path, default=DAEMON_JSON)
    r.add_argument("--runsc", default=None, help="path of the runsc binary (default: from PATH)")
    r.add_argument("--runtime-arg", action="append", default=None,
                   help="runsc flag (repeatable; default: --network=none), e.g. --platform=kvm")
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--no-reload", action="store_true")
    c = sub.add_parser("check", help="start a box under runsc and run a command in it")
    c.add_argument("--image", default=None)
    a = p.parse_args(argv)
    if a.cmd == "register":
        register(a.daemon_json, a.runsc, a.runtime_arg if a.runtime_arg is not None else ["--network=none"],
                 a.dry_run, not a.no_reload)
        return 0
    return check(a.image)


if __name__ == "__main__":
    sys.exit(main())
