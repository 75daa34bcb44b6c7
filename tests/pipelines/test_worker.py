"""The worker's per-image sandbox pools: lazily made, one per image, all closed."""

from __future__ import annotations

import contextlib
import threading

import pytest

from pipelines.worker import ImagePools


class FakePool:
    def __init__(self, image: str):
        self.image = image
        self.closed = False

    @contextlib.contextmanager
    def acquire(self):
        yield self.image  # the "box" says which image it is from

    def close(self):
        self.closed = True


def test_pools_are_made_lazily_one_per_image_and_all_closed():
    made: list[str] = []

    def make(image: str) -> FakePool:
        made.append(image)
        return FakePool(image)

    pools = ImagePools(lambda: "base", make)
    assert made == []
    boxes = []
    for image in ("img-a", None, "img-b", "img-a", "base"):
        with pools.pool_for(image).acquire() as box:
            boxes.append(box)
    assert boxes == ["img-a", "base", "img-b", "img-a", "base"]  # None: the base image
    assert made == ["img-a", "base", "img-b"] and pools.images == made  # one pool per image, however many asks
    created = [pools.pool_for(i) for i in made]
    pools.close()
    assert all(p.closed for p in created)
    with pytest.raises(RuntimeError, match="closed"):
        pools.pool_for("img-a")


def test_concurrent_first_use_makes_one_pool():
    made: list[str] = []
    gate = threading.Barrier(8)

    def make(image: str) -> FakePool:
        made.append(image)
        return FakePool(image)

    pools = ImagePools(lambda: "base", make)

    def hit():
        gate.wait()
        pools.pool_for("img")

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["img"]


def test_verifiers_sit_behind_the_repetition_gate_unless_the_domain_or_config_says_no():
    from pipelines.worker import make_verifier
    from synthesizers.domains.registry import get_domain
    from verifiers.repetition import RepetitionGate

    gated = make_verifier("math", "default", domain=get_domain("math"), options={"arithmetic": "flag"})
    assert isinstance(gated, RepetitionGate) and gated.inner.arithmetic == "flag"
    code = get_domain("code")
    assert not isinstance(make_verifier("code", "repo", domain=code), RepetitionGate)  # code: off by default
    assert isinstance(make_verifier("code", "repo", domain=code, repetition=True), RepetitionGate)
    assert not isinstance(make_verifier("math", "default", domain=get_domain("math"), repetition=False),
                          RepetitionGate)


def test_make_verifier_takes_the_domains_options_with_the_config_overriding_key_by_key():
    from pipelines.worker import make_verifier
    from synthesizers.domains.registry import get_domain

    domain = get_domain("deep-research", {"f1_threshold": 0.5, "require_retrieved": False})
    judged = make_verifier("deep-research", "default", domain=domain).inner
    assert (judged.threshold, judged.require_retrieved) == (0.5, False)
    overridden = make_verifier("deep-research", "default", domain=domain, options={"threshold": 0.9}).inner
    assert (overridden.threshold, overridden.require_retrieved) == (0.9, False)  # the other key stays the domain's
    default = make_verifier("deep-research", "default", domain=get_domain("deep-research")).inner
    assert (default.threshold, default.require_retrieved) == (0.8, True)
    acot = make_verifier("agentic-cot", "sandboxed", domain=get_domain("agentic-cot", {"allow_stray": True})).inner
    assert acot.allow_stray is True and acot.allow_repeats is False


def _not_prefix_stable(tokenizer):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = ("{%- for m in messages[-2:] -%}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{%- endfor -%}{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}")
    return tok


def test_a_template_that_cannot_be_extended_runs_text_mode(embedded_tokenizer):
    from pipelines.worker import _check_token_mode
    from synthesizers.engines.base import supports_tokens
    from tests.fakes import TokenFakeEngine

    good = TokenFakeEngine(embedded_tokenizer, ["x"])
    _check_token_mode(good)
    assert supports_tokens(good)
    bad = TokenFakeEngine(_not_prefix_stable(embedded_tokenizer), ["x"])
    _check_token_mode(bad)
    assert not supports_tokens(bad)


def test_the_run_says_so_in_one_line(embedded_tokenizer, tmp_path, capsys, monkeypatch):
    from pipelines import run as run_module

    _not_prefix_stable(embedded_tokenizer).save_pretrained(tmp_path / "tok")
    run_module._say_if_not_incremental(str(tmp_path / "tok"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "token-exact rollouts are off" in err and "prefix-stable" in err
    run_module._say_if_not_incremental(embedded_tokenizer.name_or_path)
    assert capsys.readouterr().err == ""
