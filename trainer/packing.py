"""Packing documents into fixed-length windows, and turning windows into tensors.

An epoch's plan is a list of windows, each a list of segments ``(doc, start,
end)``: documents are shuffled by (seed, epoch), cut into groups, documents
longer than the window are split into window-sized chunks, and each group is
packed with best-fit decreasing. Labels are computed on the *whole* document
before it is cut, so a chunk's last label is the next chunk's first token (same
document) and every loss token at position >= 1 is a label exactly once per
epoch. A loss token at a document's very first position has no context and
cannot be trained on.

A document's loss array is its 0/1 loss mask, or float loss weights (see
``ShardSet.weighted``); labels sit where it is non-zero, and weighted batches also
carry ``loss_weights`` aligned with the labels.
"""

from __future__ import annotations

import bisect

import numpy as np

IGNORE = -100
Segment = tuple[int, int, int]  # (doc, start, end)


def split_document(doc: int, length: int, window: int) -> list[Segment]:
    return [(doc, s, min(s + window, length)) for s in range(0, length, window)]


def best_fit_decreasing(segments: list[Segment], window: int) -> list[list[Segment]]:
    """Pack segments (each <= window) into as few windows as BFD finds; deterministic."""
    # Stable order on ties (by doc, start) so the plan depends only on the input order's seed.
    order = sorted(segments, key=lambda s: (-(s[2] - s[1]), s[0], s[1]))
    windows: list[list[Segment]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, window index)
    for seg in order:
        n = seg[2] - seg[1]
        i = bisect.bisect_left(free, (n, -1))
        if i < len(free):
            rem, w = free.pop(i)
            windows[w].append(seg)
            if rem - n > 0:
                bisect.insort(free, (rem - n, w))
        else:
            windows.append([seg])
            if window - n > 0:
                bisect.insort(free, (window - n, len(windows) - 1))
    return windows


def epoch_plan(lengths: np.ndarray, window: int, seed: int, epoch: int, group: int) -> list[list[Segment]]:
    """All windows of one epoch, in training order."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    plan: list[list[Segment]] = []
    for g in range(0, len(perm), max(1, group)):
        segments = [seg for d in perm[g:g + group] if lengths[d] > 0
                    for seg in split_document(int(d), int(lengths[d]), window)]
        windows = best_fit_decreasing(segments, window)
        # BFD emits full windows first; shuffle so batches mix window fill levels and lengths.
        plan.extend(windows[i] for i in rng.permutation(len(windows)))
    return plan


def document_labels(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Next-token labels within one document: label[i] = ids[i+1] where mask[i+1] == 1, else -100."""
    labels = np.full(len(ids), IGNORE, dtype=np.int64)
    if len(ids) > 1:
        labels[:-1] = np.where(mask[1:] != 0, ids[1:], IGNORE)
    return labels


def document_weights(loss: np.ndarray) -> np.ndarray:
    """Label-aligned loss weights: weight[i] = loss[i+1] (the weight of the token predicted at i)."""
    weights = np.zeros(len(loss), dtype=np.float32)
    if len(loss) > 1:
        weights[:-1] = loss[1:]
    return weights


def build_batch(windows: list[list[Segment]], get_doc, window: int, weighted: bool = False) -> dict:
    """Concatenate windows into one packed batch of ``len(windows) * window`` tokens.

    ``get_doc(doc) -> (ids, loss)``. A window's unused tail becomes its own padding
    document (id 0, no labels) so every batch has the same shape. ``loss_weight`` is the
    batch's total loss weight (its loss-token count unless ``weighted``).
    """
    total = len(windows) * window
    input_ids = np.zeros(total, dtype=np.int64)
    labels = np.full(total, IGNORE, dtype=np.int64)
    weights = np.zeros(total, dtype=np.float32) if weighted else None
    positions = np.empty(total, dtype=np.int64)
    bounds = [0]
    labels_cache: dict[int, np.ndarray] = {}
    weights_cache: dict[int, np.ndarray] = {}
    pos = 0
    for segs in windows:
        start = pos
        for doc, s, e in segs:
            ids, mask = get_doc(doc)
            if doc not in labels_cache:
                labels_cache[doc] = document_labels(ids, mask)
            n = e - s
            input_ids[pos:pos + n] = ids[s:e]
            labels[pos:pos + n] = labels_cache[doc][s:e]
            if weighted:
                if doc not in weights_cache:
                    weights_cache[doc] = document_weights(mask)
                weights[pos:pos + n] = weights_cache[doc][s:e]
            positions[pos:pos + n] = np.arange(n)
            pos += n
            bounds.append(pos)
        pad = start + window - pos
        if pad:
            positions[pos:pos + pad] = np.arange(pad)
            pos += pad
            bounds.append(pos)
    cu = np.asarray(bounds, dtype=np.int32)
    num_loss_tokens = int((labels != IGNORE).sum())
    batch = {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": positions,
        "cu_seqlens": cu,
        "max_seqlen": int(np.diff(cu).max()) if len(cu) > 1 else 0,
        "num_loss_tokens": num_loss_tokens,
        "loss_weight": float(weights.sum(dtype=np.float64)) if weighted else float(num_loss_tokens),
        "attended_pairs": int((np.diff(cu).astype(np.int64) * (np.diff(cu) + 1) // 2).sum()),
    }
    if weighted:
        batch["loss_weights"] = weights
    return batch
