"""Establishing a served model's tokenizer (``synthesizers.engines.served``) against mock
servers that tokenize with a real tokenizer: the right one is accepted, a wrong one (or none)
is refused in one line naming the fix, a server without ids or without /tokenize runs text mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from synthesizers.engines.served import FIX, TokenizerNotEstablished, establish_tokenizer, probe_text

URL = "http://served.local"


def wrong_tokenizer_folder(model_dir: Path, out: Path) -> Path:
    """The embedded tokenizer with two vocabulary entries swapped: same size, same special
    tokens, a different id for 'e' and 'a' (BPE merges name strings, so it still loads)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, out / name)
    spec = json.loads((out / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab["e"], vocab["a"] = vocab["a"], vocab["e"]
    (out / "tokenizer.json").write_text(json.dumps(spec))
    return out


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def wrong_dir(model_dir, tmp_path_factory):
    return wrong_tokenizer_folder(model_dir, tmp_path_factory.mktemp("wrong-tokenizer"))


class FakeVLLM:
    """/v1/models, /tokenize, /detokenize and /v1/completions answered with ``tokenizer``."""

    def __init__(self, tokenizer, *, root="/srv/model-not-here", tokenize=True, token_ids=True, completions=200,
                 model="served-model"):
        self.tokenizer, self.root, self.model = tokenizer, root, model
        self.tokenize, self.token_ids, self.completions = tokenize, token_ids, completions
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        body = json.loads(request.content) if request.content else {}
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": self.model, "root": self.root, "max_model_len": 2048}]})
        if path == "/tokenize" and self.tokenize:
            if "messages" in body:
                ids = self.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=True)
                ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            else:
                ids = self.tokenizer.encode(body["prompt"], add_special_tokens=body.get("add_special_tokens", True))
            return httpx.Response(200, json={"count": len(ids), "max_model_len": 2048, "tokens": list(ids)})
        if path == "/detokenize" and self.tokenize:
            ids = [i for i in body["tokens"] if i < len(self.tokenizer)]  # vLLM: unknown ids decode to ""
            return httpx.Response(200, json={"prompt": self.tokenizer.decode(ids, skip_special_tokens=False)})
        if path == "/v1/completions":
            if self.completions != 200:
                return httpx.Response(self.completions, json={"error": "no"})
            choice = {"text": "!", "finish_reason": "length"}
            if self.token_ids:
                choice.update(token_ids=[0], prompt_token_ids=body["prompt"])
            return httpx.Response(200, json={"choices": [choice]})
        return httpx.Response(404, json={"detail": "Not Found"})


def establish(server, candidate=None, *, embedded=None, warnings=None):
    return establish_tokenizer(URL, candidate, embedded=embedded, transport=httpx.MockTransport(server),
                               warn=(warnings.append if warnings is not None else lambda line: None))


def test_the_served_tokenizer_is_established_and_checked(tokenizer, model_dir):
    warnings: list[str] = []
    got = establish(FakeVLLM(tokenizer), str(model_dir), warnings=warnings)
    assert (got.path, got.source, got.served_model) == (str(model_dir.resolve()), "engine.tokenizer", "served-model")
    assert got.token_exact and got.checked and not got.notes and not warnings


def test_the_served_root_is_found_when_it_is_a_local_folder(tokenizer, model_dir, tmp_path):
    got = establish(FakeVLLM(tokenizer, root=str(model_dir)), embedded=tmp_path / "absent")
    assert (got.path, got.source) == (str(model_dir.resolve()), "served model")


def test_the_embedded_tokenizer_is_only_a_checked_candidate(tokenizer, model_dir, wrong_dir):
    got = establish(FakeVLLM(tokenizer), embedded=model_dir)
    assert (got.path, got.source) == (str(model_dir.resolve()), "embedded model")  # it matches the server
    from transformers import AutoTokenizer

    other = FakeVLLM(AutoTokenizer.from_pretrained(str(wrong_dir)))  # a server with another tokenizer
    with pytest.raises(TokenizerNotEstablished) as info:
        establish(other, embedded=model_dir)
    message = str(info.value)
    assert "\n" not in message and message.endswith(FIX) and "embedded model" in message


def test_a_wrong_tokenizer_is_refused_in_one_line(tokenizer, wrong_dir):
    server = FakeVLLM(tokenizer)
    with pytest.raises(TokenizerNotEstablished) as info:
        establish(server, str(wrong_dir))
    message = str(info.value)
    assert "\n" not in message and "does not match" in message and message.endswith(FIX)
    assert "/v1/completions" not in server.paths  # refused before anything else is asked


def test_special_tokens_and_vocabulary_size_are_compared(tokenizer, model_dir, tmp_path):
    from transformers import AutoTokenizer

    bigger = AutoTokenizer.from_pretrained(str(model_dir))
    bigger.add_special_tokens({"additional_special_tokens": ["<|tool|>"]})
    bigger.save_pretrained(tmp_path / "bigger")
    assert "<|tool|>" in probe_text(bigger)
    with pytest.raises(TokenizerNotEstablished, match="tokenizes differently"):
        establish(FakeVLLM(tokenizer), str(tmp_path / "bigger"))  # the local one has a token the server lacks
    with pytest.raises(TokenizerNotEstablished, match="vocabulary is larger"):
        establish(FakeVLLM(bigger), str(model_dir))  # the server has one the local one lacks


def test_no_candidate_is_refused_in_one_line(tokenizer, tmp_path):
    with pytest.raises(TokenizerNotEstablished) as info:
        establish(FakeVLLM(tokenizer), embedded=tmp_path / "absent")
    assert "no tokenizer for it loads" in str(info.value) and str(info.value).endswith(FIX)
    with pytest.raises(TokenizerNotEstablished, match="does not load on this machine"):
        establish(FakeVLLM(tokenizer), str(tmp_path / "absent"))


def test_a_server_without_token_ids_runs_text_mode_said_once(tokenizer, model_dir):
    for server in (FakeVLLM(tokenizer, token_ids=False), FakeVLLM(tokenizer, completions=400)):
        warnings: list[str] = []
        got = establish(server, str(model_dir), warnings=warnings)
        assert got.checked and not got.token_exact and got.path == str(model_dir.resolve())
        assert len(warnings) == 1 and "text mode" in warnings[0] and "\n" not in warnings[0]


def test_a_server_without_tokenize_needs_engine_tokenizer(tokenizer, model_dir):
    server = FakeVLLM(tokenizer, tokenize=False)
    with pytest.raises(TokenizerNotEstablished) as info:
        establish(server, embedded=model_dir)  # the embedded tokenizer is never assumed for a URL
    assert "no /tokenize" in str(info.value) and FIX in str(info.value) and "\n" not in str(info.value)
    warnings: list[str] = []
    got = establish(server, str(model_dir), warnings=warnings)
    assert not got.token_exact and not got.checked and got.source == "engine.tokenizer"
    assert len(warnings) == 1 and "not token-exact" in warnings[0]


def test_an_unreachable_server_is_one_line(tmp_path):
    def refuse(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(TokenizerNotEstablished, match="no OpenAI-compatible server answers"):
        establish_tokenizer(URL, None, transport=httpx.MockTransport(refuse))


def test_a_chat_template_difference_is_a_note_not_a_failure(tokenizer, model_dir, tmp_path):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(str(model_dir))
    other.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    got = establish(FakeVLLM(other), str(model_dir))
    assert got.token_exact and len(got.notes) == 1 and "chat template" in got.notes[0]


def test_run_refuses_a_url_whose_tokenizer_cannot_be_established_before_writing(tmp_path):
    """`trajforge run --model URL` against an OpenAI-compatible server with no /tokenize and no
    engine.tokenizer: one line, exit 2, nothing written."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "vendor-model"}]}).encode() if self.path == "/v1/models" else b"{}"
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("domain: math\nlimit: 2\n")
        out = tmp_path / "out"
        repo = Path(__file__).resolve().parents[3]
        proc = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "math", "--config", str(cfg), "--out", str(out),
             "--model", f"http://127.0.0.1:{httpd.server_address[1]}", "--quiet"],
            cwd=repo, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
    finally:
        httpd.shutdown()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "no /tokenize" in lines[0] and FIX in lines[0]
    assert not out.exists() or not any(out.iterdir())


# ---- an endpoint pool: every endpoint must serve the same model and tokenizer ----------------

def establish_pool(servers: dict[str, FakeVLLM], candidate=None, warnings=None):
    """``servers`` by host; the spec lists them in order, as ``engine.model`` would."""
    def route(request: httpx.Request) -> httpx.Response:
        return servers[request.url.host](request)

    spec = ",".join(f"http://{host}:8000" for host in servers)
    return establish_tokenizer(spec, candidate, transport=httpx.MockTransport(route),
                               warn=(warnings.append if warnings is not None else lambda line: None))


def test_a_pool_of_like_endpoints_is_established_once_and_checked_on_each(tokenizer, model_dir):
    servers = {"a": FakeVLLM(tokenizer), "b": FakeVLLM(tokenizer), "c": FakeVLLM(tokenizer)}
    got = establish_pool(servers, str(model_dir))
    assert got.token_exact and got.checked and got.served_model == "served-model"
    for server in servers.values():  # each endpoint's tokenizer was compared, not only the first's
        assert "/tokenize" in server.paths and "/detokenize" in server.paths and "/v1/completions" in server.paths


def test_an_endpoint_serving_another_model_is_named_in_one_line(tokenizer, model_dir):
    servers = {"a": FakeVLLM(tokenizer), "b": FakeVLLM(tokenizer), "odd": FakeVLLM(tokenizer, model="other-model")}
    with pytest.raises(TokenizerNotEstablished) as info:
        establish_pool(servers, str(model_dir))
    message = str(info.value)
    assert "\n" not in message and message.startswith("endpoint http://odd:8000 serves 'other-model'")
    assert "http://b:8000" not in message


def test_an_endpoint_with_another_tokenizer_is_named_in_one_line(tokenizer, model_dir, wrong_dir):
    from transformers import AutoTokenizer

    servers = {"a": FakeVLLM(tokenizer), "odd": FakeVLLM(AutoTokenizer.from_pretrained(str(wrong_dir)))}
    with pytest.raises(TokenizerNotEstablished) as info:
        establish_pool(servers, str(model_dir))
    message = str(info.value)
    assert "\n" not in message and message.startswith("endpoint http://odd:8000 has another tokenizer")


def test_a_down_endpoint_is_named_at_start(tokenizer, model_dir):
    def refuse(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(TokenizerNotEstablished, match="no OpenAI-compatible server answers at http://dead:8000"):
        establish_pool({"a": FakeVLLM(tokenizer), "dead": refuse}, str(model_dir))


def test_one_endpoint_without_token_ids_puts_the_whole_pool_in_text_mode(tokenizer, model_dir):
    warnings: list[str] = []
    got = establish_pool({"a": FakeVLLM(tokenizer), "b": FakeVLLM(tokenizer, token_ids=False)}, str(model_dir),
                         warnings=warnings)
    assert got.checked and not got.token_exact
    assert len(warnings) == 1 and "http://b:8000" in warnings[0] and "text mode" in warnings[0]
