"""A stub of the Hugging Face Hub HTTP API for tests: dataset repositories in memory, on 127.0.0.1.

It answers what huggingface_hub 2.x (HfApi: create_repo, create_branch, preupload_lfs_files, create_commit,
repo_info, list_repo_files, hf_hub_download) and `datasets.load_dataset("ns/name")` send, with the
responses they need (see ../shared/HUB_NOTES.md for the protocol):

    with HubStub() as hub, hub_client(monkeypatch, hub, tmp_path):
        ...                                    # huggingface_hub / datasets now talk to hub.url
        hub.fail("commit", 412)                # answer the next commit with 412
        hub.before("commit", lambda: hub.commit("ns/name", {"other.txt": b"x"}))  # a concurrent writer
        hub.commits("ns/name"), hub.files("ns/name"), hub.readme("ns/name"), hub.calls("preupload")

Every repository starts, like on the Hub, with an initial commit holding `.gitattributes`. A commit
is a full map path -> StoredFile; branches point at commits. Commits check `parentCommit` (412 when
it is not the branch head). Uploads go through the LFS basic transfer (batch, PUT, verify); Xet is
not stubbed, so clients must run with HF_HUB_DISABLE_XET (hub_client sets it).

Unknown routes are answered 404 and listed in `hub.unhandled`, so a test can see what a new client
version asks for.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".zst", ".gz")
REGULAR_MAX_BYTES = 10 * 1024 * 1024
DATE = "2024-01-01T00:00:00.000Z"


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.content)}\n".encode()
        )

    @property
    def oid(self) -> str:
        """The git blob id (of the LFS pointer for an LFS file), as the tree listing shows it."""
        return git_blob_sha1(self.pointer if self.lfs else self.content)

    @property
    def upload_oid(self) -> str:
        """The id preupload reports for an unchanged file: sha256 for LFS, the git blob sha1 otherwise."""
        return self.sha256 if self.lfs else git_blob_sha1(self.content)


@dataclass
class Commit:
    sha: str
    parent: str | None
    summary: str
    description: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    """branch (or refs/pr/N) -> commit sha."""

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None

    def history(self, ref: str = "main") -> list[Commit]:
        """The commits reachable from `ref`, oldest first."""
        out, sha = [], self.refs.get(ref)
        while sha is not None:
            out.append(self.commits[sha])
            sha = self.commits[sha].parent
        return out[::-1]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    endpoint: str
    """The route's name ("commit", "preupload", ...), or "unhandled"."""
    status: int
    authorization: str | None


@dataclass
class _Failure:
    endpoint: str
    status: int
    times: int
    message: str
    headers: dict[str, str]


