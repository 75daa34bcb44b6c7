"""pipelines — the Ray DAG that turns seed tasks into shards.

seed -> rollout -> verify -> branch (cut failed trajectories before their first
critical action, re-roll) -> store -> dedupe -> mask/tokenize -> shards +
manifest -> report. Work is cut into units with deterministic ids, each written
atomically, so a killed run resumes without losing or duplicating anything.
Also the ``trajforge`` CLI. Holds no domain logic.
"""
