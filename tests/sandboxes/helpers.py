"""Assertions shared by the sandbox tests."""

from __future__ import annotations


def labelled(client, **labels: str) -> list[dict]:
    """Containers (running or not) carrying every given trajforge label."""
    filters = [f"trajforge.{k}={v}" for k, v in labels.items()] or ["trajforge.sandbox=1"]
    return client.api.containers(all=True, filters={"label": filters})


def assert_pool_healthy(pool, client) -> None:
    """The pool hands out a working, wiped box, and the daemon still answers."""
    with pool.acquire() as box:
        result = box.exec("echo ok; ls -A /work /tmp | grep -v ':$' | grep -v '^$' | wc -l", timeout_s=10)
        assert result.exit_code == 0, result
        assert result.stdout.split() == ["ok", "0"], result
    assert client.ping()
