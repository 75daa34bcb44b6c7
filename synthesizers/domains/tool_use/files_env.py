"""A small in-memory file system: our own environment, with synthesized tasks.

State: ``{"dirs": [...], "files": {path: text}}`` with absolute POSIX paths.
The initial tree travels in the task payload (``env_spec``), so any process can
rebuild it. ``files_tasks`` generates tasks from a seed: a random tree, then a
ground-truth action sequence; the instruction is written from the actions, and
the expected end state is whatever executing them produces (the verifier
recomputes it from ``expected_actions``). Some tasks ask for information back
(a line count, a file's first line): those carry ``communicate_info``.
"""

from __future__ import annotations

import copy
import fnmatch
import posixpath
import random
from typing import Any, Iterator

from synthesizers.domains.base import ToolError
from synthesizers.domains.tool_use.common_tools import s
from synthesizers.domains.tool_use.env import EnvTool, Environment, obj

HOME = "/home/user"
MAX_FILE_CHARS = 20_000


def _norm(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise ToolError("path must be a non-empty string")
    path = path.strip()
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(HOME, path))
    return "/" if full in ("", "//") else full


class FilesEnv(Environment):
    name = "files"

    def reset(self) -> None:
        spec = copy.deepcopy(self.spec)
        files = spec.get("files", {})
        dirs = set(spec.get("dirs", [])) | {"/", HOME}
        for path in list(files) + list(dirs):
            while path not in ("/", ""):  # every parent of every entry exists
                path = posixpath.dirname(path)
                dirs.add(path or "/")
        self.state = {"dirs": sorted(dirs), "files": dict(files)}

    def snapshot(self) -> Any:
        return {"dirs": sorted(self.state["dirs"]), "files": self.state["files"]}

    def _need_dir(self, path: str) -> None:
        if path not in self.state["dirs"]:
            raise ToolError(f"no such directory: {path}")

    def _need_file(self, path: str) -> str:
        if path not in self.state["files"]:
            hint = " (it is a directory)" if path in self.state["dirs"] else ""
            raise ToolError(f"no such file: {path}{hint}")
        return self.state["files"][path]

    def list_dir(self, path: str) -> str:
        path = _norm(path)
        self._need_dir(path)
        kids = {posixpath.basename(p) + ("/" if p in self.state["dirs"] else "")
                for p in [*self.state["dirs"], *self.state["files"]] if posixpath.dirname(p) == path and p != path}
        return "\n".join(sorted(kids)) or "(empty directory)"

    def read_file(self, path: str) -> str:
        return self._need_file(_norm(path))

    def write_file(self, path: str, content: str) -> str:
        path = _norm(path)
        if path in self.state["dirs"]:
            raise ToolError(f"{path} is a directory")
        self._need_dir(posixpath.dirname(path))
        if len(content) > MAX_FILE_CHARS:
            raise ToolError(f"content too long (at most {MAX_FILE_CHARS} characters)")
        self.state["files"][path] = content
        return f"wrote {len(content)} characters to {path}"

    def append_file(self, path: str, content: str) -> str:
        path = _norm(path)
        old = self._need_file(path)
        return self.write_file(path, old + content)

    def make_dir(self, path: str) -> str:
        path = _norm(path)
        if path in self.state["files"]:
            raise ToolError(f"{path} is a file")
        self._need_dir(posixpath.dirname(path))
        if path not in self.state["dirs"]:
            self.state["dirs"] = sorted([*self.state["dirs"], path])
        return f"directory {path} exists"

    def move(self, source: str, destination: str) -> str:
        src, dst = _norm(source), _norm(destination)
        content = self._need_file(src)
        if dst in self.state["dirs"]:
            dst = posixpath.join(dst, posixpath.basename(src))
        self._need_dir(posixpath.dirname(dst))
        if dst in self.state["files"] and dst != src:
            raise ToolError(f"{dst} already exists")
        del self.state["files"][src]
        self.state["files"][dst] = content
        return f"moved {src} to {dst}"

    def delete_file(self, path: str) -> str:
        path = _norm(path)
        self._need_file(path)
        del self.state["files"][path]
        return f"deleted {path}"

    def find_files(self, pattern: str, directory: str = HOME) -> str:
        base = _norm(directory)
        self._need_dir(base)
        hits = [p for p in sorted(self.state["files"]) if p.startswith(base.rstrip("/") + "/")
                and fnmatch.fnmatch(posixpath.basename(p), pattern)]
        return "\n".join(hits) or "(no match)"


def _t(name: str, description: str, parameters: dict[str, Any], writes: bool = False) -> EnvTool:
    return EnvTool(name, description, parameters, lambda env, **kw: getattr(env, name)(**kw), writes)


PATH = s(f"A path; relative paths start at {HOME}.")
TOOLS = [
    _t("list_dir", "List a directory (sub-directories end with '/').", obj(path=PATH)),
    _t("read_file", "Read a text file.", obj(path=PATH)),
    _t("find_files", "Find files whose name matches a glob pattern such as '*.log', under a directory.",
       obj(required=["pattern"], pattern=s("Glob on the file name."), directory=PATH)),
    _t("write_file", "Create or overwrite a text file.", obj(path=PATH, content=s("The full text.")), writes=True),
    _t("append_file", "Append text to the end of an existing file.", obj(path=PATH, content=s("Text to add.")), writes=True),
    _t("make_dir", "Create a directory (its parent must exist).", obj(path=PATH), writes=True),
    _t("move", "Move or rename a file; into a directory if the destination is one.",
       obj(source=PATH, destination=PATH), writes=True),
    _t("delete_file", "Delete a file.", obj(path=PATH), writes=True),
]
FilesEnv.tool_list = TOOLS

# --------------------------------------------------------------------------- tasks
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
