"""The code domain's starter set: a handful of checked tasks, built the first time a clone runs the domain.

``make code`` and ``make all`` run this before the domain: when the task folders the code config
names (``domain_options.instances`` and ``function_tasks``) already hold checked Parquet files it
does nothing; otherwise it builds a few tasks from two small projects (repo instances of the
config's ``bug_kinds`` only, so none is filtered away, and one-statement function tasks), then
runs ``pipelines.env_qa`` on them (three runs under the verifier's conditions). Minutes, not the
hour ``make code-tasks`` takes for 200 instances, and resumable like both (attempts and QA results
are logged as they come). A folder it built carries ``starter.json``; ``make code-tasks`` grows
the same instance folder and replaces a starter function-task set with the full one.

CLI: ``python -m pipelines.code_starter [--config configs/code.yaml]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

STARTER_PROJECTS = ("cachetools", "inflection")
REPO_TARGET = 6  # repo instances across the starter projects
FUNCTIONS_PER_PROJECT = 2
MARKER = "starter.json"


def state(parquet: Path) -> str:
    """``missing`` | ``unchecked`` (some row never judged by env QA) | ``checked``."""
    import pyarrow.parquet as pq

    from pipelines.env_qa import OUTCOMES

    if not parquet.is_file():
        return "missing"
    if "qa_outcome" not in pq.read_schema(parquet).names:
        return "unchecked"
    outcomes = pq.read_table(parquet, columns=["qa_outcome"]).column("qa_outcome").to_pylist()
    return "unchecked" if any(o not in OUTCOMES for o in outcomes) else "checked"


def folders(options: dict[str, Any]) -> tuple[Path, Path | None]:
    """(instances folder, function-task folder or None) of a code config's ``domain_options``."""
    from sandboxes.project import code_cache_dir

    inst = Path(options.get("instances") or code_cache_dir() / "instances")
    inst = inst.parent if inst.suffix == ".parquet" else inst
    fn = None
    if "function" in (options.get("kinds") or ["repo"]):
        fn = Path(options.get("function_tasks") or code_cache_dir() / "function_tasks")
        fn = fn.parent if fn.suffix == ".parquet" else fn
    return inst, fn


def ensure(options: dict[str, Any], *, log: Callable[[str], None] = print, workers: int = 2) -> dict[str, str]:
    """Make the config's task folders hold checked tasks (building the starter set where missing);
    returns what was done per folder."""
    from pipelines.env_qa import check_file

    inst, fn = folders(options)
    done: dict[str, str] = {}
    inst_state = state(inst / "instances.parquet")
    if inst_state == "missing":
        from synthesizers.domains.code.instances import build

        log(f"code: no instances at {inst}: building the starter set ({REPO_TARGET} instances of "
            f"{', '.join(STARTER_PROJECTS)}; `make code-tasks` builds many)")
        inst.mkdir(parents=True, exist_ok=True)
        (inst / MARKER).write_text(json.dumps({"projects": STARTER_PROJECTS, "target": REPO_TARGET}) + "\n")
        build(inst, REPO_TARGET, projects=list(STARTER_PROJECTS), workers=1,
              bug_kinds=tuple(options.get("bug_kinds") or ()))
        inst_state = "unchecked"
    if inst_state == "unchecked":
        log(f"code: checking the instances at {inst} under the verifier's conditions (3 runs each; resumable)")
        report = check_file(inst / "instances.parquet", "repo", workers=workers, log=log)
        done["instances"] = f"{report['kept']} of {report['tasks']} kept"
    if fn is not None:
        fn_state = state(fn / "function_tasks.parquet")
        if fn_state == "missing":
            from synthesizers.domains.code.function_tasks import main as build_functions

            log(f"code: no function tasks at {fn}: building the starter set")
            fn.mkdir(parents=True, exist_ok=True)
            (fn / MARKER).write_text(json.dumps({"projects": STARTER_PROJECTS}) + "\n")
            args = ["--out", str(fn), "--per-project", str(FUNCTIONS_PER_PROJECT), "--statements", "1", "1"]
            if build_functions(args + [a for p in STARTER_PROJECTS for a in ("--project", p)]) != 0:
                raise RuntimeError(f"building function tasks into {fn} failed")
            fn_state = "unchecked"
        if fn_state == "unchecked":
            report = check_file(fn / "function_tasks.parquet", "function", workers=workers, log=log)
            done["function_tasks"] = f"{report['kept']} of {report['tasks']} kept"
    return done


def main(argv: list[str] | None = None) -> int:
    from pipelines.config import load_config

    ap = argparse.ArgumentParser(prog="python -m pipelines.code_starter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/code.yaml")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        if cfg.domain != "code":
            raise ValueError(f"{args.config} is a config for {cfg.domain!r}, not the code domain")
        done = ensure(dict(cfg.domain_options or {}), workers=args.workers)
    except Exception as exc:  # noqa: BLE001 - one clear line for the user
        print(f"error: code starter set: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"code tasks: {json.dumps(done) if done else 'checked task sets in place'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
