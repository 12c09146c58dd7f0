"""``hub.push`` against a fake Hub HTTP server on 127.0.0.1 (no network), and its refusals."""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from unimer_builder import hub
from unimer_builder.errors import EnvironmentFailure


class FakeHub:
    """Answers the few endpoints ``create_repo`` + ``upload_folder`` use, and records the commit."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []
        self.repos: dict[str, dict] = {}  # repo id -> info (``private``) of repos that exist before the push
        self.created: list[dict] = []
        self.commits: list[list[dict]] = []
        self.files: dict[str, dict[str, bytes]] = {}  # repo id -> its files after the commits so far
        self.settings: list[tuple[str, dict]] = []  # (repo id, the settings a PUT asked for)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    return self.rfile.read(n)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return b""

            def _json(self, obj, code=200):
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):  # noqa: N802
                body = self._body()
                path = self.path.split("?")[0]
                fake.requests.append(("POST", path))
                base = f"http://127.0.0.1:{fake.port}"
                if path == "/api/repos/create":
                    req = json.loads(body)
                    fake.created.append(req)
                    fake.repos.setdefault(f"{req.get('organization') or 'me'}/{req['name']}",
                                          {"private": bool(req.get("private")) or req.get("visibility") == "private"})
                    return self._json({"url": f"{base}/datasets/{req.get('organization') or 'me'}/{req['name']}"})
                if path == "/api/validate-yaml":
                    return self._json({"errors": [], "warnings": []})
                if "/preupload/" in path:
                    files = json.loads(body)["files"]
                    return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
                if "/commit/" in path:
                    lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                    fake.commits.append(lines)
                    repo = path.split("/api/datasets/")[1].split("/commit/")[0]
                    held = fake.files.setdefault(repo, {})
                    for ln in lines:
                        if ln["key"] == "file":
                            held[ln["value"]["path"]] = base64.b64decode(ln["value"]["content"])
                        elif ln["key"] == "deletedFile":
                            held.pop(ln["value"]["path"], None)
                    return self._json({"commitUrl": f"{base}/datasets/{repo}/commit/{'a' * 40}",
                                       "commitOid": "a" * 40, "pullRequestUrl": None})
                return self._json({"error": f"unexpected POST {path}"}, 404)

            def do_PUT(self):  # noqa: N802
                body = self._body()
                path = self.path.split("?")[0]
                fake.requests.append(("PUT", path))
                if path.startswith("/api/datasets/") and path.endswith("/settings"):
                    repo, asked = "/".join(path.split("/")[3:5]), json.loads(body)
                    fake.settings.append((repo, asked))
                    fake.repos.setdefault(repo, {}).update(asked)
                    return self._json({})
                return self._json({"error": f"unexpected PUT {path}"}, 404)

            def do_GET(self):  # noqa: N802
                fake.requests.append(("GET", self.path))
                path = self.path.split("?")[0]
                if path.startswith("/api/datasets/") and "/tree/" in path:  # list_repo_files
                    held = fake.files.get("/".join(path.split("/")[3:5]), {})
                    return self._json([{"type": "file", "path": k, "oid": "c" * 40, "size": len(v)}
                                       for k, v in sorted(held.items())])
                if path.startswith("/api/datasets/"):  # repo_info
                    repo = "/".join(path.split("/")[3:5])
                    if repo in fake.repos:
                        return self._json({"id": repo, "sha": "b" * 40, **fake.repos[repo]})
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._json({"error": f"unexpected GET {self.path}"}, 404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _built_folder(root: Path) -> Path:
    out = root / "out"
    (out / "data").mkdir(parents=True)
    (out / "README.md").write_text("---\nlicense: other\n---\n# card\n")
    (out / "data" / "train-00000-of-00002.parquet").write_bytes(b"PAR1 shard 0")
    (out / "data" / "train-00001-of-00002.parquet").write_bytes(b"PAR1 shard 1")
    (out / "build_report.json").write_text("{}\n")
    # never uploaded: resume state, temp files, anything else
    (out / ".parts").mkdir()
    (out / ".parts" / "x.parquet").write_bytes(b"part")
    (out / "notes.txt").write_text("local")
    return out


@pytest.fixture
def online(monkeypatch):
    """Lift offline mode for this test only (conftest sets HF_HUB_OFFLINE=1 for the session)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True, raising=False)
    import huggingface_hub.hf_api as hf_api

    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False, raising=False)
    # Fail loudly if anything tries a non-loopback address.
    import socket

    real_connect = socket.socket.connect

    def guarded(self, addr):
        host = addr[0] if isinstance(addr, tuple) else addr
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"network access attempted: {addr}")
        return real_connect(self, addr)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def test_push_uploads_card_shards_and_report(tmp_path, online):
    out = _built_folder(tmp_path)
    with FakeHub() as fake:
        url = hub.push(out, "someone/uni-mer", token="hf_fake", endpoint=fake.url)
    assert url == f"{fake.url}/datasets/someone/uni-mer/commit/{'a' * 40}"
    assert fake.created and fake.created[0]["type"] == "dataset" and fake.created[0].get("visibility", "private" if fake.created[0].get("private") else None) == "private"
    assert len(fake.commits) == 1
    lines = fake.commits[0]
    assert lines[0]["key"] == "header"
    files = {ln["value"]["path"]: base64.b64decode(ln["value"]["content"]) for ln in lines if ln["key"] == "file"}
    assert sorted(files) == ["README.md", "build_report.json", "data/train-00000-of-00002.parquet",
                             "data/train-00001-of-00002.parquet"]
    assert files["data/train-00001-of-00002.parquet"] == b"PAR1 shard 1"


