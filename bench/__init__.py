"""Benchmarks (``make bench``): ``bench/bench_<name>.py`` modules exposing ``run() -> dict``; see ``bench.run``."""
