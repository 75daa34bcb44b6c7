"""Synthesized tasks for the file-system environment (``environments.files``).

``files_tasks`` generates tasks from a seed: a random tree, then a ground-truth
action sequence; the instruction is written from the actions, and the expected
end state is whatever executing them produces (the verifier recomputes it from
``expected_actions``). Some tasks ask for information back (a line count, a
file's first line): those carry ``communicate_info``.
"""

from __future__ import annotations

import posixpath
import random
from typing import Any, Iterator

from environments.files import HOME, FilesEnv

_WORDS = "alpha budget draft final meeting notes plan report summary trip invoice recipe garden music".split()


def _random_tree(rng: random.Random) -> dict[str, str]:
    files: dict[str, str] = {}
    for folder, exts in (("docs", [".txt", ".md"]), ("logs", [".log"]), ("tmp", [".tmp", ".txt"]), ("notes", [".txt"])):
        for _ in range(rng.randint(2, 4)):
            name = f"{rng.choice(_WORDS)}-{rng.randint(1, 99)}{rng.choice(exts)}"
            lines = [f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {rng.randint(1, 999)}" for _ in range(rng.randint(1, 6))]
            files[f"{HOME}/{folder}/{name}"] = "\n".join(lines) + "\n"
    files[f"{HOME}/todo.txt"] = "buy milk\ncall mom\n"
    files[f"{HOME}/tmp/cache-{rng.randint(1, 99)}.tmp"] = "scratch\n"  # "clean tmp" always has work
    return files


# Easy kinds: one state-changing call whose every argument value the request spells out.
EASY_KINDS = ("delete_one", "make_folder", "rename")
KINDS = ("archive_logs", "clean_tmp", "rename", "todo", "count_lines", "first_line", "new_note",
         "delete_one", "make_folder")


def _template(rng: random.Random, files: dict[str, str], kinds: tuple[str, ...] = KINDS) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(request, ground-truth actions, info to communicate)."""
    def pick(folder: str) -> str:
        return rng.choice(sorted(p for p in files if p.startswith(f"{HOME}/{folder}/")))

    def act(name: str, **arguments: Any) -> dict[str, Any]:
        return {"name": name, "arguments": arguments}

    kind = rng.choice(list(kinds))
    if kind == "delete_one":
        path = pick(rng.choice(["tmp", "logs"]))
        return f"Please delete the file {path}.", [act("delete_file", path=path)], []
    if kind == "make_folder":
        path = f"{HOME}/{rng.choice(['projects', 'photos', 'backup', 'music', 'taxes'])}"
        return f"Please create a new folder {path}.", [act("make_dir", path=path)], []
    if kind == "archive_logs":
        logs = sorted(p for p in files if p.endswith(".log"))
        moves = [act("move", source=p, destination=f"{HOME}/archive") for p in logs]
        return (f"Please create the folder {HOME}/archive and move every .log file from {HOME}/logs into it.",
                [act("make_dir", path=f"{HOME}/archive"), *moves], [])
    if kind == "clean_tmp":
        tmp = sorted(p for p in files if p.startswith(f"{HOME}/tmp/") and p.endswith(".tmp"))
        return (f"Delete all the .tmp files in {HOME}/tmp, but keep any other files there.",
                [act("delete_file", path=p) for p in tmp], [])
    if kind == "rename":
        src = pick("docs")
        dst = posixpath.join(posixpath.dirname(src), "final-" + posixpath.basename(src))
        return f"Rename {src} to {dst}.", [act("move", source=src, destination=dst)], []
    if kind == "todo":
        item = f"{rng.choice(['email', 'pay', 'book', 'fix'])} {rng.choice(_WORDS)}"
        return (f"Add the line '{item}' to the end of my todo list ({HOME}/todo.txt).",
                [act("append_file", path=f"{HOME}/todo.txt", content=item + "\n")], [])
    if kind == "count_lines":
        path = pick("notes")
        count = str(len(files[path].splitlines()))
        return f"How many lines does {path} have? Don't change anything.", [act("read_file", path=path)], [count]
    if kind == "first_line":
        path = pick("docs")
        first = files[path].splitlines()[0]
        return f"What is the first line of {path}? Just tell me.", [act("read_file", path=path)], [first]
    word = rng.choice(_WORDS)
    path = f"{HOME}/notes/{word}.txt"
    files.pop(path, None)  # the request creates it; a clash would make the task ambiguous
    return (f"Create a note {path} containing exactly the text 'remember the {word}' (one line, with a newline at the end).",
            [act("write_file", path=path, content=f"remember the {word}\n")], [])


def files_tasks(seed: int, kinds: list[str] | tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
    """An endless, deterministic stream of task rows for ``seed``, drawn from ``kinds``
    (default: all of ``KINDS``; ``EASY_KINDS`` suits a small model)."""
    kinds = tuple(kinds or KINDS)
    if unknown := sorted(set(kinds) - set(KINDS)):
        raise ValueError(f"unknown files task kind(s) {unknown}; known: {list(KINDS)}")
    index = 0
    while True:
        rng = random.Random(f"files:{seed}:{index}")
        files = _random_tree(rng)
        request, actions, info = _template(rng, files, kinds)
        env = FilesEnv({"files": files})
        env.apply(actions, strict=True)  # ground truth must run cleanly on its own tree
        yield {"index": index, "request": request, "env_spec": {"files": files},
               "expected_actions": actions, "communicate_info": info}
        index += 1
