"""The packed shard loader: an endless, resumable stream of fixed-shape batches.

Windows form one global stream across epochs (epoch e's plan, then e+1's —
see ``trainer.packing``); batches may straddle an epoch boundary, so nothing
is ever dropped. Data-parallel rank ``r`` of ``world`` takes global windows
``offset + j*world + r``; its ``micro_batch`` consecutive windows form a batch;
DataLoader worker ``w`` of ``n`` builds that rank's batches ``b ≡ w (mod n)``,
which the DataLoader hands back round-robin — the same order as with no
workers. The position is one number, the global window offset, so a resume
(even with another world size or batch size) continues exactly where the
checkpoint left off.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from trainer.packing import build_batch, epoch_plan
from trainer.shards import ShardSet


class _PlanCache:
    """Global window index -> its segments, computing epoch plans lazily (a few kept)."""

    def __init__(self, shards: ShardSet, window: int, seed: int, group: int):
        self.shards, self.window, self.seed, self.group = shards, window, seed, group
        self.starts = [0]  # starts[e] = global index of epoch e's first window
        self.plans: dict[int, list] = {}

    def _plan(self, epoch: int) -> list:
        if epoch not in self.plans:
            for old in [e for e in self.plans if e < epoch - 1]:
                del self.plans[old]
            self.plans[epoch] = epoch_plan(self.shards.lengths, self.window, self.seed, epoch, self.group)
        return self.plans[epoch]

    def locate(self, g: int) -> tuple[int, int]:
        """(epoch, index within epoch) of global window ``g``."""
        while self.starts[-1] <= g:
            e = len(self.starts) - 1
            n = len(self._plan(e))
            if n == 0:
                raise ValueError("the shard set has no tokens to pack")
            self.starts.append(self.starts[-1] + n)
        e = max(i for i, s in enumerate(self.starts[:-1]) if s <= g)
        return e, g - self.starts[e]

    def window_at(self, g: int):
        e, i = self.locate(g)
        return self._plan(e)[i]


class PackedDataset(IterableDataset):
    def __init__(self, shards: ShardSet, seq_len: int, micro_batch: int, seed: int, rank: int, world: int,
                 offset: int, group: int):
        super().__init__()
        self.shards, self.seq_len, self.micro_batch = shards, seq_len, micro_batch
        self.seed, self.rank, self.world, self.offset, self.group = seed, rank, world, offset, group

    def window_ids(self, batch: int) -> list[int]:
        """Global window indices of this rank's batch number ``batch``."""
        first = batch * self.micro_batch
        return [self.offset + j * self.world + self.rank for j in range(first, first + self.micro_batch)]

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        plans = _PlanCache(self.shards, self.seq_len, self.seed, self.group)
        b = wid
        while True:
            ids = self.window_ids(b)
            batch = build_batch([plans.window_at(g) for g in ids], self.shards.document, self.seq_len,
                                weighted=self.shards.weighted)
            batch = {k: torch.from_numpy(v) if hasattr(v, "dtype") else v for k, v in batch.items()}
            batch["window_ids"] = ids  # global window indices: which data this batch is, for checks
            batch["epoch"] = plans.locate(ids[0])[0]
            yield batch
            b += nw


class PackedLoader:
    """Iterate packed batches for one data-parallel rank; ``state_dict`` records the position."""

    def __init__(self, shards: ShardSet, *, seq_len: int, micro_batch: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, pack_group: int = 8192, pin_memory: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.shards, self.seq_len, self.micro_batch = shards, seq_len, micro_batch
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_workers, self.pack_group, self.pin_memory = num_workers, pack_group, pin_memory
        self.offset = 0  # global windows consumed by all ranks before the current iteration began
        self.consumed = 0  # batches this rank has taken since then
        self._it = None
        self._plans: _PlanCache | None = None

    def segments(self, window_id: int) -> list[tuple[int, int, int]]:
        """The (doc, start, end) pieces of global window ``window_id``, in batch order: which shard
        rows a batch holds (``ShardSet.doc_shard`` / ``doc_row``), for checks and debugging."""
        if self._plans is None:
            self._plans = _PlanCache(self.shards, self.seq_len, self.seed, self.pack_group)
        return list(self._plans.window_at(int(window_id)))

    @property
    def tokens_per_batch(self) -> int:
        return self.seq_len * self.micro_batch

    def position(self) -> int:
        """Global window offset after everything taken so far (ranks advance in lockstep)."""
        return self.offset + self.consumed * self.micro_batch * self.world_size

    def state_dict(self) -> dict:
        return {"window_offset": self.position(), "seed": self.seed, "seq_len": self.seq_len,
                "pack_group": self.pack_group, "num_docs": self.shards.num_docs}

    def load_state_dict(self, state: dict) -> None:
        mine = {"seed": self.seed, "seq_len": self.seq_len, "pack_group": self.pack_group,
                "num_docs": self.shards.num_docs}
        for key, value in mine.items():
            if state.get(key) != value:
                raise ValueError(f"loader state was saved with {key}={state.get(key)}, this run has {value}: "
                                 "the data order would not continue")
        self.offset, self.consumed, self._it = int(state["window_offset"]), 0, None

    def _dataloader(self):
        ds = PackedDataset(self.shards, self.seq_len, self.micro_batch, self.seed, self.rank, self.world_size,
                           self.position(), self.pack_group)
        return DataLoader(ds, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          prefetch_factor=4 if self.num_workers else None,
                          persistent_workers=False)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self.offset, self.consumed = self.position(), 0
            self._it = iter(self._dataloader())
        batch = next(self._it)
        self.consumed += 1
        return batch

    def close(self) -> None:
        self._it = None
