import os

# Hub misses fail at once instead of retrying; nothing in the tests may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_build(tmp_path_factory) -> Path:
    """A synthetic database of 5 CASME II-format clips of 2 subjects and its build, one clip's frames deleted
    so that the build also has a skipped clip; shared by the report and export tests."""
    from unimer_builder import BuildConfig, TextConfig, build, synthesize

    root = synthesize(tmp_path_factory.mktemp("small_src"), "casme2", clips=5, subjects=2, seed=3, frames=10)
    shutil.rmtree(root / "CASME2_RAW_selected" / "sub02" / "EP02_01f")
    out = tmp_path_factory.mktemp("small_build")
    report = build(root, out, BuildConfig(text=TextConfig(seed=7, composite="labels")), "casme2", workers=1)
    assert [s["clip_id"] for s in report["skipped"]] == ["casme2/sub02/EP02_01f"]  # the clip without frames
    return out


@pytest.fixture(scope="session")
def no_images_build(small_build, tmp_path_factory) -> Path:
    """``small_build`` as ``--no-images`` leaves it: the shards without the face pixel columns (the same
    stripping ``unimer push --no-images`` does), with its card and report."""
    from unimer_builder.consolidate import strip_images

    out = tmp_path_factory.mktemp("no_images_build")
    (out / "data").mkdir()
    strip_images(small_build / "data", out / "data")
    for name in ("README.md", "build_report.json"):
        shutil.copyfile(small_build / name, out / name)
    return out
