"""A local stand-in of the Hugging Face hub, just large enough for ``snapshot_download``.

The tests cannot reach the real hub, so this module serves a directory of repos over HTTP on
127.0.0.1 with the endpoints that ``huggingface_hub`` 2.4 calls when it downloads a snapshot of a model
or dataset repo. The layout on disk is::

    <root>/<repo_type>/<org>/<name>/<files>        repo_type: model | dataset

and every repo has exactly one commit, :data:`FAKE_SHA`, reachable by that hash or by the branch name
``main``. Endpoints (``{types}`` is ``models`` or ``datasets``; dataset resolve URLs start with
``/datasets/``):

``GET /api/{types}/{org}/{name}[/revision/{rev}]``
    repo info: ``id``, ``sha`` and ``siblings`` (``[{"rfilename": ...}]``). ``snapshot_download``
    calls it only when the revision is not a 40-hex commit hash (e.g. ``main``), to resolve it.
``GET /api/{types}/{org}/{name}/tree/{rev}[/{path}]?recursive=...``
    the file listing (``type``, ``path``, ``size``, ``oid`` = git blob sha1, ``lfs`` for LFS files).
    This, not ``siblings``, is what 2.4 uses to decide which files to fetch.
``HEAD|GET /[datasets/]{org}/{name}/resolve/{rev}/{path}``
    a regular file answers 200 with ``X-Repo-Commit``, ``ETag`` (the git blob sha1, quoted) and
    ``Content-Length``. An LFS file (suffix in :data:`LFS_SUFFIXES`) answers 302 to a second
    listener that plays the CDN, with ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``, as the
    real hub does: the client does not follow a redirect to another origin (another port counts),
    it takes the metadata from the 302 and GETs the ``Location``.
``HEAD|GET /__lfs/{sha256}`` (CDN listener only)
    the LFS file's bytes (``Range: bytes=N-`` honoured, so interrupted downloads can resume).

Xet storage is never offered: ``huggingface_hub`` uses xet only for files whose HEAD response carries
``X-Xet-Hash`` (and a refresh route) or whose tree entry has ``xetHash``; this server sends neither,
so plain HTTP is used even when ``hf_xet`` is installed.

Errors follow the hub: status 404, JSON body ``{"error": ...}`` and the ``X-Error-Code`` header
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) that ``huggingface_hub`` uses to pick the
exception class (``RepositoryNotFoundError``, ``RevisionNotFoundError``, ``RemoteEntryNotFoundError``);
without that header a 404 would be treated as "hub unreachable" and reported as a cache miss.

Every request is recorded in :attr:`HubStandin.requests` as ``(method, path)``.

:class:`SilentHub` is the other failure mode: a server that accepts every connection and never answers
(an overloaded proxy or a half-dead mirror), for testing timeouts.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

FAKE_SHA = "5ca1ab1e" * 5  # the one commit of every repo (40 hex digits)
BRANCHES = ("main",)
LFS_SUFFIXES = (".safetensors", ".parquet", ".bin", ".gguf", ".pt", ".model")
REPO_TYPES = {"models": "model", "datasets": "dataset"}
RESOLVE_PREFIXES = {"datasets": "dataset"}  # /datasets/<org>/<name>/resolve/...; models have none


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server_version = "lpbench-hub-standin/1"
    protocol_version = "HTTP/1.0"  # one request per connection: nothing left open at shutdown

    # ------------------------------------------------------------------ plumbing
    @property
    def hub(self) -> "HubStandin":
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False,
              length: int | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, obj, head: bool, headers: dict | None = None):
        self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}, head)

    def _error(self, status: int, code: str | None, message: str, head: bool, headers: dict | None = None):
        h = {"Content-Type": "application/json", "X-Error-Message": message, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), h, head)

    def _dispatch(self, head: bool):
        url = urlsplit(self.path)
        self.hub._record(self.command, self.path)
        # Split the raw path before unquoting: revisions such as "refs/pr/1" arrive as one %2F segment.
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if self.server.role == "cdn":  # type: ignore[attr-defined]
                if len(parts) == 2 and parts[0] == "__lfs":
                    return self._lfs_blob(parts[1], head)
                return self._error(404, None, "not found", head)
            if len(parts) >= 4 and parts[0] == "api" and parts[1] in REPO_TYPES:
                return self._api(REPO_TYPES[parts[1]], parts[2], parts[3], parts[4:], query, head)
            repo_type = "model"
            if parts and parts[0] in RESOLVE_PREFIXES:
                repo_type, parts = RESOLVE_PREFIXES[parts[0]], parts[1:]
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(repo_type, parts[0], parts[1], parts[3], "/".join(parts[4:]), head)
            return self._error(404, None, f"no such endpoint: {url.path}", head)
        except BrokenPipeError:
            pass

    # ------------------------------------------------------------------ repo helpers
    def _repo(self, repo_type: str, org: str, name: str, head: bool) -> Path | None:
        d = self.hub.repo_dir(repo_type, f"{org}/{name}")
        if d is None:
            self._error(404, "RepoNotFound", "Repository not found", head)
        return d

    def _commit(self, rev: str, head: bool) -> str | None:
        if rev == FAKE_SHA or rev in BRANCHES:
            return FAKE_SHA
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        return None

    # ------------------------------------------------------------------ /api
    def _api(self, repo_type, org, name, rest, query, head):
        repo = self._repo(repo_type, org, name, head)
        if repo is None:
            return
        if not rest or rest[0] == "revision":
            sha = self._commit(rest[1] if len(rest) > 1 else "main", head)
            if sha is None:
                return
            files = self.hub.files(repo)
            blobs = query.get("blobs", "").lower() == "true"
            siblings = [{"rfilename": p, **({"size": e["size"], "blobId": e["oid"]} if blobs else {}),
                         **({"lfs": e["lfs"]} if blobs and "lfs" in e else {})} for p, e in files.items()]
            return self._json({"id": f"{org}/{name}", "sha": sha, "private": False, "disabled": False,
                               "gated": False, "tags": [], "siblings": siblings}, head)
        if rest[0] == "tree" and len(rest) >= 2:
            if self._commit(rest[1], head) is None:
                return
            prefix = "/".join(rest[2:]).strip("/")
            recursive = query.get("recursive", "false").lower() == "true"
            return self._json(self.hub.tree(repo, prefix, recursive), head)
        return self._error(404, None, f"no such endpoint: {'/'.join(rest)}", head)

    # ------------------------------------------------------------------ /resolve
    def _resolve(self, repo_type, org, name, rev, path, head):
        repo = self._repo(repo_type, org, name, head)
        if repo is None:
            return
        sha = self._commit(rev, head)
        if sha is None:
            return
        entry = self.hub.files(repo).get(path)
        if entry is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"", head,
                               {"X-Repo-Commit": sha})
        common = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            lfs = entry["lfs"]
            location = f"{self.hub.cdn_endpoint}/__lfs/{lfs['oid']}"
            return self._send(302, b"", {**common, "Location": location, "ETag": f'"{entry["oid"]}"',
                                         "X-Linked-Etag": f'"{lfs["oid"]}"', "X-Linked-Size": lfs["size"]},
                              head)
        data = (repo / path).read_bytes()
        self._ranged(data, {**common, "ETag": f'"{entry["oid"]}"',
                            "Content-Type": "application/octet-stream"}, head)

    def _lfs_blob(self, sha256: str, head: bool):
        path = self.hub.lfs_object(sha256)
        if path is None:
            return self._error(404, None, "no such object", head)
        self._ranged(path.read_bytes(), {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes",
                                         "Content-Type": "application/octet-stream"}, head)

    def _ranged(self, data: bytes, headers: dict, head: bool):
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and not head:
            start_s, _, end_s = rng[6:].partition("-")
            start = int(start_s or 0)
            end = min(int(end_s), len(data) - 1) if end_s else len(data) - 1
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
            return self._send(206, data[start:end + 1], headers)
        self._send(200, data, headers, head, length=len(data))


class HubStandin:
    """Serve ``root`` as a hub on 127.0.0.1 (API + resolve) and a second port (the "CDN" for LFS files).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. :attr:`endpoint` is what to pass
    as ``endpoint=`` to ``huggingface_hub`` (or to ``lpbench`` config entries).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.endpoint = self.cdn_endpoint = ""

    # ------------------------------------------------------------------ content
    def add_repo(self, repo_id: str, files: dict[str, bytes | str | Path] | Path,
                 repo_type: str = "model") -> Path:
        """Create a repo from ``{path_in_repo: bytes | text | file}`` or by copying a directory."""
        if repo_type not in REPO_TYPES.values():
            raise ValueError(f"repo_type must be one of {sorted(REPO_TYPES.values())}")
        org, _, name = repo_id.partition("/")
        if not org or not name or "/" in name:
            raise ValueError(f"repo_id must be '<org>/<name>', got '{repo_id}'")
        dest = self.root / repo_type / org / name
        if dest.exists():
            shutil.rmtree(dest)
        if isinstance(files, (str, Path)) and Path(files).is_dir():
            shutil.copytree(files, dest)
            return dest
        for rel, content in dict(files).items():
            p = dest / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, p)
            elif isinstance(content, str):
                p.write_text(content)
            else:
                p.write_bytes(content)
        dest.mkdir(parents=True, exist_ok=True)
        return dest

    def repo_dir(self, repo_type: str, repo_id: str) -> Path | None:
        d = self.root / repo_type / repo_id
        return d if d.is_dir() else None

    @staticmethod
    def files(repo: Path) -> dict[str, dict]:
        """Tree entries of every file of a repo, keyed by path in repo (LFS by suffix)."""
        out = {}
        for p in sorted(repo.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(repo).as_posix()
            data = p.read_bytes()
            entry = {"type": "file", "path": rel, "size": len(data)}
            if p.suffix in LFS_SUFFIXES:
                sha256 = hashlib.sha256(data).hexdigest()
                pointer = _lfs_pointer(sha256, len(data))
                entry.update(oid=git_blob_sha1(pointer),
                             lfs={"oid": sha256, "size": len(data), "pointerSize": len(pointer)})
            else:
                entry["oid"] = git_blob_sha1(data)
            out[rel] = entry
        return out

    def tree(self, repo: Path, prefix: str, recursive: bool) -> list[dict]:
        files = self.files(repo)
        base = f"{prefix}/" if prefix else ""
        listing, dirs = [], set()
        for path, entry in files.items():
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            if recursive or "/" not in rest:
                listing.append(entry)
            if "/" in rest:  # every folder on the way down is an entry of its own
                segs = rest.split("/")[:-1]
                for i in range(1 if not recursive else len(segs)):
                    dirs.add(base + "/".join(segs[:i + 1]))
        listing += [{"type": "directory", "path": d, "size": 0, "oid": git_blob_sha1(d.encode())}
                    for d in sorted(dirs)]
        return listing

    def lfs_object(self, sha256: str) -> Path | None:
        for p in self.root.rglob("*"):
            if p.is_file() and p.suffix in LFS_SUFFIXES and hashlib.sha256(p.read_bytes()).hexdigest() == sha256:
                return p
        return None

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    # ------------------------------------------------------------------ server
    def start(self) -> "HubStandin":
        for role in ("hub", "cdn"):
            srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            srv.daemon_threads = True
            srv.hub, srv.role = self, role  # type: ignore[attr-defined]
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                 name=f"hub-standin-{role}", daemon=True)
            t.start()
            self._servers.append(srv)
            self._threads.append(t)
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> "HubStandin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SilentHub:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte; :attr:`endpoint` as for
    :class:`HubStandin`. :attr:`connections` counts the connections accepted."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-hub", daemon=True)
        self.connections = 0
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self._held.append(conn)  # keep it open, read nothing, answer nothing
            self.connections += 1

    def __enter__(self) -> "SilentHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self._held:
            c.close()
        self._sock.close()
