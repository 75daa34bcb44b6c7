"""The agent cannot reach a task's fix from inside its rollout box: each route an agent could try,
tried through the agent's own ``bash`` tool in a real box of the project's image (cachetools, the
LRU bug of ``helpers``): VCS history, an original copy of the file anywhere on the box's file system
(plain, or inside a wheel, sdist, zip or egg, e.g. a pip cache), the package installed in
site-packages, and the network to fetch it. Each search also finds the *buggy* file, so an empty
result means "not there", not "the search saw nothing"."""

from __future__ import annotations

import hashlib
import json

import pytest

from synthesizers.domains.base import ToolContext
from synthesizers.domains.code.tools import BashTool
from tests.synthesizers.domains.code.helpers import LRU_FILE, buggy_lru, make_task, pristine_lru, project_pool

pytestmark = pytest.mark.docker

# Walks the whole file system as the sandbox user: a file whose bytes hash to a target, or an archive
# member that does, or any path / member naming the package outside the checkouts.
SCAN = r'''
import hashlib, io, json, os, sys, tarfile, zipfile
targets = json.loads(sys.argv[1]); name = sys.argv[2]
mine = ("/work/repo/", "/work/.tf/base/")
hits, named, scanned = {}, [], 0
def look(data, where):
    h = hashlib.sha256(data).hexdigest()
    if h in targets: hits.setdefault(targets[h], []).append(where)
for root, dirs, files in os.walk("/", topdown=True):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev")]
    for f in files:
        p = os.path.join(root, f)
        if name in p.lower() and not p.startswith(mine): named.append(p)
        try:
            if not os.path.isfile(p) or os.path.islink(p) or os.path.getsize(p) > 50_000_000: continue
            data = open(p, "rb").read()
        except OSError:
            continue
        scanned += 1
        look(data, p)
        try:
            if zipfile.is_zipfile(io.BytesIO(data)):
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    for m in z.namelist():
                        if name in m.lower(): named.append(p + "!" + m)
                        look(z.read(m), p + "!" + m)
            elif p.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
                with tarfile.open(fileobj=io.BytesIO(data)) as t:
                    for m in t.getmembers():
                        if name in m.name.lower(): named.append(p + "!" + m.name)
                        if m.isfile(): look(t.extractfile(m).read(), p + "!" + m.name)
        except Exception:
            pass
print("SCAN" + json.dumps({"hits": hits, "named": named, "scanned": scanned}))
'''


@pytest.fixture(scope="module")
def agent(code_project, code_pool):
    """A rollout box with the task's checkout staged, and a function running bash as the agent does."""
    task = make_task(code_project, ["tests.test_lru.LRUCacheTest::test_lru"], ["tests.test_cache::x"])
    with code_pool.acquire() as box:
        ctx = ToolContext(task=task, sandbox=box, state={})
        yield lambda command: BashTool(timeout_s=120).run({"command": command}, ctx)


def test_no_vcs_history(agent):
    out = agent("find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o \\( -name .git -o -name .hg "
                "-o -name .svn -o -name .bzr -o -name _darcs \\) -print 2>/dev/null; echo END; "
                "git log --oneline -1 2>&1; echo git_rc=$?")
    assert out.splitlines()[1] == "END", out  # nothing found before the marker
    assert "git_rc=0" not in out, out


def test_no_original_copy_anywhere_in_the_box(agent, code_project):
    good = hashlib.sha256(pristine_lru(code_project).encode()).hexdigest()
    bad = hashlib.sha256(buggy_lru(code_project).encode()).hexdigest()
    targets = json.dumps({good: "pristine", bad: "buggy"})
    out = agent(f"cat > /tmp/scan.py <<'EOF'\n{SCAN}\nEOF\npython3 /tmp/scan.py '{targets}' cachetools")
    report = json.loads(out.split("SCAN", 1)[1])
    assert report["scanned"] > 1000, report["scanned"]  # the whole image was read, not an empty corner
    assert sorted(report["hits"].get("buggy", [])) == [f"/work/.tf/base/{LRU_FILE}", f"/work/repo/{LRU_FILE}"]
    assert "pristine" not in report["hits"], report["hits"]
    assert report["named"] == [], report["named"]  # no pip cache, wheel, sdist or egg of the package


def test_not_installed_and_not_fetchable(agent):
    out = agent("cd / && env -u PYTHONPATH python3 -c 'import cachetools' 2>&1 | tail -1; "
                "env -u PYTHONPATH python3 -c 'import importlib.metadata as m; m.distribution(\"cachetools\")' "
                "2>&1 | tail -1; python3 -m pip download --no-deps -d /tmp/dl cachetools==5.5.0 2>&1 | tail -1; "
                "python3 -c 'import urllib.request as u; u.urlopen(\"https://pypi.org/simple/cachetools/\", "
                "timeout=5)' 2>&1 | tail -1; ls /tmp/dl 2>&1 | tail -1")
    lines = out.splitlines()[1:]
    assert "ModuleNotFoundError: No module named 'cachetools'" in lines[0], out
    assert "PackageNotFoundError" in lines[1], out
    assert "Error" in lines[2] or "No module named pip" in lines[2], out  # no pip, or pip cannot reach an index
    assert "URLError" in lines[3] or "OSError" in lines[3], out  # no network
    assert "No such file" in lines[4], out
    # Control: with the rollout's PYTHONPATH the checkout itself imports (the search above was real).
    assert "OK" in agent("python3 -c 'import cachetools; print(\"OK\")'")


def test_no_project_is_installed_in_its_own_image(sandbox_pool):
    """The base image may ship a project (Debian's pytest pulls in python3-more-itertools, and
    pkg_resources vendors it): the project's own image scrubs every copy; and no project is among
    its own pinned test deps (those are baked into its image)."""
    import re

    from synthesizers.domains.code.images import own_modules
    from synthesizers.domains.code.projects import fetch, load_projects

    specs = load_projects()
    for spec in specs:
        own = {re.split(r"[=<>!~\[ ]", d, 1)[0].lower().replace("_", "-") for d in spec.test_deps}
        assert spec.name.lower() not in own, spec.name
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))")
    modules = {m: spec for spec in specs for m in own_modules(spec)}
    with sandbox_pool.acquire() as box:
        found = json.loads(box.exec(["python3", "-I", "-c", probe, *modules, "json"], timeout_s=30, workdir="/").stdout)
    assert found.pop("json") is True  # control: the probe finds a module that is there
    shipped = sorted({modules[m].name for m, there in found.items() if there})
    assert shipped == ["more-itertools"], shipped  # what Debian bookworm's base holds today
    for name in shipped:
        spec = next(s for s in specs if s.name == name)
        fetch(spec)
        mods = own_modules(spec)
        script = (f"{probe.replace('sys.argv[1:]', repr(mods))}\n"
                  f"import pathlib; print(sorted(str(p) for m in {mods!r} for p in pathlib.Path('/usr').rglob(m + '*')))")
        with project_pool(spec) as pool, pool.acquire() as box:
            out = box.exec(["python3", "-I", "-c", script], timeout_s=60, workdir="/").stdout
        assert not any(json.loads(out.splitlines()[0]).values()) and out.splitlines()[1] == "[]", out
