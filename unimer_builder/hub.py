"""Publish a built folder (``README.md``, ``data/``, ``build_report.json``) as a Hub dataset repo."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from .card import default_repo_name, is_synthetic

ALLOW = ["README.md", "build_report.json", "data/*.parquet"]


def check_folder(out_dir: Path | str) -> list[str]:
    """The files :func:`push` would upload; raises ``FileNotFoundError`` naming what is missing."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder")
    if not (out / "README.md").is_file():
        raise FileNotFoundError(f"{out / 'README.md'}: dataset card missing; run the build (it writes the card)")
    shards = sorted((out / "data").glob("train-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{out / 'data'}: no shards (train-*.parquet); run the build first")
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
                      for d in pq.read_table(p, columns=["database"]).column("database").to_pylist()})
    return default_repo_name(dbs, is_synthetic(report))


def push(
    out_dir: Path | str,
    repo_id: str | None,
    token: str | None = None,
    private: bool = True,
    endpoint: str | None = None,
    commit_message: str = "Upload Uni-MER build",
) -> str:
    """Create (if needed) the dataset repo ``repo_id`` and upload the build; returns the commit URL.

    Private by default: the source databases' licences rarely allow public redistribution. Without
    ``repo_id`` the repo is ``<your account>/<suggested_name(out_dir)>``.
    Raises ``FileNotFoundError`` for an incomplete folder, ``ValueError`` for a bad repo id and
    ``RuntimeError`` when offline or when the Hub refuses.
    """
    out = Path(out_dir)
    check_folder(out)
    if repo_id is not None and (repo_id.count("/") != 1 or any(not p for p in repo_id.split("/"))):
        raise ValueError(f"repo id must look like 'owner/name', not {repo_id!r}")
    if _offline():
        raise RuntimeError(
            "cannot push: Hugging Face Hub offline mode is on (HF_HUB_OFFLINE=1); unset it to upload"
        )

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=endpoint, token=token)
    try:
        if repo_id is None:  # your account, the card's suggested name
            repo_id = f"{api.whoami()['name']}/{suggested_name(out)}"
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(out),
            allow_patterns=ALLOW,
            commit_message=commit_message,
        )
    except OfflineModeIsEnabled as e:
        raise RuntimeError(f"cannot push: offline mode is on ({e})") from e
    except HfHubHTTPError as e:
        raise RuntimeError(f"the Hub refused the upload to {repo_id}: {e}") from e
    except _network_errors() as e:  # connection refused, DNS failure, timeouts
        raise RuntimeError(f"cannot reach the Hub ({endpoint or 'huggingface.co'}): {e}") from e
    return str(getattr(info, "commit_url", info))
