"""Reaping by owner identity (pid plus its start time), and the container runtime option."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandboxes.docker_backend import _owner_alive, _proc_start
from sandboxes.gvisor import RuntimeUnavailable, registered_config, require_runtime


class _Info:
    def __init__(self, runtimes):
        self._runtimes = runtimes

    def info(self):
        return {"Runtimes": {name: {} for name in self._runtimes}}


def test_a_runtime_the_daemon_lacks_is_a_one_line_error():
    with pytest.raises(RuntimeUnavailable) as err:
        require_runtime(_Info(["runc"]), "runsc")
    message = str(err.value)
    assert "\n" not in message
    assert "'runsc' is not registered" in message and "sandboxes.gvisor register" in message
    require_runtime(_Info(["runc", "runsc"]), "runsc")  # registered: no error


def test_register_keeps_the_daemon_config_and_adds_runsc():
    current = {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    config = registered_config(current, "/usr/bin/runsc", ["--network=none"])
    assert config["log-driver"] == "json-file"
    assert config["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime"}
    assert config["runtimes"]["runsc"] == {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}
    assert current["runtimes"] == {"nvidia": {"path": "nvidia-container-runtime"}}  # input untouched


def test_sandbox_config_takes_runc_or_runsc_only():
    from pipelines.config import SandboxConfig

    assert SandboxConfig().runtime == "runc"
    assert SandboxConfig(runtime="runsc").runtime == "runsc"
    with pytest.raises(Exception):
        SandboxConfig(runtime="kata")


def test_an_owner_is_its_pid_and_start_time():
    me = str(os.getpid())
    assert _owner_alive({"trajforge.owner_pid": me, "trajforge.owner_start": _proc_start(os.getpid())})
    assert _owner_alive({"trajforge.owner_pid": me})  # boxes labelled before the start time existed
    # The same pid with another start time: the owner died and the kernel gave its pid away.
    assert not _owner_alive({"trajforge.owner_pid": me, "trajforge.owner_start": "1"})
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not _owner_alive({"trajforge.owner_pid": str(child.pid)})


@pytest.mark.docker
def test_reap_removes_boxes_of_a_reused_pid_and_keeps_live_owners(make_pool, docker_client):
    from sandboxes.docker_backend import _remove_quietly, reap
    from tests.sandboxes.helpers import labelled

    pool = make_pool(size=1)
    (info,) = labelled(docker_client, run=pool.run_id)
    # A box labelled as if an earlier process with our pid (another start time) had made it.
    labels = dict(info["Labels"], **{"trajforge.owner_start": "1"})
    image = docker_client.api.inspect_container(info["Id"])["Config"]["Image"]
    cid = docker_client.api.create_container(image, command=["true"], labels=labels)["Id"]
    try:
        assert reap(client=docker_client, run_id=pool.run_id) == 1
        assert [c["Id"] for c in labelled(docker_client, run=pool.run_id)] == [info["Id"]]
    finally:
        _remove_quietly(docker_client, cid)


@pytest.mark.docker
def test_runsc_is_refused_with_the_runner_or_where_the_daemon_lacks_it(sandbox_image):
    from sandboxes.docker_backend import DockerSandboxPool, SandboxError

    with pytest.raises((SandboxError, RuntimeUnavailable)) as err:
        DockerSandboxPool(image=sandbox_image, size=1, runtime="runsc", exec_via="runner")
    assert "\n" not in str(err.value) and "runsc" in str(err.value)
