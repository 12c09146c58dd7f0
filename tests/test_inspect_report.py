"""`unimer inspect`: the static report's files and content, and the pages in a real headless Chromium."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from unimer_builder import shards
from unimer_builder.cli import app
from unimer_builder.inspect_report import region_status, slug

runner = CliRunner()


@pytest.fixture(scope="module")
def report_dir(small_build, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("report") / "inspect"
    res = runner.invoke(app, ["inspect", str(small_build), "--dest", str(dest)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return dest


def _rows(out: Path) -> list[dict]:
    return shards.read_shards(out, columns=["id", "clip_id", "subject", "task", "instruction", "answer",
                                             "verdicts", "unexplained", "moved_regions"]).to_pylist()


def _text(page: Path) -> str:
    """The page's text with tags removed and entities decoded (what a reader sees)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_every_clip_has_a_page_with_its_pictures_and_every_answer(small_build, report_dir):
    rows = _rows(small_build)
    clips = list(dict.fromkeys(r["clip_id"] for r in rows))
    assert len(clips) == 4
    for c in clips:
        page = report_dir / "clips" / f"{slug(c)}.html"
        text = _text(page)
        for r in (r for r in rows if r["clip_id"] == c):
            assert r["instruction"] in text
            assert r["answer"].replace("**", "") in text  # the emotion's bold markers become <strong>
        for v in next(r for r in rows if r["clip_id"] == c)["verdicts"]:
            assert v["reason"] in text
        for name in ("onset", "apex", "flow", "arrows", "regions"):
            png = report_dir / "clips" / slug(c) / f"{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
            assert f'src="{slug(c)}/{name}.png"' in page.read_text()
    assert len(list((report_dir / "clips").glob("*.html"))) == len(clips)


def test_summary_shows_skips_settings_agreement_and_filter_values(small_build, report_dir):
    report = json.loads((small_build / "build_report.json").read_text())
    page = (report_dir / "index.html").read_text()
    text = _text(report_dir / "index.html")
    skip = report["skipped"][0]
    assert skip["clip_id"] in text and skip["reason"] in text and skip["message"] in text
    assert report["config_fingerprint"] in text and "flow.preset" in text
    for au in report["agreement"]["all"]:
        assert f"<td>{au}</td>" in page
    for p in ("verdicts.png", "z.png", "magnitude.png", "flow_wheel.png"):
        assert (report_dir / "plots" / p).read_bytes()[:4] == b"\x89PNG"
    # one table row per clip, carrying what the filters match on
    rows = _rows(small_build)
    first = {r["clip_id"]: r for r in reversed(rows)}
    found = re.findall(r'<tr class="clip-row" data-verdicts="([^"]*)" data-aus="([^"]*)" data-subject="([^"]*)"', page)
    assert len(found) == len(first)
    want_subjects = sorted(r["subject"] for r in first.values())
    assert sorted(f[2] for f in found) == want_subjects
    for c, r in first.items():
        verdicts = {v["verdict"] for v in r["verdicts"]} | ({"unexplained"} if r["unexplained"] else set())
        assert any(set(f[0].split()) == verdicts for f in found), c


def test_region_status_takes_the_worst_verdict_then_unexplained_then_moved():
    info = {"verdicts": [{"region": "chin", "verdict": "supported"}, {"region": "chin", "verdict": "weak"},
                         {"region": "nose", "verdict": "unverifiable"}],
            "unexplained": [{"region": "glabella"}, {"region": "chin"}], "moved_regions": ["cheek_L", "nose"]}
    st = region_status(info)
    assert st["chin"] == "weak" and st["nose"] == "unverifiable" and st["glabella"] == "unexplained"
    assert st["cheek_L"] == "moved" and st["lip_corner_R"] == "still"


def test_one_clip_page_and_unknown_clip(small_build, tmp_path):
    clip = _rows(small_build)[0]["clip_id"]
    dest = tmp_path / "one"
    res = runner.invoke(app, ["inspect", str(small_build), "--dest", str(dest), "--clip", clip])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (dest / "clips").glob("*.html")] == [f"{slug(clip)}.html"]
    assert not (dest / "index.html").exists()
    res = runner.invoke(app, ["inspect", str(small_build), "--dest", str(dest), "--clip", "casme2/nobody/x"])
    assert res.exit_code == 2 and "casme2/nobody/x" in res.output
    assert (dest / "clips" / f"{slug(clip)}.html").is_file()  # a failed run leaves what was there


