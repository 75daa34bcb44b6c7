"""sandboxes — isolated places to run untrusted code.

``base.py`` holds the ``Sandbox``/``SandboxPool`` Protocols; ``docker_backend.py``
is the real backend (docker SDK): labelled, hardened containers (no network,
read-only root, tmpfs work dir, cap_drop=ALL, no-new-privileges, non-root user,
memory/pid/CPU limits, exec timeout, output cap) that are reaped even after a
crash. Commands reach a box through ``runner.py``, its PID 1 (``runner_client.py``
on the host), or ``docker exec`` as the fallback. ``pool.py`` keeps boxes warm
and bounds them per pool and per host (``slots.py``). ``image.py`` builds the
base image from a debootstrap root file system, tagged by a hash of its recipe.
Knows nothing about domains.
"""
