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
    """`unimer synth` + `unimer build` of 5 CASME II-format clips of 2 subjects, one clip's frames deleted so
    that the build also has a skipped clip (exit status 1); shared by the report and export tests."""
    from typer.testing import CliRunner

    from unimer_builder.cli import app

    runner = CliRunner()
    root = tmp_path_factory.mktemp("small_src")
    res = runner.invoke(app, ["synth", str(root), "--format", "casme2", "--clips", "5", "--subjects", "2",
                              "--seed", "3", "--frames", "10"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    shutil.rmtree(root / "CASME2_RAW_selected" / "sub02" / "EP02_01f")
    out = tmp_path_factory.mktemp("small_build")
    res = runner.invoke(app, ["build", str(root), "--format", "casme2", "--out", str(out), "--workers", "1",
                              "--seed", "7"], catch_exceptions=False)
    assert res.exit_code == 1, res.output  # the clip without frames is skipped
    return out