# --- in a real browser --------------------------------------------------------------------------


def _browser():
    from unimer_builder.validation import browser

    if browser.find_chromium() is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium chromium-driver; .ci/run does)")
    return browser


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_a_missing_image_is_broken_and_a_lazy_one_far_down_the_page_is_not(tmp_path):
    """browser.broken_images: lazy images below the fold are made eager and waited for (on a busy CI machine three
    of the report's flow images were checked before they had loaded, and called broken); a missing file is broken."""
    from PIL import Image

    browser = _browser()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "ok.png")
    (tmp_path / "page.html").write_text('<html><body><img src="missing.png"><div style="height: 5000px"></div>'
                                        + "".join(f'<img loading="lazy" src="ok.png?{i}">' for i in range(20))
                                        + "</body></html>")
    with browser.headless_chromium() as driver:
        driver.get((tmp_path / "page.html").resolve().as_uri())
        assert browser.broken_images(driver) == ["missing.png"]


def test_pages_load_in_chromium_without_errors_and_show_the_images(small_build, report_dir):
    browser = _browser()
    clip = _rows(small_build)[0]["clip_id"]
    with browser.headless_chromium() as driver:
        driver.get((report_dir / "index.html").resolve().as_uri())
        assert browser.console_errors(driver) == []
        assert browser.broken_images(driver) == []
        plot = driver.find_element("css selector", 'img[src="plots/verdicts.png"]')
        # an element screenshot keeps only the part inside the viewport: bring the whole plot into view
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", plot)
        px = _pixels(plot.screenshot_as_png)
        assert px.shape[0] == plot.size["height"], (px.shape, plot.size)
        assert px.std() > 20 and (np.abs(px - px.mean(axis=2, keepdims=True)).max(axis=2) > 60).any()  # coloured bars

        # the filters hide the other subjects' clips, and say how many are shown
        subjects = sorted({r["subject"] for r in _rows(small_build)})
        rows = driver.find_elements("css selector", "tr.clip-row")
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element("id", "f-subject")).select_by_value(subjects[0])
        visible = [r for r in rows if r.is_displayed()]
        want = [r for r in rows if r.get_attribute("data-subject") == subjects[0]]
        assert visible == want and 0 < len(visible) < len(rows)
        assert driver.find_element("id", "f-count").text == f"{len(want)} of {len(rows)} clips"
        Select(driver.find_element("id", "f-subject")).select_by_value("")
        Select(driver.find_element("id", "f-verdict")).select_by_value("contradicted")
        shown = [r for r in rows if r.is_displayed()]
        assert all("contradicted" in r.get_attribute("data-verdicts").split() for r in shown)
        assert len(shown) == sum("contradicted" in r.get_attribute("data-verdicts").split() for r in rows)
        assert browser.console_errors(driver) == []

        driver.get((report_dir / "clips" / f"{slug(clip)}.html").resolve().as_uri())
        assert browser.console_errors(driver) == []
        assert browser.broken_images(driver) == []
        shot = _pixels(driver.get_screenshot_as_png())
        for name, coloured in (("onset", False), ("flow", True), ("regions", True)):
            el = driver.find_element("css selector", f'img[src="{slug(clip)}/{name}.png"]')
            r = el.rect
            box = shot[int(r["y"]) + 2:int(r["y"] + r["height"]) - 2, int(r["x"]) + 2:int(r["x"] + r["width"]) - 2]
            assert box.size and box.std() > 10, name  # a picture, not an empty box
            chroma = (box.max(axis=2) - box.min(axis=2))
            if coloured:
                assert (chroma > 80).mean() > 0.002, name  # saturated flow colours / region outlines
            else:
                assert np.percentile(chroma, 99) < 12, name  # the grey face crop


def test_a_missing_build_folder_is_an_error_and_leaves_nothing_behind(tmp_path):
    """`unimer inspect` on a mistyped path made the folder (and its inspect/ report folder) before failing."""
    missing = tmp_path / "nope"
    res = runner.invoke(app, ["inspect", str(missing)])
    assert res.exit_code == 2 and "no such build folder" in res.output
    assert not missing.exists()


