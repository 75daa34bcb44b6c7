"""sandboxes — isolated places to run untrusted code.

``base.py`` holds the ``Sandbox``/``SandboxPool`` Protocols; ``docker_backend.py``
is the real backend (docker SDK): a pool of warm, labelled, hardened containers
(no network, read-only root, tmpfs work dir, cap_drop=ALL, no-new-privileges,
non-root user, memory/pid/CPU limits, exec timeout, output cap) that are reaped
even after a crash. ``image.py`` builds the base image from a debootstrap root
file system, tagged by a hash of its recipe. Knows nothing about domains.
"""
