"""A small in-memory file system: our own environment (its tasks are synthesized by
``synthesizers.domains.tool_use.files_tasks``).

State: ``{"dirs": [...], "files": {path: text}}`` with absolute POSIX paths.
The initial tree travels in the task payload (``env_spec``), so any process can
rebuild it.
"""

from __future__ import annotations

import copy
import fnmatch
import posixpath
from typing import Any

from environments.base import EnvError, Environment, method_tool as _t, obj
from environments.common_tools import s

HOME = "/home/user"
MAX_FILE_CHARS = 20_000


def _norm(path: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise EnvError("path must be a non-empty string")
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
            raise EnvError(f"no such directory: {path}")

    def _need_file(self, path: str) -> str:
        if path not in self.state["files"]:
            hint = " (it is a directory)" if path in self.state["dirs"] else ""
            raise EnvError(f"no such file: {path}{hint}")
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
            raise EnvError(f"{path} is a directory")
        self._need_dir(posixpath.dirname(path))
        if len(content) > MAX_FILE_CHARS:
            raise EnvError(f"content too long (at most {MAX_FILE_CHARS} characters)")
        self.state["files"][path] = content
        return f"wrote {len(content)} characters to {path}"

    def append_file(self, path: str, content: str) -> str:
        path = _norm(path)
        old = self._need_file(path)
        return self.write_file(path, old + content)

    def make_dir(self, path: str) -> str:
        path = _norm(path)
        if path in self.state["files"]:
            raise EnvError(f"{path} is a file")
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
            raise EnvError(f"{dst} already exists")
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