def test_a_report_folder_that_holds_anything_else_is_refused_untouched(small_build, report_dir, tmp_path):
    """`unimer inspect BUILD --dest DIR` replaced DIR whatever it held: a database, a folder of one's own files, the
    build itself (`--dest BUILD`) were deleted, with exit 0."""
    mine = tmp_path / "thesis"
    (mine / "docs").mkdir(parents=True)
    (mine / "docs" / "thesis.tex").write_text("mine")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    clips_only = tmp_path / "project"  # a folder of one's own that holds a "clips" folder is no report either
    (clips_only / "clips" / "take1").mkdir(parents=True)
    (clips_only / "clips" / "take1" / "face.mp4").write_bytes(b"video")
    for dest, says in ((mine, "holds files no inspection report wrote (docs)"),
                       (small_build, "holds files no inspection report wrote"),
                       (clips_only, "holds files no inspection report wrote (clips)"),
                       (a_file, "it is a file, not a folder")):
        before = sorted(p.relative_to(tmp_path.parent) for p in dest.rglob("*")) if dest.is_dir() else a_file.read_text()
        for extra in ([], ["--clip", "casme2/sub01/EP02_01f"]):
            res = runner.invoke(app, ["inspect", str(small_build), "--dest", str(dest), *extra])
            said = "".join(res.output.split("\n"))
            assert res.exit_code == 2 and says in said and "shard" not in said, res.output
        after = sorted(p.relative_to(tmp_path.parent) for p in dest.rglob("*")) if dest.is_dir() else a_file.read_text()
        assert after == before
    # an earlier report is replaced, as before, whatever a file browser left in it
    (report_dir / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    again = runner.invoke(app, ["inspect", str(small_build), "--dest", str(report_dir)], catch_exceptions=False)
    assert again.exit_code == 0 and (report_dir / "index.html").is_file()


def test_a_build_without_face_images_is_reported_from_its_motion(no_images_build, tmp_path):
    """`unimer inspect` on a `--no-images` build (a documented mode, for licences that forbid publishing faces)
    failed on its first clip ("column 'onset_image' has no image"): its flow, arrows and regions are drawn, and
    its pages say the face crops are not in the build instead of linking pictures that do not exist."""
    dest = tmp_path / "inspect"
    res = runner.invoke(app, ["inspect", str(no_images_build), "--dest", str(dest)])
    assert res.exit_code == 0, res.output
    clips = list(dict.fromkeys(r["clip_id"] for r in _rows(no_images_build)))
    for c in clips:
        page = dest / "clips" / f"{slug(c)}.html"
        for name in ("flow", "arrows", "regions"):
            assert (dest / "clips" / slug(c) / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
            assert f'src="{slug(c)}/{name}.png"' in page.read_text()
        for name in ("onset", "apex"):
            assert not (dest / "clips" / slug(c) / f"{name}.png").exists()
            assert f"{name}.png" not in page.read_text()
        assert "--no-images" in _text(page)


def test_a_build_into_an_earlier_builds_folder_removes_its_stale_inspection_report(small_build, tmp_path):
    """A new user built another manifest into an earlier build's folder: data/ held the new clips while
    inspect/ still showed the five removed ones. The report of replaced shards is removed, and the summary says so;
    a build with nothing to write (up to date) leaves a fresh report alone."""
    import shutil

    from unimer_builder import synthesize

    out = tmp_path / "out"
    shutil.copytree(small_build, out)
    assert runner.invoke(app, ["inspect", str(out)]).exit_code == 0
    assert (out / "inspect" / "index.html").is_file()
    src = synthesize(tmp_path / "src", "casme2", clips=1, subjects=1, seed=5, frames=8)
    res = runner.invoke(app, ["build", str(src), "--format", "casme2", "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert not (out / "inspect").exists()
    assert "inspection report of the earlier build" in " ".join(res.output.split())
    assert json.loads((out / "build_report.json").read_text())["inspect_removed"] is True
    assert runner.invoke(app, ["inspect", str(out)]).exit_code == 0
    res = runner.invoke(app, ["build", str(src), "--format", "casme2", "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0 and "up to date" in res.output and (out / "inspect" / "index.html").is_file()
    assert not (out / ".unimer.lock").read_text()  # the lock file names a running build only
