"""pipelines — the Ray DAG that turns seed tasks into shards.

seed -> rollout -> verify -> branch (cut failed trajectories before their first
critical action, re-roll) -> store -> decontaminate -> dedupe -> mask/tokenize
-> shards + manifest -> report. Rollouts run on Ray actors (``scheduler``); the
stages after the store stream over its unit files as Ray tasks (``stages``).
Work is cut into units with deterministic ids, each written atomically, so a
killed run resumes without losing or duplicating anything.
Also the ``trajforge`` CLI. Holds no domain logic.
"""
