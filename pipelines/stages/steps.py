"""The post-rollout steps, each built from its own section of the run config.

A step declares its name and the ``RunConfig`` section it reads as class attributes, checked when
the class is defined; ``Step.of(config)`` builds it from that section and ``with_(...)`` returns a
configured copy (another threshold, another masking policy) without touching the run config.
The work of a step is done on one batch of the store at a time (in a Ray task or in process,
``pipelines/stages/passes.py``); only the dedupe step also decides something over the whole run
(which member of each duplicate cluster stays), from the small keys the batches return.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from pipelines.config import RunConfig
from schemas import ShardRow, Trajectory


class Step:
    name: ClassVar[str]
    section: ClassVar[str]  # the RunConfig section the step is configured by

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("name", "section"):
            if not isinstance(cls.__dict__.get(attr), str):
                raise TypeError(f"{cls.__name__} must declare {attr} as a string class attribute")
        if cls.section not in RunConfig.model_fields:
            raise TypeError(f"{cls.__name__}.section {cls.section!r} is not a RunConfig section")

    def __init__(self, settings: BaseModel):
        self.settings = settings

    @classmethod
    def of(cls, config: RunConfig) -> "Step":
        return cls(getattr(config, cls.section))

    def with_(self, **changes: Any) -> "Step":
        return type(self)(self.settings.model_copy(update=changes))


class Select(Step):
    """What may become data: never an infrastructure failure; passed ones unless ``include: all``."""

    name, section = "select", "shards"

    def keep(self, t: Trajectory) -> bool:
        v = t.verdict
        if v is not None and v.infrastructure:
            return False
        return self.settings.include == "all" or bool(v and v.passed)


class Decontaminate(Step):
    """Drops trajectories whose task or text overlaps a benchmark (``pipelines/decontaminate.py``)."""

    name, section = "decontaminate", "decontam"

    def hits(self, trajectories: list[Trajectory], index: Any) -> list[dict]:
        from pipelines.decontaminate import check

        if not len(index):
            return []
        where, min_hits = list(self.settings.check), self.settings.min_hits
        return [hit for t in trajectories if (hit := check(t, index, where, min_hits)) is not None]


class Dedupe(Step):
    """Exact and near (MinHash LSH) duplicates over the whole run (``pipelines/dedupe.py``)."""

    name, section = "dedupe", "dedupe"

    @property
    def active(self) -> bool:
        return bool(self.settings.exact or self.settings.near)

    def params(self):
        from pipelines.lsh import LshParams

        s = self.settings
        return LshParams.make(threshold=s.threshold, num_perm=s.num_perm, shingle_size=s.shingle_size,
                              exact=s.exact, near=s.near, bands=s.bands)


class Tokenize(Step):
    """Trajectories -> loss-masked rows (``pipelines/tokenize.py``); a row that cannot be made is
    reported with its reason, never fatal."""

    name, section = "tokenize", "shards"

    def rows(self, trajectories: list[Trajectory], tokenizer_path: str) -> tuple[list[ShardRow], list[tuple[str, str]]]:
        from pipelines.tokenize import RowOptions, trajectories_to_rows

        s = self.settings
        options = RowOptions(policy=s.masking, train_on_inserted=s.train_on_inserted,
                             require_token_exact=s.require_token_exact)
        return trajectories_to_rows(trajectories, tokenizer_path, options) if trajectories else ([], [])


class WriteShards(Step):
    """Packs the rows into shards of ``rows_per_shard`` and writes the manifest."""

    name, section = "shards", "shards"


STEPS: tuple[type[Step], ...] = (Select, Decontaminate, Dedupe, Tokenize, WriteShards)