class HubError(Exception):
    """Raised by a handler: answered as `status` with the Hub's X-Error-Code / X-Error-Message headers."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


_REPO = r"(?P<repo>[^/]+/[^/]+?)"
_REV = r"(?P<rev>[^/]+)"


class HubStub:
    """The Hub, in memory, served on 127.0.0.1 by a ThreadingHTTPServer on a free port."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        """sha256 -> content of every LFS object uploaded (and verified)."""
        self.requests: list[Request] = []
        self.unhandled: list[str] = []
        self.validated_yaml: list[str] = []
        self.errors: list[str] = []
        """Tracebacks of stub bugs (answered 500): a test should see this list empty."""
        self._failures: list[_Failure] = []
        self._hooks: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.RLock()
        self._nonce = uuid.uuid4().hex
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        routes: list[tuple[str, str, str, Callable[..., Reply]]] = [
            ("POST", r"/api/repos/create", "create_repo", self._create_repo),
            ("GET", rf"/api/datasets/{_REPO}", "repo_info", self._repo_info),
            ("GET", rf"/api/datasets/{_REPO}/revision/{_REV}", "repo_info", self._repo_info),
            ("POST", rf"/api/datasets/{_REPO}/branch/(?P<branch>[^/]+)", "create_branch", self._create_branch),
            ("POST", r"/api/validate-yaml", "validate_yaml", self._validate_yaml),
            ("POST", rf"/api/datasets/{_REPO}/preupload/{_REV}", "preupload", self._preupload),
            ("POST", rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", "lfs_batch", self._lfs_batch),
            ("PUT", r"/_stub/lfs/(?P<oid>[0-9a-f]{64})", "lfs_upload", self._lfs_upload),
            ("POST", r"/_stub/lfs/(?P<oid>[0-9a-f]{64})/verify", "lfs_verify", self._lfs_verify),
            ("POST", rf"/api/datasets/{_REPO}/commit/{_REV}", "commit", self._commit),
            ("GET", rf"/api/datasets/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", "tree", self._tree),
            ("POST", rf"/api/datasets/{_REPO}/paths-info/{_REV}", "paths_info", self._paths_info),
            ("HEAD", rf"/datasets/{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve", self._resolve),
            ("GET", rf"/datasets/{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve", self._resolve),
        ]
        self._routes = [(method, re.compile(pattern), name, handler) for method, pattern, name, handler in routes]

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "the stub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="hub-stub", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------------

    def fail(
        self,
        endpoint: str,
        status: int,
        times: int = 1,
        message: str = "injected failure",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests to `endpoint` (a route name: "commit", "preupload", ...)
        with `status`, before doing anything else. In `message`, `<token>` becomes the request's bearer
        token (a server that echoes credentials); `headers` are added to the answer (e.g. Retry-After)."""
        with self._lock:
            self._failures.append(_Failure(endpoint, status, times, message, dict(headers or {})))

    def before(self, endpoint: str, hook: Callable[[], None]) -> None:
        """Run `hook` once, just before the next request to `endpoint` is handled (e.g. a concurrent commit)."""
        with self._lock:
            self._hooks.append((endpoint, hook))

    def calls(self, endpoint: str) -> int:
        return sum(1 for r in self.requests if r.endpoint == endpoint)

    # -- direct access to the store (no HTTP) ----------------------------------------------------

    def create(self, repo_id: str, *, private: bool = False) -> Repo:
        """A repository with its initial commit (`.gitattributes`), as the Hub creates it."""
        with self._lock:
            if repo_id in self.repos:
                raise HubError(409, "You already created this dataset repo")
            repo = self.repos[repo_id] = Repo(repo_id, private)
            self._add_commit(
                repo, "main", None, "initial commit", "", {".gitattributes": StoredFile(GITATTRIBUTES, False)}
            )
            return repo

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes | str],
        *,
        delete: tuple[str, ...] = (),
        message: str = "seed",
        branch: str = "main",
    ) -> str:
        """Commit directly (another writer); the repository is created when missing. Returns the sha."""
        with self._lock:
            repo = self.repos.get(repo_id) or self.create(repo_id)
            head = repo.refs[branch]
            tree = {p: f for p, f in repo.commits[head].files.items() if p not in delete}
            for path, content in files.items():
                data = content.encode() if isinstance(content, str) else content
                tree[path] = StoredFile(data, self._is_lfs(path, data))
            return self._add_commit(repo, branch, head, message, "", tree).sha

    def commits(self, repo_id: str, branch: str = "main") -> list[Commit]:
        with self._lock:
            return self.repos[repo_id].history(branch)

    def head(self, repo_id: str, branch: str = "main") -> str:
        with self._lock:
            return self.repos[repo_id].refs[branch]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self._lock:
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            assert sha is not None, f"{repo_id}: no revision {revision}"
            return {path: f.content for path, f in repo.commits[sha].files.items()}

    def readme(self, repo_id: str, revision: str = "main") -> str:
        return self.files(repo_id, revision)["README.md"].decode("utf-8")

    # -- request plumbing --------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[str, Reply]:
        """Route one request; (route name, reply). Called by the HTTP handler threads."""
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        for route_method, pattern, name, handler in self._routes:
            match = pattern.fullmatch(split.path) if route_method == method else None
            if match is None:
                continue
            with self._lock:
                failure = next((f for f in self._failures if f.endpoint == name and f.times > 0), None)
                if failure is not None:
                    failure.times -= 1
                    token = headers.get("authorization", "").removeprefix("Bearer ")
                    reply = _error_reply(HubError(failure.status, failure.message.replace("<token>", token)))
                    reply.headers.update(failure.headers)
                    return name, reply
                hooks = [hook for endpoint, hook in self._hooks if endpoint == name]
                self._hooks = [(endpoint, hook) for endpoint, hook in self._hooks if endpoint != name]
            for hook in hooks:
                hook()
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            try:
                with self._lock:
                    return name, handler(method=method, query=query, headers=headers, body=body, **args)
            except HubError as exc:
                return name, _error_reply(exc)
            except Exception:  # a bug in the stub: 500, kept for the test to show
                self.errors.append(traceback.format_exc())
                return name, _error_reply(HubError(500, "stub error"))
        self.unhandled.append(f"{method} {raw_path}")
        return "unhandled", _error_reply(HubError(404, f"stub: no route for {method} {split.path}"))

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # -- helpers -----------------------------------------------------------------------------------

    def _repo(self, repo_id: str) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _revision(self, repo_id: str, revision: str) -> tuple[Repo, Commit]:
        repo = self._repo(repo_id)
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo, repo.commits[sha]

    @staticmethod
    def _is_lfs(path: str, content: bytes) -> bool:
        if path.endswith(LFS_SUFFIXES) or len(content) > REGULAR_MAX_BYTES:
            return True
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    def _add_commit(
        self, repo: Repo, ref: str, parent: str | None, summary: str, description: str, files: dict[str, StoredFile]
    ) -> Commit:
        seed = f"{self._nonce}:{next(self._counter)}:{parent}:{summary}".encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), parent, summary, description, files)
        repo.commits[commit.sha] = commit
        repo.refs[ref] = commit.sha
        return commit

    def _entry(self, path: str, stored: StoredFile | None, commit: Commit, expand: bool) -> dict[str, Any]:
        """One tree / paths-info entry; a directory when `stored` is None."""
        if stored is None:
            entry: dict[str, Any] = {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}
        else:
            entry = {"type": "file", "oid": stored.oid, "size": len(stored.content)}
            if stored.lfs:
                entry["lfs"] = {"oid": stored.sha256, "size": len(stored.content), "pointerSize": len(stored.pointer)}
        entry["path"] = path
        if expand:
            entry["lastCommit"] = {"id": commit.sha, "title": commit.summary, "date": DATE}
        return entry

    # -- endpoints ---------------------------------------------------------------------------------

    def _create_repo(self, body: bytes, **_: Any) -> Reply:
        payload = json.loads(body)
        if payload.get("type") != "dataset":
            raise HubError(400, f"stub: only dataset repositories, not {payload.get('type')!r}")
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if repo_id in self.repos:  # create_repo(exist_ok=True) reads "url" from this 409 too
            raise HubError(409, "You already created this dataset repo", url=url)
        self.create(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        return Reply.json({"url": url, "name": repo_id, "id": repo_id})

    def _repo_info(self, repo: str, rev: str = "main", **_: Any) -> Reply:
        stored, commit = self._revision(repo, rev)
        return Reply.json(
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "author": repo.split("/")[0],
                "sha": commit.sha,
                "private": stored.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "createdAt": DATE,
                "lastModified": DATE,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def _create_branch(self, repo: str, branch: str, body: bytes, **_: Any) -> Reply:
        stored = self._repo(repo)
        if branch in stored.refs:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        sha = stored.resolve(start)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {start}", "RevisionNotFound")
        stored.refs[branch] = sha
        return Reply.json({})

    def _validate_yaml(self, body: bytes, **_: Any) -> Reply:
        content = json.loads(body)["content"]
        self.validated_yaml.append(content)
        if content.startswith("---\n"):
            end = content.find("\n---", 4)
            try:
                metadata = yaml.safe_load(content[4:end]) if end != -1 else None
            except yaml.YAMLError as exc:
                raise HubError(400, f"Invalid YAML in README.md: {exc}") from None
            if end == -1 or not isinstance(metadata, (dict, type(None))):
                raise HubError(400, "Invalid metadata in README.md: the YAML header must be a mapping")
        return Reply.json({"errors": [], "warnings": []})

    def _preupload(self, repo: str, rev: str, body: bytes, **_: Any) -> Reply:
        _, commit = self._revision(repo, rev)
        files = []
        for item in json.loads(body)["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = item["size"] > REGULAR_MAX_BYTES or self._is_lfs(item["path"], sample)
            existing = commit.files.get(item["path"])
            oid = existing.upload_oid if existing is not None and existing.lfs == lfs else None
            files.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return Reply.json({"files": files, "commitOid": commit.sha})

    def _lfs_batch(self, repo: str, body: bytes, **_: Any) -> Reply:
        self._repo(repo)
        objects = []
        for obj in json.loads(body)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:  # no actions: already stored
                href = f"{self.url}/_stub/lfs/{obj['oid']}"
                entry["actions"] = {"upload": {"href": href}, "verify": {"href": f"{href}/verify"}}
            objects.append(entry)
        reply = Reply.json({"transfer": "basic", "objects": objects})
        reply.headers["Content-Type"] = "application/vnd.git-lfs+json"
        return reply

    def _lfs_upload(self, oid: str, body: bytes, **_: Any) -> Reply:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"stub: uploaded content does not hash to {oid}")
        self.lfs[oid] = body
        return Reply(200)

    def _lfs_verify(self, oid: str, body: bytes, **_: Any) -> Reply:
        claimed = json.loads(body)
        if oid not in self.lfs or claimed["oid"] != oid or claimed["size"] != len(self.lfs[oid]):
            raise HubError(404, f"stub: LFS object {oid} was not uploaded")
        return Reply.json({"success": True})

    def _commit(self, repo: str, rev: str, body: bytes, query: dict[str, str], **_: Any) -> Reply:
        stored = self._repo(repo)
        lines = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        create_pr = query.get("create_pr") == "1"
        head = stored.resolve(rev)
        if head is None or (not create_pr and rev not in stored.refs):
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        parent = header.get("parentCommit")
        if parent is not None and parent != head:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        tree = dict(stored.commits[head].files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                tree[value["path"]] = StoredFile(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    raise HubError(422, f"LFS pointer pointed to a file that does not exist: {value['oid']}")
                tree[value["path"]] = StoredFile(self.lfs[value["oid"]], True)
            elif key == "deletedFile":
                if value["path"] not in tree:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del tree[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                tree = {p: f for p, f in tree.items() if not p.startswith(prefix)}
            elif key != "header":
                raise HubError(400, f"stub: unknown commit line {key!r}")
        ref = f"refs/pr/{sum(r.startswith('refs/pr/') for r in stored.refs) + 1}" if create_pr else rev
        commit = self._add_commit(stored, ref, head, header["summary"], header.get("description", ""), tree)
        url = f"{self.url}/datasets/{repo}"
        answer = {"success": True, "commitOid": commit.sha, "commitUrl": f"{url}/commit/{commit.sha}"}
        if create_pr:
            answer["pullRequestUrl"] = f"{url}/discussions/{ref.rsplit('/', 1)[1]}"
        return Reply.json(answer)

    def _tree(self, repo: str, rev: str, query: dict[str, str], path: str = "", **_: Any) -> Reply:
        _, commit = self._revision(repo, rev)
        recursive = query.get("recursive", "").lower() in ("1", "true")
        expand = query.get("expand", "").lower() in ("1", "true")
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        below = [p for p in sorted(commit.files) if p.startswith(prefix)]
        if prefix and not below:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for file_path in below:
            parts = file_path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):  # the folders on the way
                folder = prefix + "/".join(parts[:i])
                entries.setdefault(folder, self._entry(folder, None, commit, expand))
            if recursive or len(parts) == 1:
                entries[file_path] = self._entry(file_path, commit.files[file_path], commit, expand)
        return Reply.json(list(entries.values()))

    def _paths_info(self, repo: str, rev: str, body: bytes, headers: dict[str, str], **_: Any) -> Reply:
        _, commit = self._revision(repo, rev)
        if headers.get("content-type", "").startswith("application/json"):
            payload = json.loads(body)
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(body.decode())
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entries.append(self._entry(path, commit.files[path], commit, expand))
            elif any(p.startswith(path + "/") for p in commit.files):
                entries.append(self._entry(path, None, commit, expand))
        return Reply.json(entries)

    def _resolve(self, method: str, repo: str, rev: str, path: str, headers: dict[str, str], **_: Any) -> Reply:
        _, commit = self._revision(repo, rev)
        stored = commit.files.get(path)
        if stored is None:
            error = HubError(404, f"Entry not found: {path}", "EntryNotFound")
            reply = _error_reply(error)
            reply.headers["X-Repo-Commit"] = commit.sha
            return reply
        content, status = stored.content, 200
        reply_headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{stored.oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if stored.lfs:
            reply_headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            reply_headers["X-Linked-Size"] = str(len(stored.content))
        byte_range = re.fullmatch(r"bytes=(\d*)-(\d*)", headers.get("range", "").strip())
        if byte_range and content:
            first, last = byte_range.groups()
            size = len(content)
            start = int(first) if first else max(size - int(last or 0), 0)
            end = min(int(last), size - 1) if first and last else size - 1
            if start >= size:
                reply = _error_reply(HubError(416, "Requested range not satisfiable"))
                reply.headers["Content-Range"] = f"bytes */{size}"
                return reply
            content, status = content[start : end + 1], 206
            reply_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Reply(status, content, reply_headers)


def _error_reply(exc: HubError) -> Reply:
    reply = Reply.json({"error": exc.message, **exc.extra}, exc.status)
    reply.headers["X-Error-Message"] = exc.message
    if exc.code:
        reply.headers["X-Error-Code"] = exc.code
    return reply


def _handler_class(stub: HubStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body leave in one write (no 40 ms delayed-ACK stall per request)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            endpoint, reply = stub.handle(self.command, self.path, headers, body)
            stub._record(Request(self.command, self.path, endpoint, reply.status, headers.get("authorization")))
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@contextmanager
def hub_client(monkeypatch: Any, hub: HubStub, home: Path, token: str = "hf_stub_token") -> Iterator[None]:
    """Point huggingface_hub and datasets (both already imported, in offline mode by tests/conftest.py)
    at `hub`, online, with a dummy token, Xet off, caches under `home`; undone by `monkeypatch`.

    Both libraries read their settings once, at import, into module constants: the environment alone
    is not enough, the constants are patched too.
    """
    import datasets
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_TOKEN": token,
        "HF_HOME": str(home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name, value in {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }.items():
        monkeypatch.setattr(constants, name, value)
    for name, value in {
        "HF_ENDPOINT": hub.url,
        "HUB_DATASETS_URL": hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
        "HF_HUB_OFFLINE": False,
        "HF_DATASETS_OFFLINE": False,
        "HF_UPDATE_DOWNLOAD_COUNTS": False,
        "USE_PARQUET_EXPORT": False,
        "HF_DATASETS_CACHE": home / "datasets",
        "DOWNLOADED_DATASETS_PATH": str(home / "datasets" / "downloads"),
    }.items():
        monkeypatch.setattr(datasets.config, name, value)
    # Clients cached with the previous endpoint (fsspec caches HfFileSystem instances by arguments).
    huggingface_hub.HfFileSystem.clear_instance_cache()
    _http.close_session()
    try:
        yield
    finally:
        huggingface_hub.HfFileSystem.clear_instance_cache()
        _http.close_session()
