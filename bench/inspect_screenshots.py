"""Screenshots of the inspection report (the build page and one clip page) for the README, and how long
the report takes to write.

    python bench/inspect_screenshots.py                      # synthesise + build 8 clips, write docs/inspect_*.png
    python bench/inspect_screenshots.py --out out/demo/unimer --dest /tmp/shots

Needs Chromium and chromedriver (``apt-get install -y chromium chromium-driver``). Screenshots are of the
top of each page (the window size below), saved with a 256-colour palette; a file over ``--max-kb``
is not written to ``--dest`` (the script says so and writes it to a kept temporary folder instead).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _build(tmp: Path, clips: int) -> Path:
    import unimer_builder as u

    src, out = tmp / "src", tmp / "unimer"
    u.synthesize(src, "casme2", clips=clips, subjects=3, seed=0, frames=12)
    u.build(src, out, u.BuildConfig().with_(**{"text.composite": "labels"}), "casme2", workers=2)
    return out


def _save(png: bytes, path: Path, max_kb: int, fallback: Path) -> Path:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    if len(data) > max_kb * 1024:
        print(f"{path.name}: {len(data) / 1024:.0f} KB > {max_kb} KB, written to {fallback} instead")
        path = fallback / path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"{path}: {img.size[0]}x{img.size[1]}, {len(data) / 1024:.0f} KB")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="An existing build (default: synthesise and build one).")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--dest", type=Path, default=ROOT / "docs")
    ap.add_argument("--max-kb", type=int, default=300)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1100)
    args = ap.parse_args()

    from unimer_builder.inspect_report import slug, write_report
    from unimer_builder.validation.browser import broken_images, console_errors, headless_chromium

    with tempfile.TemporaryDirectory(prefix="unimer-shots-") as tmp:
        out = args.out or _build(Path(tmp), args.clips)
        t0 = time.perf_counter()
        index = write_report(out, Path(tmp) / "inspect")
        seconds = time.perf_counter() - t0
        pages = sorted((index.parent / "clips").glob("*.html"))
        print(f"report of {len(pages)} clips written in {seconds:.2f} s ({seconds / max(1, len(pages)):.2f} s per clip)")
        from unimer_builder.shards import read_shard

        files = sorted((out / "data").glob("train-*.parquet"))
        t = read_shard(files[0], columns=["clip_id", "verdicts"])
        # the clip page to show: the first clip with a contradicted or weak verdict, else the first
        pick = next((c for c, vs in zip(t.column("clip_id").to_pylist(), t.column("verdicts").to_pylist(), strict=True)
                     if any(v["verdict"] in ("contradicted", "weak") for v in vs)), t.column("clip_id")[0].as_py())
        keep = Path(tempfile.mkdtemp(prefix="unimer-shots-keep-"))
        with headless_chromium(args.width, args.height) as driver:
            for name, page in (("inspect_summary.png", index),
                               ("inspect_clip.png", index.parent / "clips" / f"{slug(pick)}.html")):
                driver.get(page.resolve().as_uri())
                errors, broken = console_errors(driver), broken_images(driver)
                if errors or broken:
                    raise SystemExit(f"{page}: console errors {errors}, broken images {broken}")
                driver.execute_script("window.scrollTo(0, 0)")
                _save(driver.get_screenshot_as_png(), args.dest / name, args.max_kb, keep)


if __name__ == "__main__":
    main()
