"""The manifest's tokenizer: a loadable name plus a hash of the tokenizer files."""

from __future__ import annotations

import hashlib
import shutil

from pipelines.tokenizer_identity import EMBEDDED_HUB_ID, TOKENIZER_FILES, tokenizer_identity


def test_the_embedded_folder_is_named_by_its_hub_id(model_dir):
    name, sha = tokenizer_identity(model_dir)
    assert name == EMBEDDED_HUB_ID
    assert len(sha) == 64 and tokenizer_identity(str(model_dir)) == (name, sha)


def test_another_folder_is_named_by_its_path_and_hashed_by_content(model_dir, tmp_path):
    copy = tmp_path / "tok"
    copy.mkdir()
    for name in TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, copy / name)
    name, sha = tokenizer_identity(copy)
    assert name == str(copy.resolve())
    assert sha == tokenizer_identity(model_dir)[1]  # same files, same hash, wherever they sit
    (copy / "chat_template.jinja").write_text("{{ 'other' }}")
    assert tokenizer_identity(copy)[1] != sha  # the template is part of the identity
    expected = hashlib.sha256()
    for f in TOKENIZER_FILES:
        if (copy / f).is_file():
            expected.update(f"{f}\0{hashlib.sha256((copy / f).read_bytes()).hexdigest()}\n".encode())
    assert tokenizer_identity(copy)[1] == expected.hexdigest()


def test_a_hub_id_not_cached_keeps_its_name_and_no_hash():
    assert tokenizer_identity("nobody-here/no-such-tokenizer") == ("nobody-here/no-such-tokenizer", "")
