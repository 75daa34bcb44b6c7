from pipelines.dedupe import dedupe
from schemas import Message, Trajectory, Verdict

BASE = (
    "first we read the problem carefully and note that the sum of the two numbers is needed "
    "so we add seventeen and twenty five to get forty two which we check twice before answering"
)


def make(tid, text, passed=True, score=1.0):
    return Trajectory(
        id=tid, task_id="k", domain="math",
        messages=[Message(role="user", content="q"), Message(role="assistant", content=text)],
        verdict=Verdict(passed=passed, score=score),
    )


def test_exact_duplicates_differing_in_case_and_space_are_removed():
    a = make("a", BASE)
    b = make("b", "  " + BASE.upper().replace(" ", "   "))
    res = dedupe([a, b], near=False)
    assert [t.id for t in res.kept] == ["a"]
    assert res.removed_exact == ["b"]


def test_near_duplicates_keep_the_passed_one():
    failed = make("a", BASE + " done", passed=False, score=0.0)
    passed = make("z", BASE + " finished")
    distinct = make("m", "a completely different trajectory about geometry and circles with radius three")
    res = dedupe([failed, passed, distinct], threshold=0.7)
    kept = {t.id for t in res.kept}
    assert kept == {"z", "m"}
    assert res.removed_near == ["a"]


def test_user_text_does_not_make_trajectories_duplicates():
    a = make("a", "answer one is twelve because of the rule")
    b = make("b", "totally unrelated reasoning about prime factors of ninety")
    res = dedupe([a, b])
    assert len(res.kept) == 2


# ---- the scalable stage: planted corpus, keeper rule, Ray path ------------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bench.bench_dedupe import jaccard, planted_corpus  # noqa: E402
from pipelines.dedupe import (  # noqa: E402
    LshParams,
    choose_bands,
    components,
    duplicate_clusters,
    minhash_signature,
    normalize,
    shingle_hashes,
)

PARAMS = LshParams.make(threshold=0.8, num_perm=128, shingle_size=5, exact=True, near=True)


def _pairs_found(pairs, clusters):
    where = {d: c for c, members in enumerate(clusters) for d in members}
    return {(a, b) for a, b, *_ in pairs if a in where and where[a] == where.get(b)}


def test_planted_near_duplicates_found_and_distinct_docs_kept():
    texts, pairs = planted_corpus(distinct=300, planted=80, seed=3)
    clusters, _ = duplicate_clusters([normalize(t) for t in texts], PARAMS, chunk_size=100, partitions=3, use_ray=False)
    found = _pairs_found(pairs, clusters)
    positives = {(a, b) for a, b, _, j in pairs if j >= 0.8}
    negatives = {(a, b) for a, b, _, j in pairs if j < 0.8}
    assert positives and negatives
    assert positives <= found, "a planted near-duplicate (J >= 0.8) was missed"
    assert not (negatives & found), "a planted pair below J 0.8 was merged"
    planted_docs = {d for a, b, *_ in pairs for d in (a, b)}
    clustered = {d for c in clusters for d in c}
    assert not (clustered - planted_docs), "a distinct document was put in a cluster"
    for members in clusters:  # every merged pair really is a near duplicate
        assert all(jaccard(texts[x], texts[y]) >= 0.8 for i, x in enumerate(members) for y in members[i + 1 :])


def test_signature_matches_datasketch_update_batch():
    from datasketch import MinHash

    template = MinHash(num_perm=64, seed=1)
    values = shingle_hashes("the quick brown fox jumps over the lazy dog again and again", 3)
    ref = MinHash(num_perm=64, seed=1, hashfunc=lambda x: x, permutations=template.permutations, scheme=template.scheme)
    ref.update_batch(values.tolist())
    assert np.array_equal(minhash_signature(values, template), ref.hashvalues)


@pytest.mark.parametrize("threshold,num_perm", [(0.8, 128), (0.85, 128), (0.9, 256), (0.5, 64)])
def test_bands_give_high_candidate_probability_at_the_threshold(threshold, num_perm):
    bands, rows = choose_bands(threshold, num_perm)
    assert bands * rows <= num_perm
    assert 1 - (1 - threshold**rows) ** bands >= 0.995


def test_components_are_transitive():
    assert sorted(components(6, [(0, 1), (1, 2), (4, 5)])) == [[0, 1, 2], [4, 5]]


