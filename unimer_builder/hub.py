"""Publish a built folder (``README.md``, ``data/``, ``build_report.json``) as a Hub dataset repo."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from .card import default_repo_name, is_synthetic, write_card
from .config import build_config_from_dict
from .consolidate import strip_images
from .errors import EnvironmentFailure
from .shards import FACE_COLUMNS, open_shard, read_shard, shard_files

ALLOW = ["README.md", "build_report.json", "data/*.parquet"]
# A push replaces the repo's shards: an earlier push's shards that this build does not have (another shard count,
# or shards with the face columns where these have none) would stay beside them, and the card's ``data/train-*``
# pattern would load both (split sizes that do not match the card, or columns that do not cast).
DELETE = ["data/train-*.parquet"]  # the build's own shards; a split of the owner's own (data/test-*) stays


def gated_form(out_dir: Path | str) -> bool:
    """Whether the card asks for the Hub's access-request form (``extra_gated_fields``, licensed databases)."""
    text = (Path(out_dir) / "README.md").read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return False
    try:
        meta = yaml.safe_load(text[4:].split("\n---", 1)[0])
    except yaml.YAMLError:
        return False
    return isinstance(meta, dict) and bool(meta.get("extra_gated_fields"))


def check_folder(out_dir: Path | str) -> list[str]:
    """The files :func:`push` would upload; raises ``FileNotFoundError`` naming what is missing."""
    out = Path(out_dir)
    shards = shard_files(out)  # first: an unfinished build has no card either, and must be told to finish
    if not (out / "README.md").is_file():
        raise FileNotFoundError(f"{out / 'README.md'}: dataset card missing; run the build (it writes the card)")
    files = ["README.md"] + [f"data/{p.name}" for p in shards]
    if (out / "build_report.json").is_file():
        files.append("build_report.json")
    return files


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except Exception:  # pragma: no cover - very old huggingface_hub
        return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _login_token() -> str | None:
    """The token huggingface_hub would use without ``--token``: ``$HF_TOKEN`` or the cached login."""
    from huggingface_hub import get_token

    return get_token()


def _network_errors() -> tuple[type[BaseException], ...]:
    """OSError plus the HTTP client's transport errors (httpx-style clients do not derive from OSError)."""
    errs: list[type[BaseException]] = [OSError]
    for mod in ("httpx2", "httpx"):
        try:
            errs.append(importlib.import_module(mod).RequestError)
        except (ImportError, AttributeError):
            pass
    return tuple(errs)


def suggested_name(out_dir: Path | str) -> str:
    """The repo name the card suggests for a build (``card.default_repo_name``), from its report."""
    out = Path(out_dir)
    report_path = out / "build_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    dbs = sorted({k for k in (report.get("agreement") or {}) if k != "all"})
    if not dbs:
        dbs = sorted({d for p in sorted((out / "data").glob("train-*.parquet"))
                      for d in read_shard(p, columns=["database"]).column("database").to_pylist()})
    return default_repo_name(dbs, is_synthetic(report))


def has_images(out_dir: Path | str) -> bool:
    """Whether the build's shards hold the face pixel columns."""
    shards = sorted((Path(out_dir) / "data").glob("train-*.parquet"))
    return bool(shards) and all(c in open_shard(shards[0]).schema_arrow.names for c in FACE_COLUMNS)


@contextmanager
def without_images(out_dir: Path | str) -> Iterator[Path]:
    """A copy of the build to upload without the face pixel columns: the shards stripped of them, the card
    rendered again (it then says so), the report as it is. Staged in a hidden folder of ``out_dir`` (the disk
    the build fitted on), or in the system's temporary folder where ``out_dir`` cannot be written (a build on
    read-only storage); removed after."""
    out = Path(out_dir)
    try:
        staging = tempfile.TemporaryDirectory(prefix=".push-no-images-", dir=out)
    except OSError:
        staging = tempfile.TemporaryDirectory(prefix="unimer-push-no-images-")
    with staging as tmp:
        stage = Path(tmp)
        (stage / "data").mkdir()
        strip_images(out / "data", stage / "data")
        report = json.loads((out / "build_report.json").read_text()) if (out / "build_report.json").is_file() else {}
        if report:
            shutil.copyfile(out / "build_report.json", stage / "build_report.json")
        write_card(stage, report, build_config_from_dict(report.get("config") or {}))
        yield stage


