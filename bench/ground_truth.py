"""How often the dual constraint agrees with planted motion, per database format.

    python bench/ground_truth.py [--clips 40] [--subjects 5] [--formats casme2 samm smic casme3 manifest]
                                 [--profile default|hard] [--identities train|heldout|all|NAME,...] [--frames 14]
                                 [--framing frame|cropped]

    python bench/ground_truth.py --evidence DIR [same options] [--set check.z_weak=3 ...]

Synthesises each format (seeded), builds it with `unimer build`, scores the build against
`ground_truth.json` and prints one row per format with the figures of issue 8 (moved labelled AUs
supported; unmoved labelled AUs not supported; unlabelled planted motion reported; SMIC inferred-AU
recall; text direction), how many moved labelled AUs were not judged contradicted (a label the text calls
wrong although its AU moved), how many of SMIC's inferred AUs and of the AUs the unexplained motion names were
planted, blinks at the apex reported as AU45, then the same figures per amplitude bin (micro / mid / macro,
hard profile), per band of planted amplitude (``--edges``, crop px: where detection
stops), per identity and per AU, over all formats together.

``--evidence DIR``: no build; each database is synthesised once into DIR (again where the generator's code changed)
and each clip's evidence measured once beside it (again where the builder's code or a measuring setting changed:
``validation.real_footage.measure_stored``), then only the cross-check runs: a ``check.*`` setting is scored on every
clip in seconds. The figures are a build's, less its text (text direction n/a); a second opinion
(``check.au_detector``) and ``check.policy=drop`` need a build and are refused.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import unimer_builder as u
from unimer_builder.config import parse_setting
from unimer_builder.groundtruth import aggregate, amplitude_band, items, load_rows
from unimer_builder.validation.real_footage import stored_rows

TARGETS = {"moved_labelled_supported": 0.95, "unmoved_labelled_not_supported": 0.90,
           "unlabelled_motion_reported": 0.90, "inferred_aus_recovered": 0.90, "text_direction_correct": 0.95}
SHORT = {"moved_labelled_supported": "moved labelled supported",
         "moved_labelled_not_contradicted": "moved labelled not contradicted", "unmoved_labelled_not_supported":
         "unmoved labelled not supported", "unlabelled_motion_reported": "unlabelled motion reported",
         "inferred_aus_recovered": "SMIC inferred-AU recall", "text_direction_correct": "text direction",
         "inferred_aus_planted": "SMIC inferred AUs planted",
         "unexplained_aus_planted": "unexplained AUs planted",
         "blinks_at_apex_reported_as_au45": "blinks at apex as AU45"}


def _synth_stamp() -> str:
    """A hash of the synthetic generator's code (``unimer_builder/synth``) and the media list it draws faces from."""
    h = hashlib.sha256()
    root = Path(u.__file__).parent
    for path in sorted([*(root / "synth").rglob("*.py"), root / "validation" / "media.py"]):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


SYNTH_STAMP = _synth_stamp()


def cell(f: dict) -> str:
    return "n/a" if f["rate"] is None else f"{f['rate']:.3f} ({f['hits']}/{f['n']})"


