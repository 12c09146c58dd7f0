"""The ``flow_image`` and ``landmarks`` columns, the flow colour code, and the licence-aware card."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from unimer_builder import card, flowviz, shards
from unimer_builder.config import BuildConfig


def _hue_deg(rgb: np.ndarray) -> float:
    hsv = cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(1, 1, 3), cv2.COLOR_RGB2HSV_FULL)
    return float(hsv[0, 0, 0]) * 360.0 / 256.0


@pytest.mark.parametrize("u, v, hue", [(1.0, 0.0, 0.0), (0.0, 1.0, 90.0), (-1.0, 0.0, 180.0), (0.0, -1.0, 270.0)])
def test_colour_code_hue_is_direction(u, v, hue):
    rgb = flowviz.flow_to_rgb(np.full((2, 2, 2), (u * 5, v * 5), np.float32))[0, 0]
    assert abs((_hue_deg(rgb) - hue + 180) % 360 - 180) < 3
    assert rgb.min() < 5  # full saturation beyond FULL_PX


def test_colour_code_saturation_is_magnitude_on_a_fixed_scale():
    mags = [0.0, 0.25 * flowviz.FULL_PX, 0.5 * flowviz.FULL_PX, flowviz.FULL_PX, 3 * flowviz.FULL_PX]
    flow = np.zeros((1, len(mags), 2), np.float32)
    flow[0, :, 0] = mags
    rgb = flowviz.flow_to_rgb(flow)[0].astype(int)
    sat = 255 - rgb.min(axis=1)  # white (still) -> 0, full colour -> 255
    assert sat[0] == 0 and tuple(rgb[0]) == (255, 255, 255)
    assert abs(sat[1] - 64) <= 2 and abs(sat[2] - 128) <= 2 and sat[3] == sat[4] == 255
    # the same motion gets the same colour whatever else is in the picture (no per-image normalisation)
    alone = flowviz.flow_to_rgb(flow[:, 1:2])[0, 0]
    assert tuple(alone) == tuple(rgb[1])


def test_flow_image_column_is_an_image_of_the_clips_own_flow(small_build):
    import datasets

    ds = datasets.load_dataset(str(small_build), split="train")
    assert isinstance(ds.features["flow_image"], datasets.Image)
    t = shards.read_shards(small_build, columns=["clip_id", "flow", "flow_image", "landmarks"])
    flows = shards.flow_numpy(t.column("flow"))
    clip_ids = t.column("clip_id").to_pylist()
    first = {c: i for i, c in reversed(list(enumerate(clip_ids)))}
    assert len(first) >= 2
    size = BuildConfig().face.crop_size
    for c, i in first.items():
        img = ds[i]["flow_image"]
        assert img.mode == "RGB" and img.size == (size, size)
        small = cv2.resize(np.asarray(img), (flows.shape[-1],) * 2, interpolation=cv2.INTER_AREA).astype(float)
        own = flowviz.flow_to_rgb(flows[i, :2].astype(np.float32)).astype(float)
        others = [flowviz.flow_to_rgb(flows[j, :2].astype(np.float32)).astype(float)
                  for cc, j in first.items() if cc != c]
        d_own = np.abs(small - own).mean()
        assert d_own < 12, (c, d_own)  # the picture is this clip's flow (up to resizing)...
        assert all(d_own < 0.7 * np.abs(small - o).mean() for o in others)  # ...and not another clip's
        lm = np.asarray(t.column("landmarks")[i].as_py(), float)
        assert lm.shape == (68, 2) and (lm > 0).all() and (lm < size).all()
        assert lm[36:48, 1].mean() < lm[48:68, 1].mean()  # eyes above the mouth


def test_card_yaml_validates_and_names_the_source_licence(small_build):
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    cd = DatasetCard.load(small_build / "README.md")
    data = cd.data.to_dict()
    # a build of `unimer synth` output: the synthetic-source licence, no access form
    assert data["license"] == "other" and data["license_name"] == "synthetic-public-domain-face"
    assert data["license_link"].startswith("https://") and "extra_gated_fields" not in data
    configs = MetadataConfigs.from_dataset_card_data(cd.data)
    assert list(configs) == ["default"] and configs["default"]["data_files"][0]["path"] == "data/train-*.parquet"
    feats = {f["name"]: f for f in data["dataset_info"]["features"]}
    assert feats["flow_image"]["dtype"] == "image"
    assert "unimer" not in card.default_repo_name(["casme2"]).lower().replace("-", "")
    text = (small_build / "README.md").read_text()
    assert "## Reading `flow_image`" in text and f"{flowviz.FULL_PX} px" in text


def test_the_cards_columns_table_names_every_column_and_every_field_of_the_structs(small_build):
    """The card's table had no `blinks` nor `moved_regions`, `head_motion` without its turns and 9 of the 15
    fields of `regions`: a column, or a field of a column's records, added to the shards must be described where a
    user reads them."""
    import re

    import pyarrow as pa

    from unimer_builder.shards import SCHEMA

    card = (small_build / "README.md").read_text()
    table = card.split("## Columns", 1)[1].split("\n\n", 2)[1]
    named: set[str] = set()
    for line in table.splitlines()[2:]:
        cells = line.split(" | ")
        named |= set(re.findall(r"`([a-z_]+)`", cells[0]))
        for struct in re.findall(r"\{([a-z_, ]+)\}", cells[1] if len(cells) > 1 else ""):
            named |= {f"{cells[0].strip('| `')}.{f.strip()}" for f in struct.split(",")}
    for field in SCHEMA:
        assert field.name in named, field.name
        t = field.type.value_type if pa.types.is_list(field.type) else field.type
        if pa.types.is_struct(t) and field.name not in ("onset_image", "apex_image", "frames", "flow_image"):
            missing = {f"{field.name}.{t.field(i).name}" for i in range(t.num_fields)} - named
            assert not missing, missing


def test_card_of_a_licensed_database_is_gated_with_its_licence(small_build):
    from huggingface_hub import DatasetCard, DatasetCardData

    report = json.loads((small_build / "build_report.json").read_text())
    report["synthetic"] = None  # not a synthetic database: CASME II's licence applies
    text = card.render_card(small_build, report, BuildConfig())
    cd = DatasetCard(text)
    data = cd.data.to_dict()
    assert data["license"] == "other" and data["license_name"] == "casme2-license-agreement"
    assert data["license_link"] == card.source_licence(["casme2"])["link"]
    fields = data["extra_gated_fields"]
    assert fields["Name"] == "text" and fields["Affiliation"] == "text"
    assert [v for v in fields.values()].count("checkbox") == 1 and "CASME II" in data["extra_gated_prompt"]
    assert DatasetCardData(**data).to_dict() == data  # the card utilities round-trip every key
    assert "CASME II licence agreement" in text
    ungated = DatasetCard(card.render_card(small_build, report, BuildConfig(), gated=False)).data.to_dict()
    assert "extra_gated_fields" not in ungated and ungated["license_name"] == "casme2-license-agreement"


def test_card_of_a_users_own_clips_speaks_of_their_licence(small_build, monkeypatch):
    """A manifest build's card said "derived from the licence of the clips" and that "these agreements forbid
    redistribution": nothing is known of a user's own clips' licence."""
    from huggingface_hub import DatasetCard

    real = card._shard_stats

    def as_manifest(out_dir, files=None):
        stats = real(out_dir, files)
        return {**stats, "by_database": {"manifest": sum(stats["by_database"].values())}}

    monkeypatch.setattr(card, "_shard_stats", as_manifest)
    report = json.loads((small_build / "build_report.json").read_text())
    report["synthetic"] = None
    text = card.render_card(small_build, report, BuildConfig())
    data = DatasetCard(text).data.to_dict()
    assert "derived from the clips listed in the manifest" in data["extra_gated_prompt"]
    assert "The clips' own licence applies" in text
    assert "forbid redistribution" not in text and "derived from the licence" not in text