def _refuse_other_visibility(api, repo_id: str, private: bool) -> None:
    """A push that was not asked to be public must not add to an existing public repo; one asked to be public must
    not leave the build in an existing private repo while saying it is public (``--public`` creates a public repo,
    it does not change an existing one's visibility)."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        return
    except HfHubHTTPError as e:
        if getattr(getattr(e, "response", None), "status_code", None) == 404:
            return
        raise
    if private and getattr(info, "private", None) is False:
        raise PublicRepoError(f"{repo_id} exists and is public: pushing would publish this build to everyone; pass "
                              f"--public if that is meant, or push to a private repo")
    if not private and getattr(info, "private", None) is True:
        raise PublicRepoError(f"{repo_id} exists and is private: --public does not change an existing repo's "
                              f"visibility; push without --public, or make the repo public in its settings first")


def _check_repo_id(repo_id: str | None) -> None:
    if repo_id is not None and (repo_id.count("/") != 1 or any(not p for p in repo_id.split("/"))):
        raise ValueError(f"repo id must look like 'owner/name', not {repo_id!r}")


def _check_public_synthetic(out: Path, private: bool) -> None:
    """A public push of a build whose card calls its data synthetic, made by a builder before 0.1.95, is refused:
    those took any ``ground_truth.json`` in the database's folder (a researcher's own annotations under that name)
    for a synthetic database's, and wrote a licensed release's card public-domain and without its access form. The
    report keeps only the database folder's name, so the claim cannot be checked again here; a build made again
    can."""
    report = out / "build_report.json"
    if private or not report.is_file():
        return
    try:
        rep = json.loads(report.read_text(encoding="utf-8"))
        version = tuple(int(x) for x in str(rep.get("builder_version", "0")).split(".")[:3])
    except (OSError, ValueError):
        return
    if is_synthetic(rep) and version < (0, 1, 95):
        raise ValueError(f"{out}: its card calls the data synthetic (public domain, no access form), as builder "
                         f"{rep.get('builder_version')} decided from any ground_truth.json beside the database; build "
                         f"it again with this version before a public push (a private push is not refused)")


def plan(out_dir: Path | str, repo_id: str | None = None, private: bool = True, images: bool = True) -> dict:
    """What :func:`push` would upload, asking the Hub nothing (``unimer push --dry-run``): the repo, its
    visibility, whether the face pixel columns go, and each file with its size in the build folder (shards
    pushed with ``images=False`` are copies without those columns, so smaller)."""
    out = Path(out_dir)
    files = check_folder(out)
    _check_repo_id(repo_id)
    _check_public_synthetic(out, private)
    return {"repo_id": repo_id or f"<your account>/{suggested_name(out)}", "private": private,
            "images": images and has_images(out), "files": {f: (out / f).stat().st_size for f in files},
            "replaces": DELETE[0], "access_requests": not private and gated_form(out),
            "stripped": not images and has_images(out)}


class PublicRepoError(RuntimeError):
    """A private push into an existing public repo, or a public one into an existing private repo, refused."""


def push(
    out_dir: Path | str,
    repo_id: str | None,
    token: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
    commit_message: str = "Upload Uni-MER build",
    images: bool = True,
) -> str:
    """Create (if needed) the dataset repo ``repo_id`` and upload the build; returns the commit URL.

    Private by default: the source databases' licences rarely allow public redistribution, and a private push
    into an existing *public* repo is refused (:class:`PublicRepoError`), as is a public push into an existing
    private one (it would stay private). Without ``repo_id`` the repo is
    ``<your account>/<suggested_name(out_dir)>``. The repo's earlier shards (``data/train-*.parquet``) are
    replaced, not added to; a public push of a card with the access-request form (a licensed database) switches
    the repo's access requests on where it has none (manual approval: the owner checks each requester's licence
    agreement). ``images=False`` uploads the shards without the face pixel
    columns (:data:`.shards.FACE_COLUMNS`) and a card that says so; the build folder is left as it is.
    Raises ``FileNotFoundError`` for an incomplete folder, ``ValueError`` for a bad repo id,
    ``RuntimeError`` when offline or when the Hub refuses, and ``EnvironmentFailure`` when the Hub cannot be
    reached.
    """
    out = Path(out_dir)
    check_folder(out)
    _check_repo_id(repo_id)
    _check_public_synthetic(out, private)
    if _offline():
        raise RuntimeError(
            "cannot push: Hugging Face Hub offline mode is on (HF_HUB_OFFLINE=1); unset it to upload"
        )
    if token is None and _login_token() is None:  # else the Hub's 401, or "cannot reach the Hub: Token is required"
        raise RuntimeError("cannot push: no Hugging Face token; pass --token, set HF_TOKEN, or log in once with "
                           "`hf auth login`")
    name = suggested_name(out) if repo_id is None else ""  # the card's suggestion, read before any staging
    if not images and has_images(out):
        with without_images(out) as stage:
            return _push(stage, repo_id, name, token, private, endpoint, commit_message)
    return _push(out, repo_id, name, token, private, endpoint, commit_message)


def _push(out: Path, repo_id: str | None, name: str, token: str | None, private: bool, endpoint: str | None,
          commit_message: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=endpoint, token=token)
    gate = not private and gated_form(out)
    step = "the upload"
    try:
        if repo_id is None:  # your account, the card's suggested name
            repo_id = f"{api.whoami()['name']}/{name}"
        _refuse_other_visibility(api, repo_id, private)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # The card's form only words the request; the repo's setting switches requests on. A public repo only
        # (a private one admits nobody), and one that has none yet (an owner's automatic approval stays).
        if gate and not getattr(api.repo_info(repo_id, repo_type="dataset"), "gated", False):
            step = "switching access requests on"
            api.update_repo_settings(repo_id, gated="manual", repo_type="dataset")
            step = "the upload"
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(out),
            allow_patterns=ALLOW,
            delete_patterns=DELETE,
            commit_message=commit_message,
        )
    except OfflineModeIsEnabled as e:
        raise RuntimeError(f"cannot push: offline mode is on ({e})") from e
    except HfHubHTTPError as e:
        raise RuntimeError(f"the Hub refused {step} to {repo_id}: {e}") from e
    except _network_errors() as e:  # connection refused, DNS failure, timeouts: the environment, not the input
        raise EnvironmentFailure(f"cannot reach the Hub ({api.endpoint}): {e}") from e  # HF_ENDPOINT's, if set
    return str(getattr(info, "commit_url", info))
