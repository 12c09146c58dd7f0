"""UF1/UAR/accuracy/AU F1 on hand-computed examples."""

from __future__ import annotations

import pytest

from deft_model.evaluate import au_metrics, classification_metrics


def test_uf1_uar_hand_computed():
    # classes a (3 samples), b (2), c (1)
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    m = classification_metrics(y_true, y_pred)
    # a: TP2 FP0 FN1 -> F1 4/5, recall 2/3; b: TP1 FP1 FN1 -> F1 2/4, recall 1/2; c: TP1 FP1 FN0 -> F1 2/3, recall 1
    assert m["uf1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert m["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"] == {"tp": 1, "fp": 1, "fn": 1, "n": 2, "f1": 0.5, "recall": 0.5}


def test_missing_prediction_counts_as_wrong_but_not_as_a_false_positive():
    m = classification_metrics(["a", "b"], ["a", None])
    assert m["per_class"]["a"]["fp"] == 0 and m["per_class"]["b"]["fn"] == 1
    assert m["uf1"] == pytest.approx((1 + 0) / 2)
    assert m["acc"] == 0.5


def test_pooled_is_not_the_mean_of_per_fold_scores():
    # fold 1 holds only class a (predicted right), fold 2 class b predicted as a
    pooled = classification_metrics(["a", "b"], ["a", "a"])
    assert pooled["uf1"] == pytest.approx((2 / 3 + 0) / 2)
    assert pooled["uar"] == pytest.approx(0.5)


def test_fixed_class_list_ignores_absent_classes_in_the_mean():
    m = classification_metrics(["negative", "negative"], ["negative", "surprise"], ["negative", "positive", "surprise"])
    assert m["uf1"] == pytest.approx(2 / 3)
    assert m["per_class"]["surprise"]["fp"] == 1


def test_au_f1():
    m = au_metrics([[1, 2], [12], [12, 6]], [[1], [12, 6], [12]], [1, 2, 6, 12])
    # AU1 1.0; AU2 0; AU6 TP0 FP1 FN1 -> 0; AU12 TP2 -> 1.0
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))

