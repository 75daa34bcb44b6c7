"""The math verifier's arithmetic check (``verifiers.arithmetic``) on CHAMP: false alarms and speed.

CHAMP (PyPI ``champ-dataset``, MIT; Mao et al. 2024) holds 270 competition problems with
human-written solutions and 43k model solutions (GPT-3.5/4/4 Turbo, PaLM 2). The human
solutions are right, so every alarm there is a false one (goal: none). On the model
solutions the alarms are mostly real errors (a hand-read sample: docs/measurements.md);
their count and the share of turns with one are reported as they are, with the speed.

    python -m bench.bench_arithmetic
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path


def champ_file() -> Path | None:
    """CHAMP's data file, found without importing the package (it needs natsort, not installed)."""
    spec = importlib.util.find_spec("champ_dataset")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_files" / "v0.json"
    return path if path.is_file() else None


def scan(problems: dict) -> dict:
    """Claims and alarms in the human solutions and in the model turns of CHAMP-shaped ``problems``."""
    from verifiers.arithmetic import arithmetic_claims

    human = {"solutions": 0, "claims": 0, "alarms": 0, "alarm_examples": []}
    model = {"turns": 0, "claims": 0, "alarms": 0, "turns_with_alarm": 0, "chars": 0}
    started = time.perf_counter()
    for problem in problems.values():
        text = "\n".join(step["_text"] for step in problem["solution"]["steps"])
        claims = arithmetic_claims(text)
        wrong = [c for c in claims if not c.holds]
        human["solutions"] += 1
        human["claims"] += len(claims)
        human["alarms"] += len(wrong)
        human["alarm_examples"] += [c.explain() for c in wrong][: 5 - len(human["alarm_examples"])]
        for conversation in problem.get("conversations", {}).values():
            for message in conversation.get("messages", []):
                if not message["role"].startswith("Model") or not message.get("text"):
                    continue
                claims = arithmetic_claims(message["text"])
                wrong = sum(not c.holds for c in claims)
                model["turns"] += 1
                model["claims"] += len(claims)
                model["alarms"] += wrong
                model["turns_with_alarm"] += bool(wrong)
                model["chars"] += len(message["text"])
    seconds = time.perf_counter() - started
    chars = model["chars"] + sum(len(s["_text"]) for p in problems.values() for s in p["solution"]["steps"])
    return {"human": human, "model": model, "seconds": round(seconds, 2), "chars_per_s": chars / max(seconds, 1e-9)}


def run() -> dict:
    path = champ_file()
    if path is None:
        return {"skipped": "champ-dataset is not installed (it comes with requirements/data.txt: make setup)"}
    result = scan(json.loads(path.read_text())["problems"])
    human, model = result["human"], result["model"]
    result["figures"] = [
        {"figure": f"false alarms in CHAMP's {human['solutions']} human solutions ({human['claims']} claims read)",
         "value": human["alarms"], "goal": "<= 0"},
        {"figure": f"claims read in {model['turns']:,} model turns", "value": model["claims"], "goal": "-"},
        {"figure": "model turns with an alarm (mostly real errors)",
         "value": round(model["turns_with_alarm"] / max(1, model["turns"]), 4), "goal": "-"},
        {"figure": "characters checked per second (one core)", "value": round(result["chars_per_s"]), "goal": "-"},
    ]
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
