"""Quick containment checks for ``python -m sandboxes.image check`` / ``trajforge sandbox check``.

Each check runs one hostile command in a fresh pool and states what a contained
result looks like; the table tells an operator at a glance whether this
machine's Docker really enforces the limits. The thorough version, with
host-side assertions, is ``tests/sandboxes/test_containment.py``.
"""

from __future__ import annotations

import time
from typing import Callable

from sandboxes.base import ExecResult, SandboxLimits

_FORK_COUNT = (
    "import os,time\nn=0\ntry:\n while n<10000:\n  if os.fork()==0:\n   time.sleep(20); os._exit(0)\n  n+=1\n"
    "except OSError: pass\nprint(n)"
)

Check = tuple[str, list[str] | str, float, Callable[[ExecResult], bool]]

CHECKS: list[Check] = [
    ("runs as uid 10001", "id -u", 5, lambda r: r.stdout.strip() == "10001"),
    ("no capabilities", "grep CapEff /proc/self/status", 5, lambda r: r.stdout.split()[-1] == "0" * 16),
    ("no-new-privileges", "grep NoNewPrivs /proc/self/status", 5, lambda r: r.stdout.split()[-1] == "1"),
    ("root and /usr are read-only", "touch /x && echo WROTE; touch /usr/x && echo WROTE; true", 5,
     lambda r: "WROTE" not in r.stdout),
    ("no network interface but lo", "tail -n +3 /proc/net/dev | cut -d: -f1", 5,
     lambda r: r.stdout.split() == ["lo"]),
    ("no DNS", ["python3", "-c", "import socket; socket.getaddrinfo('deb.debian.org', 80); print('RESOLVED')"],
     10, lambda r: "RESOLVED" not in r.stdout),
    ("no docker socket", "test -e /var/run/docker.sock && echo PRESENT; true", 5,
     lambda r: "PRESENT" not in r.stdout),
    ("pids limited", ["python3", "-c", _FORK_COUNT], 30, lambda r: r.stdout.strip().isdigit()
     and int(r.stdout.strip()) < 1000),
    ("1 GB allocation fails", ["python3", "-c", "b=bytearray(1<<30); print('ALLOCATED')"], 30,
     lambda r: "ALLOCATED" not in r.stdout and r.exit_code != 0),
    ("infinite loop times out", ["python3", "-c", "while True: pass"], 2, lambda r: r.timed_out),
    ("100 MB output is cut", "head -c 100000000 /dev/zero", 30, lambda r: r.truncated),
]


def run_checks(image: str) -> int:
    from sandboxes.docker_backend import DockerSandboxPool

    failures = 0
    with DockerSandboxPool(image, size=1, limits=SandboxLimits()) as pool:
        print(f"{'check':32} {'result':6} {'seconds':>7}  detail")
        for name, cmd, timeout_s, contained in CHECKS:
            started = time.monotonic()
            with pool.acquire() as box:
                result = box.exec(cmd, timeout_s=timeout_s)
            ok = contained(result)
            failures += not ok
            detail = f"exit={result.exit_code} timed_out={result.timed_out} truncated={result.truncated}"
            print(f"{name:32} {'ok' if ok else 'FAIL':6} {time.monotonic() - started:7.2f}  {detail}")
    print("all contained" if not failures else f"{failures} check(s) FAILED")
    return 1 if failures else 0
