"""The build's settings, their fingerprint, and the builder's layout rules (issue 11)."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from unimer_builder import config
from unimer_builder.config import BuildConfig, TextConfig

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "unimer_builder"

# A valid other value for the settings that accept only named choices.
OTHER_CHOICE = {
    "face.detector": "py-feat", "flow.backend": "torch", "flow.dis_preset": "fast", "head.model": "similarity",
    "check.policy": "drop", "check.au_detector": "py-feat", "text.composite": "labels", "text.tasks": ("au",),
    "regions.motion": "landmarks",
}


def _other(name: str, value, tmp_path: Path):
    """Another valid value of the setting ``name`` (whatever its type)."""
    if name in OTHER_CHOICE:
        return OTHER_CHOICE[name]
    if name == "text.templates":  # None (the packaged folder) -> an edited copy of it elsewhere (an identical copy
        copy = tmp_path / "templates"  # makes the same rows, and the same fingerprint: test below)
        shutil.copytree(TextConfig().folder, copy)
        (copy / "explain.j2").write_text((copy / "explain.j2").read_text() + "\n{# edited #}\n")
        return str(copy)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple | list):
        return tuple(value[:-1])
    raise AssertionError(f"{name}: no other value for a {type(value).__name__}")


def test_every_setting_changes_the_fingerprint(tmp_path):
    base = BuildConfig()
    names = [name for name, _ in base.settings()]
    assert len(names) > 60 and len(set(names)) == len(names)
    seen = {base.fingerprint()}
    for name, value in base.settings():
        changed = base.with_(**{name: _other(name, value, tmp_path)})
        assert dict(changed.settings())[name] != value, name
        fp = changed.fingerprint()
        assert fp not in seen, f"changing {name} left the fingerprint as it was"
        seen.add(fp)


def test_template_text_and_builder_version_change_the_fingerprint(tmp_path, monkeypatch):
    folder = tmp_path / "templates"
    shutil.copytree(TextConfig().folder, folder)
    cfg = BuildConfig(text=TextConfig(templates=str(folder)))
    before = cfg.fingerprint()
    assert cfg.fingerprint() == before  # the same text, the same fingerprint
    explain = folder / "explain.j2"
    explain.write_text(explain.read_text() + "\n{# a comment changes no row, but the text changed #}\n")
    edited = cfg.fingerprint()
    assert edited != before
    (folder / "extra.j2").write_text("{% macro x() %}x{% endmacro %}\n")
    added = cfg.fingerprint()
    assert added not in (before, edited)
    monkeypatch.setattr(config, "__version__", "999.0")
    config._fingerprint.cache_clear()
    try:
        assert cfg.fingerprint() not in (before, edited, added)
    finally:
        config._fingerprint.cache_clear()


def test_a_templates_folder_counts_by_its_text_and_is_published_by_its_name(tmp_path):
    """``--templates DIR`` put DIR's absolute path into the fingerprint and the published report: the same
    files in another folder gave every row another ``config_fingerprint`` (and another up-to-date key), and the
    report named a folder of the build machine."""
    from unimer_builder.report import build_report

    a, b = tmp_path / "one" / "mytpl", tmp_path / "two" / "mytpl"
    for folder in (a, b):
        shutil.copytree(TextConfig().folder, folder)
    cfg_a, cfg_b = (BuildConfig(text=TextConfig(templates=str(f))) for f in (a, b))
    assert cfg_a.fingerprint() == cfg_b.fingerprint() == BuildConfig().fingerprint()  # the packaged text, copied
    (b / "explain.j2").write_text((b / "explain.j2").read_text() + "\n{# edited #}\n")
    assert cfg_b.fingerprint() != cfg_a.fingerprint()
    report = build_report([], [], cfg_a, tmp_path, "manifest", [], 0.0, 1)
    assert report["config"]["text"]["templates"] == "mytpl" and str(tmp_path) not in json.dumps(report)
    assert report["config_fingerprint"] == cfg_a.fingerprint()


def test_from_dict_names_an_unknown_setting():
    d = BuildConfig().to_dict()
    d["check"]["z_suported"] = 3.0
    with pytest.raises(ValueError, match="z_suported"):
        BuildConfig.from_dict(d)


def _imports(path: Path) -> list[tuple[ast.AST, str, bool]]:
    """(node, module, inside a function) of every import of a package module in ``path``."""
    tree = ast.parse(path.read_text())
    out = []

    def walk(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom):
                mod = "." * child.level + (child.module or "")
                if child.level or mod.startswith("unimer_builder"):
                    out.append((child, mod, in_function))
            elif isinstance(child, ast.Import):
                out.extend((child, a.name, in_function) for a in child.names if a.name.startswith("unimer_builder"))
            walk(child, inner)

    walk(tree, False)
    return out


def test_executors_know_no_stage_and_no_import_hides_in_a_function():
    modules = sorted(PACKAGE.rglob("*.py"))
    ex = _imports(PACKAGE / "executors.py")
    assert not ex, f"executors.py imports {[m for _, m, _ in ex]}"
    # torch is heavy and optional: its TV-L1 backend is imported only when asked for. Nothing else of the
    # package is imported inside a function (such an import is how a cycle hides).
    allowed = {"flow_torch"}
    late = [f"{p.relative_to(ROOT)}:{n.lineno} {m}" for p in modules for n, m, inside in _imports(p)
            if inside and m.rsplit(".", 1)[-1] not in allowed]
    assert not late, late
    synth_init = (PACKAGE / "synth" / "__init__.py").read_text()
    assert "__getattr__" not in synth_init


def test_the_wheel_lists_every_package_and_ships_the_templates():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    st = project["tool"]["setuptools"]
    packages = set(st["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("unimer_builder", "deft_model")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= packages, f"pyproject.toml [tool.setuptools] packages lacks {sorted(found - packages)}"
    assert st["package-dir"] == {"unimer_builder.templates": "templates", "unimer_builder.data_cards": "data_cards"}
    assert "*.j2" in st["package-data"]["unimer_builder.templates"]
    assert {"*.j2", "*.yaml"} <= set(st["package-data"]["unimer_builder.data_cards"])
    assert config.package_folder("templates") == (ROOT / "templates") and (ROOT / "templates" / "explain.j2").is_file()


def test_a_setting_given_as_json_takes_its_fields_type():
    """`--set face.head_landmarks=[0,16,27]` (a bench's JSON) holds a tuple, as a recorded build reads back:
    the settings stay hashable and fingerprint like the same tuple given in Python."""
    from unimer_builder.config import parse_setting

    name, value = parse_setting("face.head_landmarks=[0, 16, 27, 30]")
    cfg = BuildConfig().with_(**{name: value})
    assert cfg.face.head_landmarks == (0, 16, 27, 30)
    assert cfg.fingerprint() == BuildConfig().with_(**{name: (0, 16, 27, 30)}).fingerprint()
    with pytest.raises(ValueError, match="unknown setting 'face.head_landmark'"):
        BuildConfig().with_(**{"face.head_landmark": [0]})


@pytest.mark.parametrize("name", ["face.lips_part", "face.lips_close", "face.lips_meet", "face.jaw_drop", "face.lid_fall",
                                  "face.blink_ratio", "face.open_ear"])
@pytest.mark.parametrize("value", [0.0, -0.05, float("nan")])
def test_a_face_threshold_at_zero_or_nan_is_refused_by_name(name, value):
    """At 0 or NaN the opening tests (lips parting, lids falling, eyes shut) would pass on any clip."""
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        BuildConfig().with_(**{name: value})


@pytest.mark.parametrize("value", [-1, 2.5, True, "8"])
def test_the_frames_searched_for_a_missed_onset_face_are_a_whole_number_from_0(value):
    """-1 searched every frame but the last and wrote "or the -1 frame after it"; 2.5 broke the slice mid-build."""
    with pytest.raises(ValueError, match=r"face\.detect_nearby"):
        BuildConfig().with_(**{"face.detect_nearby": value})
    assert BuildConfig().with_(**{"face.detect_nearby": 0}).face.detect_nearby == 0
