"""The guarded run's host side without Docker: the record is believed only with the right key, and the
collector is sent with its config filled in (and nothing else changed)."""

from __future__ import annotations

import ast
import hmac
import json

from sandboxes.pytest_guard import _CONFIG_LINE, _PLUGIN, _read_record, plugin_source


class FileBox:
    def __init__(self, files):
        self.files = files

    def get_file(self, path):
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]


def signed(key, body):
    return hmac.new(key, body, "sha256").hexdigest().encode() + b"\n" + body


def test_a_record_is_believed_only_under_its_key():
    key, other = b"k" * 32, b"o" * 32
    body = json.dumps({"outcomes": {"t::a": "passed"}, "tamper": []}).encode()
    assert _read_record(FileBox({"/r": signed(key, body)}), "/r", key) == (json.loads(body), None)
    assert _read_record(FileBox({"/r": signed(other, body)}), "/r", key) == (None, "forged record")
    forged = signed(key, body).replace(b'"passed"', b'"failed"')
    assert _read_record(FileBox({"/r": forged}), "/r", key) == (None, "forged record")
    assert _read_record(FileBox({"/r": b'{"outcomes": {}}'}), "/r", key) == (None, "forged record")
    assert _read_record(FileBox({}), "/r", key) == (None, "no record")


def test_the_collector_is_sent_with_its_config():
    config = {"key": "ab" * 32, "record": "/tmp/tf-x/r", "poison": ["t::a"]}
    text = plugin_source(config)
    assert _CONFIG_LINE not in text and f"_CONFIG = {config!r}\n" in text
    assert text.replace(f"_CONFIG = {config!r}\n", _CONFIG_LINE) == _PLUGIN.read_text()
    ast.parse(text)
