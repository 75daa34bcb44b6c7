"""Establish the tokenizer of a served model before a run writes anything.

A token-in/token-out rollout against a server sends prompt ids and keeps the ids
the server sampled, so the local tokenizer that renders those prompts (and that
the shards name) must be the server's own. ``establish_tokenizer``:

1. asks ``/v1/models`` for the served model (its ``id`` and ``root``, the path
   vLLM loaded it from);
2. picks candidates: ``engine.tokenizer`` when the config sets it (then only that
   one), else the served model's ``root``/``id`` where it loads on this machine,
   else the embedded model's folder — only ever as a candidate to be checked;
3. checks a candidate against the server (vLLM's ``/tokenize`` and
   ``/detokenize``): a probe text with every special token and unusual unicode
   must tokenize to the same ids, and every id of the vocabulary must decode alike
   (and no id past it may exist on the server). The server's chat template is
   compared too, but a difference is only a note: rollouts send ids rendered with
   the local template;
4. asks ``/v1/completions`` once, with a prompt of ids, whether the server returns
   the ids it saw and sampled (``return_token_ids``); if not, the run goes in
   text mode (said once on stderr).

A server without ``/tokenize`` (not vLLM) runs text mode, and only when
``engine.tokenizer`` names the tokenizer to cut rows with (rows are marked not
token-exact). Anything else that leaves the tokenizer unknown raises
``TokenizerNotEstablished`` with one line naming the fix.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

FIX = "set engine.tokenizer to the served model's tokenizer folder or hub id"

# Unusual text the probe adds to the special tokens: accents, CJK, emoji (incl. a ZWJ
# sequence), zero-width and combining characters, math, tabs, runs of spaces and newlines.
PROBE_TEXT = (
    "naïve café — 東京 と 서울 🤖👩‍💻\u200b e\u0301 Ω≈ç√∞ x² ½ \U0001F600 «ŧęšŧ» ǅ ﬁ"
    "\n\n\tdef f(x):\n\t\treturn x ** 2  # ok\r\n   trailing   \u00a0"
)
VOCAB_SLICE = 8192  # ids per /detokenize request when the vocabularies are compared
PROBE_CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "naïve 東京 🤖 — 2 + 2?"},
]


class TokenizerNotEstablished(ValueError):
    """The tokenizer of a served model could not be established; the message is one line."""


@dataclass(frozen=True)
class EstablishedTokenizer:
    path: str  # what AutoTokenizer.from_pretrained loads: an absolute local folder or a hub id
    source: str  # "engine.tokenizer" | "served model" | "embedded model"
    served_model: str  # the id /v1/models lists
    token_exact: bool  # the server takes prompt ids and returns the ids it saw and sampled
    checked: bool  # compared with the server's own tokenizer (False: a server without /tokenize)
    notes: tuple[str, ...] = field(default=())


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


def establish_tokenizer(
    base_url: str,
    candidate: str | None = None,
    *,
    embedded: str | Path | None = None,
    api_key: str | None = None,
    timeout_s: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    warn: Callable[[str], None] = _stderr,
) -> EstablishedTokenizer:
    """The served model's tokenizer, verified against the server (see the module docstring).

    ``candidate`` is the config's ``engine.tokenizer``; ``embedded`` the embedded model's
    folder (default: the converted one, if present), tried last and only if it matches.
    ``base_url`` may name several endpoints separated by commas (an endpoint pool): the
    tokenizer is established against the first, and every other must serve the same model id
    with the same tokenizer, or this raises naming the odd endpoint; the run is token-exact
    only if every endpoint returns ids."""
    urls = [u.strip() for u in base_url.split(",") if u.strip()]
    first = _establish_one(urls[0], candidate, embedded=embedded, api_key=api_key, timeout_s=timeout_s,
                           transport=transport, warn=warn)
    if len(urls) == 1:
        return first
    tokenizer = _load(first.path) if first.checked else None
    exact = first.token_exact
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)), headers=headers,
                      transport=transport) as client:
        for url in urls[1:]:
            root, api = _urls(url)
            server = _Server(client, root, api, url)
            problem, url_exact = _unlike(server, first, tokenizer)
            if problem is not None:
                raise TokenizerNotEstablished(
                    f"endpoint {url} {problem}, unlike {urls[0]}: every endpoint in engine.model must serve the "
                    f"same model and tokenizer (fix or drop {url})")
            if exact and not url_exact:
                warn(f"endpoint {url} cannot return token ids: rollouts on every endpoint run in text mode and rows "
                     "are marked not token-exact")
            exact = exact and url_exact
    return EstablishedTokenizer(path=first.path, source=first.source, served_model=first.served_model,
                                token_exact=exact, checked=first.checked, notes=first.notes)


def _unlike(server: "_Server", first: EstablishedTokenizer, tokenizer: Any) -> tuple[str | None, bool]:
    """How ``server`` differs from the first endpoint (None: it does not), and whether it returns ids."""
    served_id, _ = server.model()  # one that does not answer raises, naming it
    if served_id != first.served_model:
        return f"serves {served_id!r}, not {first.served_model!r}", False
    if tokenizer is None:  # the first endpoint has no /tokenize: the model id is all there is to compare
        return None, False
    if not server.has_tokenize(served_id):
        return "has no /tokenize to check its tokenizer with", False
    problem = server.mismatch(served_id, tokenizer)
    if problem is not None:
        return f"has another tokenizer ({problem})", False
    return None, (server.returns_token_ids(served_id, tokenizer)[0] if first.token_exact else False)


def _establish_one(
    base_url: str,
    candidate: str | None,
    *,
    embedded: str | Path | None,
    api_key: str | None,
    timeout_s: float,
    transport: httpx.BaseTransport | None,
    warn: Callable[[str], None],
) -> EstablishedTokenizer:
    root, api = _urls(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)), headers=headers,
                      transport=transport) as client:
        server = _Server(client, root, api, base_url)
        served_id, served_root = server.model()
        if not server.has_tokenize(served_id):
            if not candidate:
                raise TokenizerNotEstablished(
                    f"cannot establish the tokenizer of {served_id!r} at {base_url}: the server has no /tokenize "
                    f"(not vLLM) and engine.tokenizer is not set: {FIX} (rows then run in text mode)"
                )
            tokenizer = _load(candidate)
            if tokenizer is None:
                raise TokenizerNotEstablished(f"engine.tokenizer {candidate!r} does not load on this machine: {FIX}")
            warn(f"{base_url} has no /tokenize (not vLLM): rollouts run in text mode, rows are tokenised with "
                 f"engine.tokenizer {candidate} and marked not token-exact")
            return EstablishedTokenizer(path=_as_path(candidate), source="engine.tokenizer", served_model=served_id,
                                        token_exact=False, checked=False)

        candidates = _candidates(candidate, served_id, served_root, embedded)
        tried: list[str] = []
        for name, source in candidates:
            tokenizer = _load(name)
            if tokenizer is None:
                if source == "engine.tokenizer":
                    raise TokenizerNotEstablished(f"engine.tokenizer {name!r} does not load on this machine: {FIX}")
                continue
            problem = server.mismatch(served_id, tokenizer)
            if problem is not None:
                if source == "engine.tokenizer":
                    raise TokenizerNotEstablished(
                        f"engine.tokenizer {name!r} does not match the tokenizer of {served_id!r} at {base_url} "
                        f"({problem}): {FIX}"
                    )
                tried.append(f"{source} {name} ({problem})")
                continue
            notes = []
            chat = server.chat_mismatch(served_id, tokenizer)
            if chat is not None:
                notes.append(f"the server's chat template renders differently from {name}'s ({chat}); "
                             "rollouts render with the local template")
            exact, why = server.returns_token_ids(served_id, tokenizer)
            if not exact:
                warn(f"{base_url} cannot return token ids ({why}): rollouts run in text mode and rows are "
                     "marked not token-exact")
                notes.append(f"text mode: {why}")
            return EstablishedTokenizer(path=_as_path(name), source=source, served_model=served_id,
                                        token_exact=exact, checked=True, notes=tuple(notes))
        detail = "; ".join(tried) if tried else "no tokenizer for it loads on this machine"
        raise TokenizerNotEstablished(f"cannot establish the tokenizer of {served_id!r} at {base_url} ({detail}): {FIX}")


def _urls(base_url: str) -> tuple[str, str]:
    base = base_url.rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    return root, root + "/v1"


def _candidates(candidate: str | None, served_id: str, served_root: str | None,
                embedded: str | Path | None) -> list[tuple[str, str]]:
    if candidate:
        return [(candidate, "engine.tokenizer")]
    out: list[tuple[str, str]] = []
    for name in (served_root, served_id):
        if name and name not in [n for n, _ in out]:
            out.append((name, "served model"))
    if embedded is None:
        from synthesizers.engines.model_store import default_model_dir, is_complete

        folder = default_model_dir()
        embedded = folder if is_complete(folder) else None
    if embedded is not None and str(embedded) not in [n for n, _ in out]:
        out.append((str(embedded), "embedded model"))
    return out


def _as_path(name: str) -> str:
    """An absolute folder for a local tokenizer (workers may run elsewhere), a hub id as given."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def _load(name: str) -> Any | None:
    """The tokenizer at a local folder, or a hub id already in the local cache (never downloads)."""
    from transformers import AutoTokenizer

    path = Path(name).expanduser()
    try:
        if path.is_dir():
            return AutoTokenizer.from_pretrained(str(path))
        if path.is_absolute() or name.startswith((".", "~")):
            return None  # a folder that is not on this machine
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - not loadable here: not a candidate
        return None


