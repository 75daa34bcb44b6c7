"""Unified diffs of file trees: make, parse, apply strictly, split, and frame in text.

Stdlib only, on purpose: a caller may copy this very file into a sandbox and
run ``python3 tree_diff.py BASE_DIR WORK_DIR`` to print the diff of two trees
there, then parse and apply that diff on the host. One
implementation on both sides means a diff the tool prints always applies.

``apply_patch`` is strict (every context and removed line must match): a patch
that does not apply to the pristine buggy checkout is a failed submission, not
a guess.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field

NO_EOL = "\\ No newline at end of file"
PATCH_BEGIN, PATCH_END = "<patch>\n", "</patch>"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".tox", ".eggs", "build", "dist", ".mypy_cache"}
MAX_DIFF_FILE_BYTES = 2_000_000  # bigger files are data, not code an agent fixes


class PatchError(ValueError):
    """The diff is malformed or does not apply."""


@dataclass
class FilePatch:
    old_path: str | None  # None: file added
    new_path: str | None  # None: file deleted
    hunks: list[list[str]] = field(default_factory=list)  # each: lines with their ' '/'-'/'+' prefix
    starts: list[int] = field(default_factory=list)  # 1-based old start line of each hunk

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def file_diff(path: str, old: str | None, new: str | None, context: int = 3) -> str:
    """Unified diff of one file (``None`` = absent), with no-newline-at-EOF markers."""
    if old == new:
        return ""
    a = _lines(old or "")
    b = _lines(new or "")
    out = []
    for line in difflib.unified_diff(a, b, "/dev/null" if old is None else f"a/{path}",
                                     "/dev/null" if new is None else f"b/{path}", n=context):
        out.append(line if line.endswith("\n") else line + "\n" + NO_EOL + "\n")
    return "".join(out)


def make_diff(old: dict[str, str], new: dict[str, str]) -> str:
    return "".join(file_diff(p, old.get(p), new.get(p)) for p in sorted(set(old) | set(new)))


def parse_diff(text: str) -> list[FilePatch]:
    patches: list[FilePatch] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("--- "):
            i += 1  # "diff --git" headers, index lines, prose: ignored
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            raise PatchError(f"line {i + 1}: '---' without '+++'")
        old, new = _header_path(line[4:]), _header_path(lines[i + 1][4:])
        fp = FilePatch(old, new)
        i += 2
        while i < len(lines) and lines[i].startswith("@@"):
            m = _HUNK.match(lines[i])
            if not m:
                raise PatchError(f"line {i + 1}: bad hunk header")
            old_left = int(m.group(2) if m.group(2) is not None else 1)
            new_left = int(m.group(4) if m.group(4) is not None else 1)
            fp.starts.append(int(m.group(1)))
            hunk: list[str] = []
            i += 1
            while i < len(lines) and (old_left > 0 or new_left > 0):
                body = lines[i]
                tag = body[:1]
                if body.startswith(NO_EOL):
                    _strip_eol(hunk)
                elif tag == " " or body in ("\n", "\r\n"):  # some tools drop the space of blank context
                    hunk.append(" " + (body[1:] if tag == " " else body))
                    old_left, new_left = old_left - 1, new_left - 1
                elif tag == "-":
                    hunk.append(body)
                    old_left -= 1
                elif tag == "+":
                    hunk.append(body)
                    new_left -= 1
                else:
                    raise PatchError(f"line {i + 1}: unexpected line in hunk")
                i += 1
            if old_left or new_left:
                raise PatchError(f"{fp.path}: hunk is shorter than its header says")
            if i < len(lines) and lines[i].startswith(NO_EOL):
                _strip_eol(hunk)
                i += 1
            fp.hunks.append(hunk)
        patches.append(fp)
    return patches


def split_diff(text: str) -> list[tuple[str, str]]:
    """[(path, that file's part of the diff)] in order; text before the first header is dropped."""
    lines = text.splitlines(keepends=True)
    starts = [i for i in range(len(lines) - 1) if lines[i].startswith("--- ") and lines[i + 1].startswith("+++ ")]
    out = []
    for k, i in enumerate(starts):
        chunk = "".join(lines[i:starts[k + 1] if k + 1 < len(starts) else len(lines)])
        old, new = _header_path(lines[i][4:]), _header_path(lines[i + 1][4:])
        out.append((new or old or "", chunk))
    return out


def _strip_eol(hunk: list[str]) -> None:
    if hunk and hunk[-1].endswith("\n"):
        hunk[-1] = hunk[-1][:-1]


def _header_path(raw: str) -> str | None:
    name = raw.rstrip("\n").split("\t")[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        name = name[2:]
    return os.path.normpath(name).replace(os.sep, "/")


def apply_file_patch(original: str | None, fp: FilePatch) -> str | None:
    """The new content of one file (None: deleted); raises PatchError on any mismatch."""
    if fp.new_path is None:
        return None
    src = _lines(original or "")
    out: list[str] = []
    pos = 0  # index into src of the next line not yet copied
    for start, hunk in zip(fp.starts, fp.hunks):
        old_part = [h[1:] for h in hunk if h[:1] in (" ", "-")]
        at = max(start - 1, 0) if old_part else start  # a pure insertion at line N goes after it
        if at < pos or src[at:at + len(old_part)] != old_part:
            raise PatchError(f"{fp.path}: hunk at line {start} does not apply")
        out.extend(src[pos:at])
        out.extend(h[1:] for h in hunk if h[:1] in (" ", "+"))
        pos = at + len(old_part)
    out.extend(src[pos:])
    return "".join(out)


def apply_patch(files: dict[str, str], patches: list[FilePatch]) -> dict[str, str | None]:
    """{path: new content or None for deleted} for every file the patches touch."""
    changed: dict[str, str | None] = {}
    for fp in patches:
        if fp.old_path is not None and fp.old_path not in files and fp.old_path not in changed:
            raise PatchError(f"{fp.old_path}: no such file in the checkout")
        base = changed[fp.old_path] if fp.old_path in changed else files.get(fp.old_path or "")
        changed[fp.path] = apply_file_patch(base, fp)
        if fp.old_path and fp.new_path and fp.old_path != fp.new_path:
            changed[fp.old_path] = None  # a rename
    return changed


def read_tree(root: str) -> dict[str, str]:
    """Text files under ``root`` (relative posix paths); binaries and caches skipped."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, name)
            try:
                if os.path.islink(full) or os.path.getsize(full) > MAX_DIFF_FILE_BYTES:
                    continue
                with open(full, encoding="utf-8") as f:
                    out[os.path.relpath(full, root).replace(os.sep, "/")] = f.read()
            except (UnicodeDecodeError, OSError):
                continue
    return out


def frame_diff(diff: str) -> str:
    """The diff between markers, so it can travel inside prose (``unframe_diff`` reads it back)."""
    return f"{PATCH_BEGIN}{diff}{PATCH_END}"


def unframe_diff(text: str) -> str | None:
    """The diff framed in ``text`` by ``frame_diff`` (None: no frame)."""
    start, end = text.find(PATCH_BEGIN), text.rfind(PATCH_END)
    if start < 0 or end < start:
        return None
    return text[start + len(PATCH_BEGIN):end]


if __name__ == "__main__":  # in the sandbox: python3 tree_diff.py BASE WORK -> the diff on stdout
    sys.stdout.write(make_diff(read_tree(sys.argv[1]), read_tree(sys.argv[2])))
