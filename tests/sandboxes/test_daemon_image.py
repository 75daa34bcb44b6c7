"""Daemon discovery and image recipe: unit tests (no Docker) plus one real image check."""

from __future__ import annotations

import pytest

from sandboxes import daemon, image
from sandboxes.daemon import SandboxUnavailable


def test_mirror_comes_from_deb822_sources(tmp_path):
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\n# a comment: with a colon\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert image.debian_mirror(tmp_path, tmp_path / "absent.list") == "http://mirror.example/debian"


def test_mirror_comes_from_one_line_sources_list(tmp_path):
    listing = tmp_path / "sources.list"
    listing.write_text("# deb http://old.example/debian buster main\n"
                       "deb [signed-by=/usr/share/keyrings/k.gpg] http://list.example/debian bookworm main\n")
    assert image.debian_mirror(tmp_path / "no-dir", listing) == "http://list.example/debian"


def test_no_mirror_is_one_clear_error(tmp_path):
    with pytest.raises(SandboxUnavailable, match="no Debian mirror.*TRAJFORGE_SANDBOX_IMAGE"):
        image.debian_mirror(tmp_path, tmp_path / "sources.list")


def test_recipe_tag_is_stable_and_tracks_the_recipe(monkeypatch):
    tag = image.recipe_tag()
    assert tag == image.recipe_tag() and tag.startswith("trajforge-sandbox:") and len(tag.split(":")[1]) == 12
    monkeypatch.setattr(image, "PACKAGES", image.PACKAGES + ("curl",))
    assert image.recipe_tag() != tag
    monkeypatch.undo()
    monkeypatch.setattr(image, "IMAGE_RECIPE_VERSION", "999")
    assert image.recipe_tag() != tag


def test_unreachable_explicit_docker_host_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(daemon, "_client", None)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(SandboxUnavailable) as err:
        daemon.ensure_docker()
    assert "not reachable" in str(err.value) and "\n" not in str(err.value)


def test_missing_dockerd_names_the_fix(monkeypatch):
    monkeypatch.setattr(daemon.shutil, "which", lambda name: None)
    monkeypatch.setattr(daemon.os.path, "exists", lambda path: False)
    with pytest.raises(SandboxUnavailable, match=r"dockerd not found: run `make setup`"):
        daemon._start_dockerd("unix:///nowhere.sock")


@pytest.mark.docker
def test_built_image_has_python_pytest_and_the_sandbox_user(sandbox_image, sandbox_pool):
    assert sandbox_image  # ensure_image() answered with a tag that exists
    with sandbox_pool.acquire() as box:
        result = box.exec("python3 -c 'import pytest, sys; print(sys.version_info[0])'; id -un; id -u")
    assert result.stdout.split() == ["3", "sandbox", "10001"], result


@pytest.mark.docker
def test_ensure_image_is_idempotent(sandbox_image, monkeypatch):
    def no_rebuild(*args, **kwargs):
        raise AssertionError("ensure_image rebuilt an image that exists")

    monkeypatch.setattr(image, "build_image", no_rebuild)
    assert image.ensure_image() == sandbox_image  # found, not rebuilt