def probe_text(tokenizer: Any) -> str:
    """``PROBE_TEXT`` with every special and added token of ``tokenizer`` woven in."""
    specials = list(dict.fromkeys([*(getattr(tokenizer, "all_special_tokens", None) or []),
                                   *[str(t) for t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values()]]))
    words = PROBE_TEXT.split(" ")
    parts = []
    for i, word in enumerate(words):
        parts.append(word)
        if specials:
            parts.append(specials[i % len(specials)])
    return " ".join(parts) + "".join(specials)


def _ids(encoded: Any) -> list[int]:
    if hasattr(encoded, "keys"):  # BatchEncoding (transformers 5's apply_chat_template(tokenize=True))
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


class _Server:
    def __init__(self, client: httpx.Client, root: str, api: str, shown: str):
        self.client, self.root, self.api, self.shown = client, root, api, shown

    def _post(self, url: str, payload: dict[str, Any]) -> httpx.Response | None:
        try:
            return self.client.post(url, json=payload)
        except httpx.HTTPError:
            return None

    def model(self) -> tuple[str, str | None]:
        try:
            response = self.client.get(self.api + "/models")
            response.raise_for_status()
            models = response.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise TokenizerNotEstablished(
                f"no OpenAI-compatible server answers at {self.shown} ({type(exc).__name__}): start it or fix engine.model"
            ) from None
        if not models or not models[0].get("id"):
            raise TokenizerNotEstablished(f"{self.api}/models lists no model: start the server with a model")
        return str(models[0]["id"]), models[0].get("root")

    def tokenize(self, payload: dict[str, Any]) -> list[int] | None:
        response = self._post(self.root + "/tokenize", payload)
        if response is None or response.status_code != 200:
            return None
        try:
            tokens = response.json().get("tokens")
        except (ValueError, AttributeError):
            return None
        return [int(t) for t in tokens] if isinstance(tokens, list) else None

    def detokenize(self, model: str, ids: list[int]) -> str | None:
        response = self._post(self.root + "/detokenize", {"model": model, "tokens": ids})
        if response is None or response.status_code != 200:
            return None
        try:
            text = response.json().get("prompt")
        except (ValueError, AttributeError):
            return None
        return text if isinstance(text, str) else None

    def has_tokenize(self, model: str) -> bool:
        return self.tokenize({"model": model, "prompt": "hello", "add_special_tokens": False}) is not None

    def mismatch(self, model: str, tokenizer: Any) -> str | None:
        """Why ``tokenizer`` is not the server's, or None when they agree."""
        text = probe_text(tokenizer)
        served = self.tokenize({"model": model, "prompt": text, "add_special_tokens": False})
        if served is None:
            return "the server's /tokenize refused the probe text"
        local = _ids(tokenizer.encode(text, add_special_tokens=False))
        if served != local:
            at = next((i for i, (a, b) in enumerate(zip(served, local)) if a != b), min(len(served), len(local)))
            return f"the probe text tokenizes differently from token {at} on ({len(served)} ids served, {len(local)} local)"
        # The whole vocabulary, a slice per request: every id must decode alike (a permuted or
        # edited vocabulary the probe text happens not to touch shows here).
        size = len(tokenizer)
        for start in range(0, size, VOCAB_SLICE):
            ids = list(range(start, min(size, start + VOCAB_SLICE)))
            served_text = self.detokenize(model, ids)
            if served_text is None:
                break  # no /detokenize: the probe text is the check
            if served_text != tokenizer.decode(ids, skip_special_tokens=False):
                return f"ids {ids[0]}..{ids[-1]} decode differently (vocabulary of {size} locally)"
        else:
            if self.detokenize(model, [size]):  # the server knows an id past the local vocabulary
                return f"the server's vocabulary is larger than the local {size}"
        return None

    def chat_mismatch(self, model: str, tokenizer: Any) -> str | None:
        if not getattr(tokenizer, "chat_template", None):
            return "no local chat template"
        served = self.tokenize({"model": model, "messages": PROBE_CHAT, "add_generation_prompt": True})
        if served is None:
            return "the server's /tokenize refused the probe chat"
        try:
            local = _ids(tokenizer.apply_chat_template(PROBE_CHAT, add_generation_prompt=True, tokenize=True))
        except Exception as exc:  # noqa: BLE001
            return f"the local template fails: {type(exc).__name__}"
        return None if served == local else f"{len(served)} ids served, {len(local)} local"

    def returns_token_ids(self, model: str, tokenizer: Any) -> tuple[bool, str]:
        """Whether ``/v1/completions`` takes a prompt of ids and returns the ids it saw and sampled."""
        prompt = _ids(tokenizer.encode("Hello", add_special_tokens=False)) or [0]
        payload = {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": 0,
                   "return_token_ids": True}
        response = self._post(self.api + "/completions", payload)
        if response is None:
            return False, "the completions request failed"
        if response.status_code != 200:
            return False, f"completions with a prompt of ids: HTTP {response.status_code}"
        try:
            choice = (response.json().get("choices") or [{}])[0]
        except (ValueError, AttributeError):
            return False, "completions answered no JSON"
        if not isinstance(choice.get("token_ids"), list):
            return False, "completions returned no token_ids"
        echoed = choice.get("prompt_token_ids")
        if isinstance(echoed, list) and [int(i) for i in echoed] != prompt:
            return False, "the server changed the prompt ids"
        return True, ""
