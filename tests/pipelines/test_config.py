import pytest

from pipelines.config import ConfigError, load_config


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "domain: math\n"))
    assert cfg.domain == "math"
    assert cfg.shards.masking == "assistant"
    assert cfg.engine.model == "embedded"


def test_overrides_are_dotted_and_skip_none(tmp_path):
    cfg = load_config(write(tmp_path, "domain: math\nlimit: 5\n"), limit=None, **{"engine.model": "http://x:1"})
    assert cfg.limit == 5
    assert cfg.engine.model == "http://x:1"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("domain: [math\n", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("domain: math\nengine: {modle: x}\n", "engine.modle"),
        ("domain: math\nagent: {max_turns: lots}\n", "agent.max_turns"),
        ("seed: 3\n", "domain"),
        ("domain: math\nshards: {masking: everything}\n", "masking"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_engine_model_may_list_endpoints(tmp_path):
    cfg = load_config(write(tmp_path, "domain: math\nengine:\n  model: [http://a:8000, 'http://b:8000/v1']\n"))
    assert cfg.engine.model == "http://a:8000,http://b:8000/v1"  # one spec string, as --model takes it
    assert load_config(write(tmp_path, "domain: math\n"), **{"engine.model": "http://a:1, http://b:2"}).engine.model \
        == "http://a:1,http://b:2"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "domain: math\nengine: {model: [http://a:8000, b:8000]}\n"))
    assert "engine.model" in str(info.value) and "'b:8000' is not an http" in str(info.value)
    assert "\n" not in str(info.value)


def test_preflight_names_the_endpoint_that_does_not_answer():
    import http.server
    import socket
    import threading

    from pipelines.preflight import PreflightError, check_model

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"data": [{"id": "m"}]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        down = sock.getsockname()[1]
    try:
        live = f"http://127.0.0.1:{up.server_address[1]}"
        check_model(live)
        with pytest.raises(PreflightError) as info:
            check_model(f"{live},http://127.0.0.1:{down}")
        assert str(info.value).startswith(f"no OpenAI-compatible server answers at http://127.0.0.1:{down} ")
    finally:
        up.shutdown()


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_verifier_options_are_part_of_the_fingerprint_only_when_set():
    from pipelines.config import RunConfig
    from pipelines.run import fingerprint

    plain = RunConfig(domain="math")
    assert fingerprint(plain) == fingerprint(RunConfig(domain="math", verifier={"options": {}}))
    flagged = RunConfig(domain="math", verifier={"options": {"arithmetic": "flag"}})
    no_gate = RunConfig(domain="math", verifier={"repetition": False})
    assert len({fingerprint(plain), fingerprint(flagged), fingerprint(no_gate)}) == 3


def test_sampling_penalties_reach_the_rollout_and_are_validated():
    import pytest
    from pydantic import ValidationError

    from pipelines.config import RunConfig
    from pipelines.rollout import settings_from_config

    cfg = RunConfig(domain="math", sampling={"presence_penalty": 0.4, "frequency_penalty": 0.2,
                                             "repetition_penalty": 1.15})
    sampling = settings_from_config(cfg).sampling
    assert (sampling.presence_penalty, sampling.frequency_penalty, sampling.repetition_penalty) == (0.4, 0.2, 1.15)
    with pytest.raises(ValidationError):
        RunConfig(domain="math", sampling={"presence_penalty": 3.0})
    with pytest.raises(ValidationError):
        RunConfig(domain="math", sampling={"repetition_penalty": 0.0})


def test_paths_are_resolved_on_the_driver_for_other_nodes(tmp_path):
    from pipelines.config import RunConfig, with_absolute_paths

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "q.txt").write_text("x\n")
    cfg = RunConfig.model_validate({
        "domain": "math",
        "domain_options": {"instances": "./data", "sources": ["generator"], "nested": {"file": "data/q.txt"}},
        "decontam": {"sources": [{"path": "data/q.txt"}]},
    })
    out = with_absolute_paths(cfg, tmp_path)
    assert out.domain_options == {"instances": str(tmp_path / "data"), "sources": ["generator"],
                                  "nested": {"file": str(tmp_path / "data" / "q.txt")}}
    assert out.decontam.sources[0].path == str(tmp_path / "data" / "q.txt")
    assert out.engine.model == cfg.engine.model  # "embedded" is a name, not a path
    assert with_absolute_paths(cfg, tmp_path / "elsewhere").domain_options == cfg.domain_options  # missing: as written