def test_a_second_push_replaces_the_repos_shards_instead_of_adding_to_them(tmp_path, online):
    """A push uploaded the build's files and left the repo's others: after a rebuild with another shard count the
    old shards stayed beside the new ones, and the card's ``data/train-*`` pattern loaded both (split sizes that do
    not match the card, or columns that do not cast). The card and report are replaced as before."""
    out = _built_folder(tmp_path)
    (out / "data" / "train-00002-of-00003.parquet").write_bytes(b"PAR1 old shard 2")
    with FakeHub() as fake:
        hub.push(out, "someone/uni-mer", token="hf_fake", endpoint=fake.url)
        assert sorted(fake.files["someone/uni-mer"]) == ["README.md", "build_report.json",
                                                         "data/train-00000-of-00002.parquet",
                                                         "data/train-00001-of-00002.parquet",
                                                         "data/train-00002-of-00003.parquet"]
        fake.files["someone/uni-mer"]["notes/extra.md"] = b"the owner's own file"  # not the build's: kept
        fake.files["someone/uni-mer"]["data/test-00000-of-00001.parquet"] = b"PAR1 the owner's own split"
        for f in (out / "data").iterdir():
            f.unlink()
        (out / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 the one new shard")
        hub.push(out, "someone/uni-mer", token="hf_fake", endpoint=fake.url)
    assert sorted(fake.files["someone/uni-mer"]) == ["README.md", "build_report.json",
                                                     "data/test-00000-of-00001.parquet",
                                                     "data/train-00000-of-00001.parquet", "notes/extra.md"]
    assert fake.files["someone/uni-mer"]["data/train-00000-of-00001.parquet"] == b"PAR1 the one new shard"


def test_a_card_with_the_access_request_form_switches_the_repos_requests_on(tmp_path, online):
    """The card's ``extra_gated_*`` keys only word the Hub's access-request form; requests are on only where the
    repo's settings say so, and a push never set them: a licensed database's public build read as gated and was
    not. A private repo admits nobody (nothing to switch), a repo already gated keeps its owner's choice (an
    automatic approval is not turned into a manual one), and a card without the form leaves the setting alone."""
    out = _built_folder(tmp_path)
    licensed = ("---\nlicense: other\nextra_gated_prompt: Sign the licence first.\n"
                "extra_gated_fields:\n  Name: text\n---\n# card\n")
    (out / "README.md").write_text(licensed)
    with FakeHub() as fake:
        fake.repos["someone/auto"] = {"private": False, "gated": "auto"}
        hub.push(out, "someone/private", token="hf_fake", endpoint=fake.url)
        for _ in range(2):
            hub.push(out, "someone/licensed", token="hf_fake", endpoint=fake.url, private=False)
        hub.push(out, "someone/auto", token="hf_fake", endpoint=fake.url, private=False)
        (out / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# a synthetic build's card\n")
        hub.push(out, "someone/synthetic", token="hf_fake", endpoint=fake.url, private=False)
        assert fake.settings == [("someone/licensed", {"gated": "manual"})]
        assert len(fake.commits) == 5 and fake.repos["someone/auto"]["gated"] == "auto"
    assert not hub.gated_form(out)
    (out / "README.md").write_text(licensed)
    assert hub.gated_form(out)


def test_a_card_rendered_again_without_images_keeps_the_builds_templates_and_fingerprint(tmp_path, monkeypatch):
    """The report names a templates folder of one's own by its name only; `push --no-images` renders the card
    again from the report, and took that name for a missing folder: the card said `packaged` with the packaged
    templates' fingerprint, not the one every row carries (or hashed a folder of that name in the current one)."""
    from unimer_builder import BuildConfig, TextConfig, build, synthesize

    root = synthesize(tmp_path / "src", "casme2", clips=2, subjects=1, seed=3, frames=8)
    mine = tmp_path / "elsewhere" / "mytpl"
    shutil.copytree(TextConfig().folder, mine)
    (mine / "explain.j2").write_text((mine / "explain.j2").read_text() + "\n{# my own #}\n")
    out = tmp_path / "out"
    report = build(root, out, BuildConfig(text=TextConfig(templates=str(mine), composite="labels")), "casme2",
                   workers=1)
    assert report["config"]["text"]["templates"] == "mytpl"
    row = f"| `config_fingerprint` | {report['config_fingerprint']} |"
    assert row in (out / "README.md").read_text()
    (tmp_path / "mytpl").mkdir()  # a folder of that name where the push runs is not the build's
    monkeypatch.chdir(tmp_path)
    with hub.without_images(out) as stage:
        card = (stage / "README.md").read_text()
    assert row in card and "| `text.templates` | mytpl |" in card and "No face images" in card


def test_push_refuses_incomplete_folder_and_bad_repo(tmp_path, online):
    out = _built_folder(tmp_path)
    with pytest.raises(ValueError, match="owner/name"):
        hub.push(out, "no-owner", endpoint="http://127.0.0.1:9")
    (out / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match="README.md"):
        hub.push(out, "a/b", endpoint="http://127.0.0.1:9")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        hub.push(tmp_path / "missing", "a/b")
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    (empty / "README.md").write_text("card")
    with pytest.raises(FileNotFoundError, match="no shards"):
        hub.push(empty, "a/b")


def test_push_offline_is_a_clear_error(tmp_path):
    out = _built_folder(tmp_path)
    # conftest runs the suite offline: push must say so instead of trying the network
    with pytest.raises(RuntimeError, match="offline"):
        hub.push(out, "a/b", endpoint="http://127.0.0.1:9")


def test_push_unreachable_endpoint_is_a_clear_error(tmp_path, online):
    out = _built_folder(tmp_path)
    with FakeHub() as fake:
        dead = fake.url  # the port is closed once the server stops
    with pytest.raises(EnvironmentFailure, match="cannot reach the Hub"):
        hub.push(out, "a/b", token="hf_fake", endpoint=dead)


def test_an_unreachable_hub_set_by_hf_endpoint_is_named_as_set(tmp_path, online, monkeypatch):
    """With $HF_ENDPOINT (read by huggingface_hub into its constants) the error named huggingface.co, a host the push
    never tried."""
    import huggingface_hub.constants

    out = _built_folder(tmp_path)
    with FakeHub() as fake:
        dead = fake.url
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", dead)
    with pytest.raises(EnvironmentFailure, match=re.escape(f"cannot reach the Hub ({dead})")):
        hub.push(out, "a/b", token="hf_fake")


def test_a_push_that_cannot_reach_the_hub_exits_3_as_an_environment_failure(tmp_path, monkeypatch):
    """An unreachable Hub exited 2, which the README keeps for input that cannot be used; the network is the
    environment (3), as a full disk is for a build."""
    from typer.testing import CliRunner

    import unimer_builder.cli as cli

    def unreachable(*a, **k):
        raise EnvironmentFailure("cannot reach the Hub (huggingface.co): Connection refused")

    monkeypatch.setattr(cli, "push_folder", unreachable)
    res = CliRunner().invoke(cli.app, ["push", str(_built_folder(tmp_path)), "a/b", "--token", "hf_fake"])
    assert res.exit_code == 3 and "cannot reach the Hub" in res.output and "Traceback" not in res.output


def test_check_folder_lists_upload(tmp_path):
    out = _built_folder(tmp_path)
    assert hub.check_folder(out) == ["README.md", "data/train-00000-of-00002.parquet",
                                     "data/train-00001-of-00002.parquet", "build_report.json"]


def test_private_push_into_an_existing_public_repo_is_refused(tmp_path, online):
    out = _built_folder(tmp_path)
    with FakeHub() as fake:
        fake.repos["someone/open"] = {"private": False}
        fake.repos["someone/closed"] = {"private": True}
        with pytest.raises(hub.PublicRepoError, match="someone/open exists and is public.*--public"):
            hub.push(out, "someone/open", token="hf_fake", endpoint=fake.url)
        assert not fake.commits and not fake.created
        hub.push(out, "someone/closed", token="hf_fake", endpoint=fake.url)  # private into private: fine
        hub.push(out, "someone/open", token="hf_fake", endpoint=fake.url, private=False)  # asked for: fine
        # --public into an existing private repo left it private while the dry run said "(public)"
        with pytest.raises(hub.PublicRepoError, match="someone/closed exists and is private.*settings"):
            hub.push(out, "someone/closed", token="hf_fake", endpoint=fake.url, private=False)
    assert len(fake.commits) == 2


def test_push_without_images_uploads_shards_without_face_pixels(small_build, tmp_path, online):
    import io

    import pyarrow.parquet as pq

    from unimer_builder.shards import FACE_COLUMNS

    out = tmp_path / "build"
    shutil.copytree(small_build, out)
    before = {p.name: p.read_bytes() for p in (out / "data").iterdir()}
    with FakeHub() as fake:
        hub.push(out, "someone/faceless", token="hf_fake", endpoint=fake.url, images=False)
    files = {ln["value"]["path"]: base64.b64decode(ln["value"]["content"]) for ln in fake.commits[0] if ln["key"] == "file"}
    shards = [k for k in files if k.startswith("data/")]
    assert shards and sorted(shards) == sorted(f"data/{n}" for n in before)
    full = pq.read_table(small_build / "data")
    for k in shards:
        t = pq.read_table(io.BytesIO(files[k]))
        assert not set(FACE_COLUMNS) & set(t.column_names) and t.num_rows == full.num_rows
        assert set(t.column_names) == set(full.column_names) - set(FACE_COLUMNS)
    card = files["README.md"].decode()
    assert "No face images" in card and "onset_image" in card and "aligned grey face crops" not in card
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == before  # the build is left as it was
    assert not [p for p in out.iterdir() if p.name.startswith(".push")]


def test_a_build_on_storage_it_cannot_write_is_staged_without_images_elsewhere(small_build, tmp_path, monkeypatch):
    """`push --no-images` staged its copy only inside the build folder: a build on read-only storage could not be
    pushed without its face images ("Operation not permitted"), although the build folder is only read."""
    import tempfile

    real = tempfile.TemporaryDirectory

    def refusing(*a, dir=None, **k):
        if dir is not None and Path(dir) == small_build:
            raise PermissionError(1, "Operation not permitted", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(hub.tempfile, "TemporaryDirectory", refusing)
    before = sorted(p.name for p in small_build.iterdir())
    with hub.without_images(small_build) as stage:
        assert small_build not in stage.parents and sorted(p.name for p in (stage / "data").iterdir())
        assert "No face images" in (stage / "README.md").read_text()
    assert not stage.exists() and sorted(p.name for p in small_build.iterdir()) == before


def test_push_without_a_token_says_so_before_any_request(tmp_path, online, monkeypatch):
    """Without --token, $HF_TOKEN or a cached login the push said "cannot reach the Hub (huggingface.co): Token
    is required ..." (with a repo id, after a request that could only fail): it names the missing token and how
    to give one, and asks the Hub nothing."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    out = _built_folder(tmp_path)
    with FakeHub() as fake:
        for repo in ("someone/uni-mer", None):
            with pytest.raises(RuntimeError, match="no Hugging Face token.*--token.*HF_TOKEN.*hf auth login"):
                hub.push(out, repo, endpoint=fake.url)
        assert not fake.created and not fake.commits


def test_push_dry_run_lists_what_would_go_and_asks_nothing(small_build, tmp_path):
    """There was no way to see what a push uploads (which files, to which repo, private or not, with the faces
    or without) before it happened; `--dry-run` says, offline and without a token."""
    from typer.testing import CliRunner

    from unimer_builder.cli import app

    res = CliRunner().invoke(app, ["push", str(small_build), "someone/mer", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "someone/mer (private), with the face images" in res.output
    for f in hub.check_folder(small_build):
        assert f"{f}  {(small_build / f).stat().st_size:,} bytes" in res.output
    res = CliRunner().invoke(app, ["push", str(small_build), "--dry-run", "--no-images", "--public"])
    assert res.exit_code == 0, res.output
    assert f"<your account>/{hub.suggested_name(small_build)} (public), without the face images" in res.output
    assert "data/train-*.parquet not among these would be deleted" in " ".join(res.output.split())
    assert "copies without the face columns" in " ".join(res.output.split())  # the sizes listed are the build's
    assert "access requests" not in res.output  # a synthetic build's card has no form
    gated = tmp_path / "gated"
    shutil.copytree(small_build, gated)
    card = (gated / "README.md").read_text()
    (gated / "README.md").write_text(card.replace("---\n", "---\nextra_gated_fields:\n  Name: text\n", 1))
    res = CliRunner().invoke(app, ["push", str(gated), "someone/mer", "--dry-run", "--public"])
    assert res.exit_code == 0 and "access requests would be switched on" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["push", str(gated), "someone/mer", "--dry-run"])  # private: nothing to switch
    assert res.exit_code == 0 and "access requests" not in res.output
    res = CliRunner().invoke(app, ["push", str(small_build), "no-owner", "--dry-run"])
    assert res.exit_code == 2 and "owner/name" in res.output


def test_a_public_push_of_an_old_build_calling_itself_synthetic_is_refused(small_build, tmp_path):
    """Builders before 0.1.95 took any ground_truth.json beside a database for a synthetic one's and wrote its card
    public-domain without the access form; the report keeps only the database folder's name, so a public push of
    such a build is refused until it is built again (a private one goes)."""
    from typer.testing import CliRunner

    from unimer_builder.cli import app

    old = tmp_path / "old"
    shutil.copytree(small_build, old)
    report = json.loads((old / "build_report.json").read_text())
    assert report["synthetic"] == "default"
    for version, refused in (("0.1.94", True), ("0.1.95", False)):
        (old / "build_report.json").write_text(json.dumps({**report, "builder_version": version}))
        public = CliRunner().invoke(app, ["push", str(old), "a/b", "--dry-run", "--public"])
        said = " ".join(public.output.split())
        assert (public.exit_code, "build it again with this version before a public push" in said) == (
            (2, True) if refused else (0, False)), public.output
        assert CliRunner().invoke(app, ["push", str(old), "a/b", "--dry-run"]).exit_code == 0