def test_keeper_prefers_passed_then_score_then_shorter():
    base = BASE + " and that settles it"
    failed_high = make("a", base + " done", passed=False, score=0.9)
    passed_low = make("b", base + " done now", passed=True, score=0.2)
    passed_high_long = make("c", base + " done now ok", passed=True, score=0.9)
    passed_high_short = make("d", base + " done ok", passed=True, score=0.9)
    res = dedupe([failed_high, passed_low, passed_high_long, passed_high_short], threshold=0.6)
    assert [t.id for t in res.kept] == ["d"]
    assert res.removed_near == ["a", "b", "c"] and res.clusters == 1


def test_exact_and_near_are_told_apart():
    a = make("a", BASE)
    b = make("b", BASE.upper())
    c = make("c", BASE + " twice")
    res = dedupe([a, b, c], threshold=0.7)
    assert [t.id for t in res.kept] == ["a"]
    assert res.removed_exact == ["b"] and res.removed_near == ["c"]


def test_near_off_keeps_near_duplicates():
    res = dedupe([make("a", BASE), make("b", BASE + " twice")], near=False)
    assert len(res.kept) == 2


@pytest.mark.ray
def test_ray_path_gives_the_same_clusters_as_in_process():
    import ray

    texts, pairs = planted_corpus(distinct=200, planted=48, seed=5)
    normalized = [normalize(t) for t in texts]
    local, _ = duplicate_clusters(normalized, PARAMS, chunk_size=60, partitions=2, use_ray=False)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        distributed, _ = duplicate_clusters(normalized, PARAMS, chunk_size=60, partitions=2, use_ray=True)
        trajs = [make(f"t{i:04d}", t) for i, t in enumerate(texts)]
        via_ray = dedupe(trajs, threshold=0.8, chunk_size=60)  # Ray is up: the stage uses it
    finally:
        ray.shutdown()
    assert sorted(map(sorted, distributed)) == sorted(map(sorted, local))
    assert len(via_ray.kept) == len(texts) - sum(len(c) - 1 for c in local)


# ---- what the issue asks of the distributed stage, piece by piece ----------

WORDS = [f"w{i}" for i in range(120)]


def _variant(changes: dict[int, str]) -> str:
    return " ".join(changes.get(i, w) for i, w in enumerate(WORDS))


def test_band_keys_of_chunks_meet_in_one_partition_and_no_reducer_sees_everything():
    from pipelines.lsh import group_partition, signature_chunk

    params = LshParams.make(threshold=0.8, num_perm=128, shingle_size=5, exact=True, near=True)
    filler = [f"distinct document number {i} about topic {i * 7} and nothing else {i * 13}" for i in range(6)]
    # the near-duplicate pair sits in different chunks (0 and 2), as on different workers
    docs = [_variant({}), *filler[:3], *filler[3:], _variant({60: "changed"})]
    chunk, parts = 3, 4
    maps = [signature_chunk(docs[s : s + chunk], s, params, parts) for s in range(0, len(docs), chunk)]
    sets = [m[0] for m in maps]
    per_partition = [[m[2][p] for m in maps] for p in range(parts)]
    total_keys = sum(len(routed) for m in maps for routed in m[2])
    for p, routed in enumerate(per_partition):  # a reducer receives only its own share of the keys
        keys = [k for part in routed for k, _, _ in part]
        assert all(k % parts == p for k in keys) and len(keys) < total_keys
    edges = {e for p in range(parts) for e in group_partition(per_partition[p], sets, chunk, params)}
    assert edges == {(0, len(docs) - 1)}


def test_clusters_are_connected_components_and_one_member_is_kept():
    from pipelines.lsh import exact_jaccard

    a, b, c = _variant({}), _variant({40: "x"}), _variant({40: "x", 80: "y"})
    sets = [shingle_hashes(t, 5) for t in (a, b, c)]
    assert exact_jaccard(sets[0], sets[1]) >= 0.85 and exact_jaccard(sets[1], sets[2]) >= 0.85
    assert exact_jaccard(sets[0], sets[2]) < 0.85  # a and c are joined only through b
    res = dedupe([make("a", a, passed=False), make("b", b, score=0.5), make("c", c, score=0.9)], threshold=0.85)
    assert res.clusters == 1 and [t.id for t in res.kept] == ["c"]  # passed, then the higher score
    assert res.removed_near == ["a", "b"]
