"""A bounded load test: 16 concurrent agents x 20 requests (searches and opens)
against the real service on 127.0.0.1 over the full corpus; every request must
succeed. Latencies are printed (run with -s) and bounded loosely — this is a
survival test, not a benchmark."""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import pytest


CLIENTS, REQUESTS = 16, 20
QUERIES = ["Lisbon earthquake", "Stanley Kubrick film", "Roman Republic senate", "photosynthesis plants light",
           "Mongol Empire Genghis Khan", "French Revolution 1789", "quantum mechanics physics", "Nile river Egypt"]


@pytest.mark.slow
def test_service_survives_concurrent_agents(service):
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def agent(n: int) -> None:
        with httpx.Client(base_url=service.url, timeout=30.0) as client:
            doc_id = None
            for i in range(REQUESTS):
                t0 = time.perf_counter()
                try:
                    if i % 2 == 0 or doc_id is None:
                        resp = client.post("/search", json={"query": QUERIES[(n + i) % len(QUERIES)], "k": 5})
                        doc_id = resp.json()["results"][0]["doc_id"] if resp.status_code == 200 else None
                    else:
                        resp = client.post("/open", json={"doc_id": doc_id})
                    ok = resp.status_code == 200
                except httpx.HTTPError as exc:
                    ok, resp = False, exc
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if not ok:
                        failures.append(str(resp))

    started = time.perf_counter()
    threads = [threading.Thread(target=agent, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - started
    assert not failures, failures[:3]
    assert len(latencies) == CLIENTS * REQUESTS
    q = statistics.quantiles(latencies, n=100)
    p50, p95 = q[49] * 1000, q[94] * 1000
    print(f"\nload: {CLIENTS}x{REQUESTS} requests in {wall:.2f} s ({len(latencies) / wall:.0f} req/s), p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert p95 < 5000  # generous: the machine is shared; a hung server fails, a busy one does not
