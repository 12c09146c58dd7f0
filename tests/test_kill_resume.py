"""Issue 10, "What it must show": kill -9 at random moments, an input changed before the re-run, the same
output as an uninterrupted build (a small version; ``bench/kills.py`` runs the full one, >= 10 kills)."""

from __future__ import annotations

import shutil

import pytest

from unimer_builder import synthesize
from unimer_builder.validation.kills import kill_and_resume


@pytest.mark.slow
def test_kills_at_random_moments_then_a_changed_label_give_the_uninterrupted_output(tmp_path):
    root = synthesize(tmp_path / "src", "casme2", clips=2, subjects=1, seed=5, frames=8)
    res = kill_and_resume(root, tmp_path / "work", kills=3, workers=1, seed=1)
    print(res)
    assert res["ok"], res
    assert res["done_before_change"] >= 1
    shutil.rmtree(tmp_path / "work")
