"""Post-rollout stages that stream over a run's store (see ``chain.py``)."""

from pipelines.stages.chain import ChainOutcome, plan_batches, run_chain
from pipelines.stages.steps import STEPS, Decontaminate, Dedupe, Select, Step, Tokenize, WriteShards

__all__ = ["ChainOutcome", "STEPS", "Decontaminate", "Dedupe", "Select", "Step", "Tokenize", "WriteShards",
           "plan_batches", "run_chain"]
