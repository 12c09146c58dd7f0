"""``--au-detector py-feat`` / ``--face-detector py-feat`` in builds: the one-line failure where py-feat cannot
run (here: it cannot), and the wiring where it can, with a stand-in ``feat`` package whose detector answers in
py-feat's own result format (faces and 68 landmarks from dlib, AU probabilities scripted)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from unimer_builder import pyfeat_backend
from unimer_builder.cli import app

runner = CliRunner()

# A stand-in for py-feat 2.1.5's Detectorv1: the same constructor arguments and detect() call, a result with
# py-feat's columns. AU probabilities: 0.1 everywhere on the first frame of a call, RISES at 0.9 on the second.
FAKE_FEAT = '''
import numpy as np
import pandas as pd

RISES = {rises}
AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43)
CALLS = []


class Detectorv1:
    def __init__(self, **kwargs):
        from unimer_builder.face import FaceAligner

        CALLS.append(kwargs)
        self.dlib = FaceAligner()

    def detect(self, inputs, data_type="image", batch_size=1, progress_bar=True, **kwargs):
        assert data_type == "tensor" and tuple(inputs.shape[:2]) == (len(inputs), 3)
        rows = []
        for k in range(len(inputs)):
            grey = np.ascontiguousarray(inputs[k, 0].numpy().astype(np.uint8))
            box = self.dlib.detect(grey)
            row = dict(frame=k, input="tensor")
            if box is None:
                row.update(FaceRectX=np.nan, FaceRectY=np.nan, FaceRectWidth=np.nan, FaceRectHeight=np.nan,
                           FaceScore=np.nan)
            else:
                lm = self.dlib.landmarks(grey, box)
                l, t, r, b = box
                row.update(FaceRectX=l, FaceRectY=t, FaceRectWidth=r - l, FaceRectHeight=b - t, FaceScore=0.99)
                row.update({{f"x_{{i}}": lm[i, 0] for i in range(68)}})
                row.update({{f"y_{{i}}": lm[i, 1] for i in range(68)}})
                row.update({{f"AU{{a:02d}}": (0.9 if k == 1 and a in RISES else 0.1) for a in AUS}})
            rows.append(row)
        return pd.DataFrame(rows)
'''


def _feat(tmp_path: Path, body: str) -> Path:
    pkg = tmp_path / "fakefeat" / "feat"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return pkg.parent


@pytest.fixture
def feat(tmp_path, monkeypatch):
    """Install a stand-in ``feat`` package from its source text (every build makes its own py-feat detector)."""
    def install(body: str) -> None:
        monkeypatch.syspath_prepend(str(_feat(tmp_path, body)))
    monkeypatch.delitem(sys.modules, "feat", raising=False)
    yield install
    sys.modules.pop("feat", None)


@pytest.fixture(scope="module")
def smic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smic")
    res = runner.invoke(app, ["synth", str(root), "--format", "smic", "--clips", "3", "--subjects", "2", "--seed", "3",
                              "--frames", "10"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture(scope="module")
def casme2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casme2")
    res = runner.invoke(app, ["synth", str(root), "--format", "casme2", "--clips", "3", "--subjects", "2", "--seed", "5",
                              "--frames", "10"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return root


def _build(src: Path, out: Path, fmt: str, *extra: str):
    return runner.invoke(app, ["build", str(src), "--format", fmt, "--out", str(out), "--workers", "1", *extra],
                         catch_exceptions=False)


def _one_line_error(res) -> str:
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


# --- where py-feat cannot run: one line, exit 2, nothing built -------------------------------------------


def test_torchvision_that_does_not_pair_with_torch(smic, tmp_path, feat):
    feat('raise RuntimeError("operator torchvision::nms does not exist")')  # what import feat raises here
    for option in ("--au-detector", "--face-detector"):
        line = _one_line_error(_build(smic, tmp_path / option, "smic", option, "py-feat"))
        assert "operator torchvision::nms does not exist" in line
        assert "torch 2.13.0" in line and "torchvision" in line and "do not pair" in line
        assert not (tmp_path / option).exists()  # nothing written: not even the folder and its lock


def test_pyfeat_not_installed(smic, tmp_path, monkeypatch, feat):
    monkeypatch.setitem(sys.modules, "feat", None)  # import feat -> ModuleNotFoundError
    line = _one_line_error(_build(smic, tmp_path / "out", "smic", "--au-detector", "py-feat"))
    assert "py-feat is not installed" in line and "unimer[pyfeat]" in line and "CUDA torch" in line
    assert not (tmp_path / "out").exists()


def test_weights_that_cannot_be_fetched(smic, tmp_path, feat):
    feat('''
        from huggingface_hub.errors import LocalEntryNotFoundError

        class Detectorv1:
            def __init__(self, **kwargs):
                raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub and we "
                                              "cannot find the requested files in the local cache.")
        ''')
    line = _one_line_error(_build(smic, tmp_path / "out", "smic", "--au-detector", "py-feat"))
    assert "weights cannot be had" in line and "LocalEntryNotFoundError" in line
    assert "py-feat/xgb_au" in line and "HF_HUB_OFFLINE=1" in line and "fakefeat/feat/resources" in line


def test_other_failures_are_one_line_too(smic, tmp_path, feat):
    feat('''
        class Detectorv1:
            def __init__(self, **kwargs):
                raise ValueError("face_model must be one of ('img2pose', 'retinaface')")
        ''')
    line = _one_line_error(_build(smic, tmp_path / "out", "smic", "--au-detector", "py-feat"))
    assert "detector could not be created: ValueError" in line


def test_bad_option_values(smic, tmp_path):
    assert "--au-detector must be one of flow, py-feat" in _one_line_error(
        _build(smic, tmp_path / "a", "smic", "--au-detector", "openface"))
    assert "--face-detector must be one of dlib, py-feat" in _one_line_error(
        _build(smic, tmp_path / "b", "smic", "--face-detector", "mtcnn"))


# --- where it runs: the second opinion in the shards, the text, the report and the card --------------------


def _rows(out: Path) -> list[dict]:
    cols = ["clip_id", "task", "answer", "aus_source", "aus_supported", "verdicts", "au_sources", "regions",
            "moved_regions"]
    return [r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f, columns=cols).to_pylist()]


def test_unlabelled_database_states_what_both_sources_support(smic, tmp_path, feat):
    feat(FAKE_FEAT.format(rises="{4, 12, 1}"))
    plain = tmp_path / "plain"
    assert _build(smic, plain, "smic").exit_code == 0
    out = tmp_path / "pyfeat"
    res = _build(smic, out, "smic", "--au-detector", "py-feat")
    assert res.exit_code == 0, res.output
    assert sys.modules["feat"].CALLS[0] == dict(pyfeat_backend.MODELS, device="cpu")
    flow_alone = {r["clip_id"]: r["aus_supported"] for r in _rows(plain)}
    said = {}
    for r in _rows(out):
        src = {s["au"]: s for s in r["au_sources"]}
        assert r["aus_source"] == "inferred"
        assert r["aus_supported"] == sorted(a for a, s in src.items() if s["stated"])
        for a, s in src.items():
            said[(r["clip_id"], a)] = s["said_by"]
            assert (s["said_by"] == "both") == s["stated"]
            assert (s["pyfeat"] == "rises") == (a in (4, 12, 1))
            assert s["pyfeat_onset"] == pytest.approx(0.1) and s["pyfeat_apex"] == pytest.approx(0.9 if a in (4, 12, 1) else 0.1)
            if s["said_by"] == "flow":  # what the flow alone inferred, py-feat did not see: not in the text
                assert a in flow_alone[r["clip_id"]] and s["agreement"] == "disagree"
        if r["task"] in ("au", "explain"):
            from unimer_builder.render import parse_answer

            assert parse_answer(r["answer"])["aus"] == r["aus_supported"]
            if r["aus_supported"]:
                assert "facial appearance" in r["answer"]
    kinds = set(said.values())
    assert {"both", "py-feat"} <= kinds and ("flow" in kinds or all(
        set(v) <= {4, 12, 1} for v in flow_alone.values()))
    report = json.loads((out / "build_report.json").read_text())
    so = report["second_opinion"]
    assert so["source"] == "py-feat" and so["labelled"] == {}
    assert sum(v["both"] for v in so["unlabelled"].values()) == sum(k == "both" for k in said.values())
    assert report["config"]["check"]["au_detector"] == "py-feat" and "pyfeat" in report["run"]["mean_stage_seconds"]
    card = (out / "README.md").read_text()
    assert "## Second opinion: py-feat" in card and "AUs no label names: which source said them" in card
    assert "## Second opinion" not in (plain / "README.md").read_text()


def test_labelled_database_keeps_its_text_and_adds_pyfeat_to_each_verdict(casme2, tmp_path, feat):
    feat(FAKE_FEAT.format(rises="{4, 12}"))
    plain, out = tmp_path / "plain", tmp_path / "pyfeat"
    assert _build(casme2, plain, "casme2").exit_code == 0
    assert _build(casme2, out, "casme2", "--au-detector", "py-feat").exit_code == 0
    a, b = _rows(plain), _rows(out)
    assert [r["answer"] for r in a] == [r["answer"] for r in b]  # labels and motion decide the text
    assert [r["aus_supported"] for r in a] == [r["aus_supported"] for r in b]
    for r0, r in zip(a, b, strict=True):
        assert [v["verdict"] for v in r0["verdicts"]] == [v["verdict"] for v in r["verdicts"]]
        assert r0["au_sources"] == [] and all(v["pyfeat"] is None for v in r0["verdicts"])
        for v in r["verdicts"]:
            assert v["pyfeat"] == ("rises" if v["au"] in (4, 12) else "flat") or v["pyfeat"] == "undetected"
            if v["pyfeat"] in ("rises", "flat") and v["verdict"] in ("supported", "contradicted"):
                assert v["agreement"] == ("agree" if (v["verdict"] == "supported") == (v["pyfeat"] == "rises")
                                          else "disagree")
            else:
                assert v["agreement"] is None
    labelled = json.loads((out / "build_report.json").read_text())["second_opinion"]["labelled"]
    assert labelled and all(set(x) >= {"agree", "disagree", "no_call"} for x in labelled.values())
    assert "Labelled AUs: py-feat beside the flow" in (out / "README.md").read_text()


def test_pyfeat_faces_feed_the_same_alignment(casme2, tmp_path, feat):
    """With a face finder that returns dlib's own box and landmarks, --face-detector py-feat builds the same
    crops, flow and verdicts as dlib: the finder only replaces where the alignment starts."""
    feat(FAKE_FEAT.format(rises="set()"))
    plain, out = tmp_path / "plain", tmp_path / "pyfeat"
    assert _build(casme2, plain, "casme2").exit_code == 0
    assert _build(casme2, out, "casme2", "--face-detector", "py-feat").exit_code == 0
    a, b = _rows(plain), _rows(out)
    assert [r["regions"] for r in a] == [r["regions"] for r in b]
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    assert json.loads((out / "build_report.json").read_text())["config"]["face"]["detector"] == "py-feat"
