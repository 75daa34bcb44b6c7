"""Trajectory-length documents for the dedupe benchmark: 2-50 KB each (log-uniform, so as many
2-5 KB documents as 20-50 KB ones), written the way the assistant side of an agent trajectory
reads once rendered (``pipelines.dedupe.normalized_text``): turns of Zipfian prose, stock
paragraphs many trajectories share (the same phrasing of a plan, a check, a tool preamble),
tool calls ``name({"arg": "..."})`` and code. Shared paragraphs and tool-call templates give
distinct documents partial overlaps, so LSH buckets hold real non-duplicate candidates.

Variants are edited to a target Jaccard by replacing words; how many is solved from which
shingles each replaced position touches (no search over re-shingled texts, which long
documents make slow); the benchmark then measures the exact Jaccard of each pair.
"""

from __future__ import annotations

import numpy as np

TOOLS = ("search", "open_page", "python", "bash", "calculator", "read_file", "write_file", "find")
ARGS = ("query", "url", "code", "command", "expression", "path", "content", "pattern")
CODE = ("def", "return", "for", "in", "if", "else:", "import", "from", "self", "=", "==", "+=", "(", ")",
        "[", "]", "{", "}", "print(", "range(", "len(", "assert", "None", "True", "False", "x", "i", "n",
        "result", "value", "0", "1", "2", "10", "100", "#", "->", "lambda", "while", "break", "try:", "except")


def _vocab(rng: np.random.Generator, size: int) -> list[str]:
    lengths = np.clip(rng.poisson(4.2, size) + 1, 1, 14)  # English-like word lengths
    letters = (rng.integers(0, 26, int(lengths.sum()), dtype=np.uint8) + ord("a")).tobytes().decode()
    ends = np.cumsum(lengths)
    return [letters[e - k : e] for e, k in zip(ends.tolist(), lengths.tolist())]


class TrajectoryWriter:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.vocab = _vocab(self.rng, 30_000)
        p = np.cumsum(1.0 / np.arange(1, len(self.vocab) + 1) ** 1.07)
        self.cdf = p / p[-1]
        idents = [f"{w}_{v}" for w, v in zip(self.vocab[:600], self.vocab[600:1200])]
        self.code = list(CODE) + idents
        self.stock = [self._prose(int(self.rng.integers(25, 90))) for _ in range(60)]

    def _zipf(self, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), len(self.vocab) - 1)

    def _prose(self, words: int) -> str:
        return " ".join(self.vocab[i] for i in self._zipf(words))

    def _turn(self) -> list[str]:
        rng = self.rng
        parts = []
        if rng.random() < 0.35:
            parts.append(self.stock[int(rng.integers(len(self.stock)))])
        parts.append(self._prose(int(rng.integers(30, 220))))
        if rng.random() < 0.5:
            k = int(rng.integers(len(TOOLS)))
            parts.append(f'{TOOLS[k]}({{"{ARGS[k]}": "{self._prose(int(rng.integers(3, 30)))}"}})')
        if rng.random() < 0.25:
            parts.append(" ".join(self.code[i] for i in rng.integers(0, len(self.code), int(rng.integers(20, 160)))))
        return parts

    def document(self) -> list[str]:
        """One document's words, 2-50 KB once joined."""
        target = float(np.exp(self.rng.uniform(np.log(2_000), np.log(50_000))))
        words: list[str] = []
        size = 0
        while size < target:
            for part in self._turn():
                new = part.split()
                words.extend(new)
                size += sum(map(len, new)) + len(new)
        while size > target and len(words) > 1:
            size -= len(words.pop()) + 1
        return words

    def variant(self, words: list[str], level: float, size: int = 5) -> str:
        """``words`` edited toward shingle Jaccard ``level`` (1.0: case and spacing only)."""
        rng = self.rng
        if level >= 1.0:
            return "  ".join(w.upper() if i % 7 == 0 else w for i, w in enumerate(words))
        n = len(words)
        grams = max(1, n - size + 1)
        rank = rng.permutation(n)  # position p is replaced once k > rank[p]
        # a gram is touched once any of its positions is: the smallest rank in its window
        windows = np.lib.stride_tricks.sliding_window_view(rank, min(size, n)).min(axis=1)
        touched = np.sort(windows)
        # Jaccard after touching t grams (all distinct): (G - t) / (G + t); solve for t
        t = int(round(grams * (1 - level) / (1 + level)))
        k = int(touched[min(t, grams - 1)]) + 1 if t else 0
        replace = rank < k
        new = self._zipf(n)
        return " ".join(self.vocab[new[i]] + "x" if replace[i] else w for i, w in enumerate(words))


def trajectory_corpus(distinct: int, planted: int, levels, jaccard, seed: int = 0):
    """(texts, pairs) as ``bench_dedupe.planted_corpus`` returns them, of trajectory-length texts."""
    writer = TrajectoryWriter(seed)
    texts = [" ".join(writer.document()) for _ in range(distinct)]
    pairs = []
    for i in range(planted):
        level = levels[i % len(levels)]
        words = writer.document()
        texts.append(" ".join(words))
        texts.append(writer.variant(words, level))
        pairs.append((len(texts) - 2, len(texts) - 1, level, jaccard(texts[-2], texts[-1])))
    order = writer.rng.permutation(len(texts))  # pairs straddle chunks and partitions
    where = {int(old): new for new, old in enumerate(order)}
    return [texts[int(old)] for old in order], [(where[a], where[b], lvl, j) for a, b, lvl, j in pairs]