def test_several_databases_name_every_licence_and_gate_if_any_is_restricted():
    lic = card.source_licence(["samm", "casme2"])
    assert lic["gated"] and [s["name"] for s in lic["sources"]] == ["casme2-license-agreement", "samm-license-agreement"]
    assert card.source_licence(["somewhere"])["gated"]  # an unknown source is treated as restricted
    assert not card.source_licence(["casme2"], synthetic=True)["gated"]
    hard = card.source_licence(["casme2"], synthetic="hard")
    assert hard["name"] == "synthetic-packaged-face-photos" and not hard["gated"]
    assert card.source_licence(["casme2"], synthetic="default")["name"] == "synthetic-public-domain-face"


def test_suggested_repo_name_from_a_build(small_build):
    from unimer_builder.hub import suggested_name

    assert suggested_name(small_build) == "micro-expression-instructions-synthetic"
    assert card.default_repo_name(["casme2", "samm"]) == "micro-expression-instructions-casme2-samm"
    assert Path(small_build / "README.md").read_text().count("micro-expression-instructions-synthetic") == 1


def test_only_a_truth_unimer_synth_wrote_makes_a_database_synthetic(tmp_path):
    """A ``ground_truth.json`` of a researcher's own beside a licensed release (a list of their annotations, a
    dict of another tool's, a broken file) made the card public domain and ungated, and `unimer push --public`
    would have published licensed faces without an access request."""
    from unimer_builder import synthesize

    real = tmp_path / "real"
    real.mkdir()
    assert card.synthetic_profile_of(real) is None
    for text in ('[{"clip": "sub01/EP01_01f", "my_annotation": "AU12"}]',
                 '{"clips": [{"clip": "sub01/EP01_01f", "aus": "12"}]}',
                 '{"clips": [], "annotator": "me"}', '{"clips": [', ""):
        (real / "ground_truth.json").write_text(text, encoding="utf-8")
        assert card.synthetic_profile_of(real) is None, text
        lic = card.source_licence(["casme2"], synthetic=card.synthetic_profile_of(real))
        assert lic["gated"] and lic["name"] == "casme2-license-agreement"
    src = synthesize(tmp_path / "synth", "casme2", clips=2, subjects=1, seed=3, frames=6)
    assert card.synthetic_profile_of(src) == "default"


def test_a_card_without_face_images_says_stack_frames_numbers_frames_it_left_out(small_build, no_images_build):
    """The --no-images card described `stack_frames` as numbering the items of `frames`, a column it says is left out."""
    row = "| `stack_frames` | list of int32 | the database frame number of each item of `frames`"
    report = json.loads((small_build / "build_report.json").read_text())
    with_images = card.render_card(small_build, report, BuildConfig())
    without = card.render_card(no_images_build, report, BuildConfig())  # its shards hold no face pixels
    assert "No face images" in without and "No face images" not in with_images
    assert f"{row} |" in with_images
    assert f"{row} (the frames a build with images holds; this copy leaves them out) |" in without