def table(title: str, rows: dict[str, dict], keys: list[str]) -> None:
    print(f"\n{title}\n")
    print("| group | " + " | ".join(SHORT[k] for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, s in rows.items():
        print(f"| {name} | " + " | ".join(cell(s[k]) for k in keys) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=14)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--profile", default="default", choices=["default", "hard"])
    ap.add_argument("--identities", default=None, help="hard profile: train | heldout | all | NAME,...")
    ap.add_argument("--framing", default="frame", choices=["frame", "cropped"],
                    help="hard profile: 640x480 frames, or cut to the face as a Cropped release")
    ap.add_argument("--formats", nargs="+", default=["casme2", "samm", "smic", "casme3", "manifest"])
    ap.add_argument("--preset", default=None, help="TV-L1 preset of the builds (default: BuildConfig's)")
    ap.add_argument("--edges", type=float, nargs="+", default=[0.5, 1.0, 2.0, 5.0],
                    help="band edges of the planted amplitude, crop px (hard profile)")
    ap.add_argument("--evidence", type=Path, default=None, metavar="DIR",
                    help="keep the databases and each clip's evidence in DIR and re-run only the cross-check")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a build setting by its dotted name, the value as JSON, e.g. --set check.z_supported=3.5")
    args = ap.parse_args()
    if args.profile != "hard" and (args.identities is not None or args.framing != "frame"):
        ap.error("--identities and --framing need --profile hard")
    # A synthetic database is not the MEGC2019 release: its composite classes come from the labels.
    cfg = u.BuildConfig().with_(**{"text.composite": "labels"})
    if args.preset:
        cfg = cfg.with_(flow=u.FlowConfig.from_preset(args.preset))
    for item in args.set:
        name, value = parse_setting(item)
        cfg = cfg.with_(**{name: value})
    keys = [*TARGETS, "moved_labelled_not_contradicted", "inferred_aus_planted", "unexplained_aus_planted",
            "blinks_at_apex_reported_as_au45"]
    print(f"profile {args.profile}, identities {args.identities or ('train' if args.profile == 'hard' else '-')}, "
          f"framing {args.framing}, {args.clips} clips x {args.frames} frames, {args.subjects} subjects, seed {args.seed}\n")
    header = " | ".join(f"{SHORT[k]} (≥{v:.2f})" for k, v in TARGETS.items())
    print(f"| format | clips built | {header} | moved labelled not contradicted | SMIC inferred AUs planted "
          "| unexplained AUs planted "
          "| blinks at apex as AU45 "
          "| exact direction word | seconds |")
    print("|---|---|" + "---|" * len(TARGETS) + "---|---|---|---|---|---|")
    everything: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        for fmt in args.formats:
            t = time.perf_counter()
            if args.evidence is None:
                src, out = Path(d) / fmt, Path(d) / f"{fmt}-out"
                u.synthesize(src, fmt, clips=args.clips, subjects=args.subjects, seed=args.seed, frames=args.frames,
                             profile=args.profile, identities=args.identities, framing=args.framing)
                u.build(src, out, cfg, fmt, args.workers)
                rows = load_rows(out)
                found = items(src / "ground_truth.json", out, rows)
            else:
                # the generator's code in the name: a database it would now make otherwise is made again
                src = args.evidence / (f"{fmt}-{args.profile}-{args.identities or 'default'}-{args.framing}-seed{args.seed}"
                                       f"-{args.clips}x{args.frames}-{args.subjects}-{SYNTH_STAMP}")
                if not (src / "ground_truth.json").is_file():
                    u.synthesize(src, fmt, clips=args.clips, subjects=args.subjects, seed=args.seed, frames=args.frames,
                                 profile=args.profile, identities=args.identities, framing=args.framing)
                rows = stored_rows(src, fmt, cfg, args.workers)
                found = items(src / "ground_truth.json", src, rows)
            for it in found:
                it["format"] = fmt
            everything += found
            s = aggregate(found)
            cells = " | ".join(cell(s[k]) for k in keys)
            e = s["text_direction_exact_word"]
            exact = "n/a" if e["rate"] is None else f"{e['rate']:.3f}"
            built = f"{len(rows)}/{args.clips}"  # a clip not built (no face, ...) is in no figure
            print(f"| {fmt} | {built} | {cells} | {exact} | {time.perf_counter() - t:.0f} |", flush=True)

    edges = sorted(args.edges)
    for it in everything:
        it["band"] = None if it["amplitude"] is None else amplitude_band(it["amplitude"], edges)
    bands = [amplitude_band(x, edges) for x in [edges[0] / 2, *edges]]
    for by, title in (("bin", "Per amplitude bin (crop px at the apex: micro < 2, mid 2-5, macro >= 5), all formats"),
                      ("band", "Per planted amplitude (crop px at the apex), all formats"),
                      ("identity", "Per identity, all formats"), ("au", "Per AU, all formats")):
        groups: dict[str, list[dict]] = defaultdict(list)
        for it in everything:
            if it[by] is not None:
                groups[it[by]].append(it)
        if groups:
            order = ["micro", "mid", "macro"] if by == "bin" else bands if by == "band" else sorted(groups)
            if by == "au":
                groups = {f"AU{k}": v for k, v in groups.items()}
                order = [f"AU{k}" for k in order]
            # an inferred AU nothing planted has no amplitude: by amplitude, that column would count only hits
            shown = [k for k in keys if not k.endswith("_aus_planted")] if by in ("bin", "band") else keys
            table(title, {g: aggregate(groups[g]) for g in order if g in groups}, shown)


if __name__ == "__main__":
    main()
