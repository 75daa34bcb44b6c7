"""Atomic writes: whole new content or the old file, no temp files left behind, ordinary
permissions, and concurrent writers of one path never interleave."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from schemas.atomic import atomic_write, write_text


def test_write_creates_folders_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    write_text(target, "one\n")
    write_text(target, "two ✓\n")
    assert target.read_text(encoding="utf-8") == "two ✓\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")

    def half(tmp):
        tmp.write_text("half of the ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_permissions_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644


def test_concurrent_writers_each_land_whole(tmp_path):
    target = tmp_path / "out.txt"
    texts = [f"{i}" * 200_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            write_text(target, text)
        except BaseException as exc:  # a thread's exception would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
