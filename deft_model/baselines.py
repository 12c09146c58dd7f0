"""Baselines scored on DEFT-LLM's own folds, so that its figures have something to beat.

* ``logreg_regions``: logistic regression (scikit-learn, standardised features) on the builder's
  per-region motion statistics (17 regions x 8 statistics: the ``regions`` column).
* ``flow_cnn``: a small STSTNet-like CNN (Liong et al., 2019: three parallel 3x3 conv branches of 3, 5 and
  8 channels, max-pooled, concatenated, average-pooled, one linear layer) on the shard's (u, v, strain)
  flow resized to 28 px, trained per fold from scratch.

One prediction per clip; UF1/UAR on predictions pooled over the folds (as ``evaluate`` scores DEFT-LLM).
Every hyper-parameter is fixed below, in advance; nothing is chosen on a held-out subject (the input
standardisation uses the training subjects' clips only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unimer_builder import COMPOSITE

from .configuration import tiny_config
from .data import ShardSet
from .errors import ShardError

LOGREG = {"C": 1.0, "max_iter": 5000}
FLOW_CNN = {"size": 28, "channels": (3, 5, 8), "epochs": 100, "batch_size": 16, "lr": 1e-3, "weight_decay": 1e-4}
TITLES = {"logreg_regions": "logistic regression on region statistics",
          "flow_cnn": "flow CNN (STSTNet-like) on (u, v, strain)"}


class FlowCNN(nn.Module):
    def __init__(self, n_classes: int, channels: Sequence[int] = FLOW_CNN["channels"], size: int = FLOW_CNN["size"]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c), nn.MaxPool2d(3, 3, padding=1))
            for c in channels)
        side = (size + 2 - 3) // 3 + 1
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(sum(channels) * (side // 2) ** 2, n_classes)

    def forward(self, x):
        return self.fc(self.pool(torch.cat([b(x) for b in self.branches], 1)).flatten(1))


def clip_data(data: str | Path, protocol: str = "loso", extra_data: Sequence[str | Path] = (),
              emotion_target: str = "canonical") -> dict:
    """One entry per clip (its first row) that has a target: region statistics, flow, label, fold, and whether it
    comes from extra training data (always trained on, never held out). Extra clips whose target is not among
    the data's classes are left out (the baselines have no AU head they could train). ``emotion_target``: the
    model's (a database's own class set, ``class``, scores other clips on other classes than ``canonical``)."""
    cfg = tiny_config(experts=["motion"], flow_size=FLOW_CNN["size"],
                      emotion_target="composite" if protocol == "composite" else emotion_target)
    shards = ShardSet(data, cfg, extra=extra_data)
    targets = shards.targets()
    own = set(shards.emotion_labels())
    seen, rows = set(), []
    for r in range(shards.n):
        if shards.clip_ids[r] not in seen and targets[r] in own:
            seen.add(shards.clip_ids[r])
            rows.append(r)
    if not rows:
        raise ShardError(f"no clip in {data} has a target for protocol {protocol!r}")
    shards.load_visuals(rows)
    return {
        "clip_id": [shards.clip_ids[r] for r in rows], "database": [shards.database[r] for r in rows],
        "subject": [shards.subject[r] for r in rows], "fold": [shards.folds[r] for r in rows],
        "extra": np.array([bool(shards.is_extra[r]) for r in rows]),
        "label": [targets[r] for r in rows], "stats": shards.region_stats[rows].reshape(len(rows), -1),
        "flow": shards.flow[shards.row_clip[rows]].astype(np.float32),
        "classes": sorted({targets[r] for r in rows}),
    }


def _logreg(train_x, train_y, test_x, seed: int) -> list[str]:
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:
        raise RuntimeError("the logistic-regression baseline needs scikit-learn: pip install 'unimer[eval]'") from e

    if len(set(train_y)) < 2:  # a fold whose training clips hold one class: the classifier can only say it
        return [train_y[0]] * len(test_x)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=LOGREG["C"], max_iter=LOGREG["max_iter"],
                                                             random_state=seed))
    clf.fit(train_x, train_y)
    return list(clf.predict(test_x))


def _flow_cnn(train_x, train_y, test_x, classes: list[str], seed: int) -> list[str]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs fastest on one thread
    try:
        return _train_flow_cnn(train_x, train_y, test_x, classes, seed)
    finally:
        torch.set_num_threads(threads)


def _train_flow_cnn(train_x, train_y, test_x, classes: list[str], seed: int) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mean = train_x.mean((0, 2, 3), keepdims=True)
    std = train_x.std((0, 2, 3), keepdims=True) + 1e-6
    x = torch.from_numpy((train_x - mean) / std)
    y = torch.tensor([classes.index(c) for c in train_y])
    net = FlowCNN(len(classes))
    opt = torch.optim.AdamW(net.parameters(), lr=FLOW_CNN["lr"], weight_decay=FLOW_CNN["weight_decay"])
    bs = FLOW_CNN["batch_size"]
    net.train()
    for _ in range(FLOW_CNN["epochs"]):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy((test_x - mean) / std)).argmax(-1).tolist()
    return [classes[i] for i in pred]


def evaluate_baselines(data: str | Path, folds: Sequence[str] | None = None, protocol: str = "loso", seed: int = 0,
                       out_dir: str | Path | None = None, extra_data: Sequence[str | Path] = (),
                       emotion_target: str = "canonical") -> dict:
    """Both baselines over ``folds`` (default: every subject), pooled UF1/UAR per baseline; with ``out_dir``
    the per-clip predictions go to ``<protocol>_baseline_predictions.jsonl`` there. ``extra_data``: builds
    every fold also trains on, as DEFT-LLM's folds do; ``emotion_target``: the model's, so that both score the
    same clips on the same classes. A fold with no clip that has a target (a subject without emotion labels, which
    DEFT-LLM scores for its AUs only) has nothing to score and is left out."""
    from .evaluate import classification_metrics, per_fold_scores

    d = clip_data(data, protocol, extra_data, emotion_target)
    fold_of = np.array(d["fold"])
    asked = list(folds) if folds else sorted(set(fold_of[~d["extra"]]))
    keys = [k for k in asked if k in set(fold_of[~d["extra"]])]
    if not keys:
        raise ShardError(f"no fold of {data} asked for has a clip with a target for protocol {protocol!r}")
    labels = np.array(d["label"], dtype=object)
    preds = {name: {} for name in TITLES}
    for key in keys:
        i = asked.index(key)  # each fold's seed by its place among the folds asked: the same whichever are left out
        test = np.nonzero((fold_of == key) & ~d["extra"])[0]
        train = np.nonzero((fold_of != key) | d["extra"])[0]
        if not len(train):
            raise ShardError(f"fold {key!r} leaves no training clips")
        fold_seed = seed * 1000 + i
        for j, p in zip(test, _logreg(d["stats"][train], labels[train], d["stats"][test], fold_seed), strict=True):
            preds["logreg_regions"][j] = p
        for j, p in zip(test, _flow_cnn(d["flow"][train], labels[train], d["flow"][test], d["classes"], fold_seed),
                        strict=True):
            preds["flow_cnn"][j] = p
    order = [j for key in keys for j in np.nonzero((fold_of == key) & ~d["extra"])[0]]
    classes = list(COMPOSITE) if protocol == "composite" else None
    out: dict[str, dict] = {}
    lines = []
    for name, pr in preds.items():
        clips = [{"clip_id": d["clip_id"][j], "database": d["database"][j], "subject": d["subject"][j],
                  "fold": d["fold"][j], "label": d["label"][j], "head": pr[j], "baseline": name} for j in order]
        m = classification_metrics([c["label"] for c in clips], [c["head"] for c in clips], classes)
        out[name] = {"title": TITLES[name], "n_clips": len(clips), "uf1": m["uf1"], "uar": m["uar"], "acc": m["acc"],
                     "per_class": m["per_class"], "per_fold": per_fold_scores(clips, protocol), "seed": seed,
                     "settings": LOGREG if name == "logreg_regions" else {**FLOW_CNN, "channels": list(FLOW_CNN["channels"])}}
        lines += [json.dumps(c) for c in clips]
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / f"{protocol}_baseline_predictions.jsonl").write_text("\n".join(lines) + "\n")
    return out
