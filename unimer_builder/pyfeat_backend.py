"""py-feat, imported only when a build asks for it (``--au-detector py-feat``, ``--face-detector py-feat``).

py-feat runs where torch and torchvision are a matching pair (a CUDA torch with its torchvision, as the
PyTorch index ships them) and its weights can be had from the Hugging Face Hub (fetched into py-feat's
``resources`` folder on first use, or found there offline with ``HF_HUB_OFFLINE=1``). Elsewhere
:func:`load` raises :class:`PyFeatUnavailable` with one line saying why and what to do; the CLI prints
it and exits with status 2, before any clip is built.

Results go through :func:`.pyfeat_table.read_fex`, the same reader the tests run on py-feat's real output
files, and :func:`.second_opinion.appearance_from_table`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import warnings
from pathlib import Path

import numpy as np

from . import second_opinion as so
from .crosscheck import judge_aus
from .pyfeat_table import FexTable, read_fex

# py-feat's classic detector with only what the builder uses: RetinaFace boxes, MobileFaceNet's 68
# landmarks, the XGBoost AU classifiers (no emotion, identity or gaze models: fewer weights to fetch).
MODELS = dict(face_model="retinaface", landmark_model="mobilefacenet", au_model="xgb", emotion_model=None,
              identity_model=None, gaze_model=None)
WEIGHT_REPOS = ("py-feat/retinaface_r34", "py-feat/mobilefacenet", "py-feat/xgb_au")
INSTALL = "pip install 'unimer[pyfeat]'"
_FETCH_MODULES = ("huggingface_hub", "requests", "urllib3", "httpx", "httpcore")


class PyFeatUnavailable(RuntimeError):
    """py-feat cannot run here; the message is one line saying why and what to do."""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _pairing() -> str:
    return f"torchvision {version_of('torchvision')} and torch {version_of('torch')}"


def import_feat():
    """``import feat``, or :class:`PyFeatUnavailable` naming the reason."""
    try:
        return importlib.import_module("feat")
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "feat":
            raise PyFeatUnavailable(
                f"py-feat is not installed: {INSTALL} where a CUDA torch and its matching torchvision are "
                f"installed and the Hugging Face Hub is reachable (see README, 'py-feat')") from None
        raise PyFeatUnavailable(f"py-feat cannot be imported: {_one_line(e)} (a dependency is missing; "
                                f"reinstall with {INSTALL})") from None
    except Exception as e:  # noqa: BLE001 - any failure of the import is reported in one line
        text = _one_line(e)
        if "torchvision" in text or "operator" in text:
            raise PyFeatUnavailable(
                f"py-feat cannot be imported ({text}): {_pairing()} do not pair (torchvision's compiled "
                f"operators do not load against this torch; PyPI's torchvision is a CUDA build, which a CPU "
                f"torch cannot load). Install the torchvision built for this torch, e.g. both from the same "
                f"PyTorch index (a CUDA torch with its matching torchvision)") from None
        raise PyFeatUnavailable(f"py-feat cannot be imported ({text}; {_pairing()}). It needs a torch and "
                                f"torchvision that pair, e.g. a CUDA torch with its matching torchvision") from None


def _resources(feat) -> str:
    try:
        return str(Path(feat.__path__[0]) / "resources")
    except Exception:  # noqa: BLE001 - only for the message
        return "py-feat's resources folder"


def _fetch_failure(e: BaseException) -> bool:
    """The exception (or one it came from) is a failed download or a missing cached file."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__module__.split(".")[0] in _FETCH_MODULES or isinstance(e, (OSError, ConnectionError,
                                                                                   TimeoutError)):
            return True
        e = e.__cause__ or e.__context__
    return False


def load(device: str = "auto"):
    """py-feat's detector (:data:`MODELS`) on ``device`` (``auto``: CUDA when torch sees one), or
    :class:`PyFeatUnavailable` when py-feat cannot be imported or its weights cannot be had."""
    feat = import_feat()
    cls = getattr(feat, "Detectorv1", None) or getattr(feat, "Detector", None)
    if cls is None:
        raise PyFeatUnavailable(f"py-feat {version_of('py-feat')} has neither Detectorv1 nor Detector; "
                                f"{INSTALL} installs the py-feat this builder was written for")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on pose models and deprecated arguments
            return cls(**MODELS, device=device)
    except Exception as e:  # noqa: BLE001 - reported in one line
        if _fetch_failure(e):
            res = _resources(feat)
            raise PyFeatUnavailable(
                f"py-feat's model weights cannot be had ({_one_line(e)}): it needs {', '.join(WEIGHT_REPOS)} from "
                f"the Hugging Face Hub, cached in {res}. Fetch them once where the Hub is reachable (one run "
                f"of this command there, or huggingface_hub.snapshot_download(repo, cache_dir='{res}') for "
                f"each), then run with HF_HUB_OFFLINE=1 (without it every missing file is retried for about a "
                f"minute)") from None
        raise PyFeatUnavailable(f"py-feat's detector could not be created: {_one_line(e)}") from None


class PyFeat:
    """One loaded py-feat detector: faces with 68 landmarks, and AU presence, for a few frames at a time."""

    def __init__(self, device: str = "auto"):
        self.detector = load(device)

    def detect(self, frames: list[np.ndarray]) -> FexTable:
        """py-feat on equal-size frames (grey or RGB uint8); row ``frame`` k is ``frames[k]``."""
        import torch

        imgs = [np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f for f in frames]
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).permute(0, 3, 1, 2).float()
        # py-feat 2.1.5 draws a tqdm bar on stderr even with progress_bar=False; it would break the build's own.
        with contextlib.redirect_stderr(io.StringIO()):
            fex = self.detector.detect(batch, data_type="tensor", batch_size=len(frames), progress_bar=False)
        return read_fex(fex, source="py-feat result")

    def find_face(self, grey: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray] | None:
        """The subject's face in a frame: ((left, top, right, bottom), 68 x 2 landmarks), or None.
        This is :class:`.face.FaceAligner`'s ``finder`` for ``--face-detector py-feat``."""
        f = self.detect([grey]).face_in(0)
        if f is None or f.landmarks is None:
            return None
        x, y, w, h = f.box
        return (x, y, x + w, y + h), f.landmarks


def second_opinion(clip, evidence, check, cfg, reader, pyfeat: PyFeat):
    """py-feat's AUs on the clip's onset and apex frames, joined with the flow's verdicts."""
    table = pyfeat.detect([reader.get(clip.onset), reader.get(evidence.apex)])
    x, y, w, h = evidence.face.box
    app = so.appearance_from_table(table, 0, 1, near=(x, y, w, h) if w > 0 and h > 0 else None)
    flow = judge_aus(clip, evidence, cfg, app.aus)
    return so.combine(check, app, flow, rise_min=cfg.check.pyfeat_rise_min,
                      present_min=cfg.check.pyfeat_present_min)
