"""SMIC (cropped release): ``SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_00001.bmp``.

Layout facts (shared/research/databases-and-peers.md §1.3): no label sheet, no AU labels, no apex;
the emotion is the folder name (``negative``/``positive``/``surprise``, ``ne``/``po``/``sur`` in clip
names); variants ``HS`` (100 fps), ``VIS`` and ``NIR`` (25 fps) side by side; ``non_micro`` folders
beside ``micro`` hold non-expression clips and are not read. A clip spans its whole folder: onset =
first frame, offset = last, apex estimated from motion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import UnusableInput
from ..records import Clip, ParsedAUs, Skip, SynthClip, clip_id
from . import _common as c
from ._layout import write_frame

DATABASE = "smic"
RELEASE_DIR = "SMIC_all_cropped"
VARIANT_FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}
_SUBJECT = re.compile(r"^s\d+$", re.IGNORECASE)


def _variant(parts: tuple[str, ...]) -> str | None:
    """The last of ``parts`` named HS / VIS / NIR (also ``HS_cropped``-style names)."""
    for p in reversed(parts):
        key = re.split(r"[^A-Za-z]", p)[0].upper()
        if key in VARIANT_FPS:
            return key
    return None


def find_micro_dirs(root: Path, depth: int = 5) -> list[Path]:
    """Every ``<s N>/micro`` folder at most ``depth`` levels below ``root`` (root may be one itself)."""
    root = Path(root)
    if root.name.lower() == "micro" and _SUBJECT.match(root.parent.name):
        return [root]
    found = []
    for d in c.dirs_below(root, depth - 1):
        if _SUBJECT.match(d.name) and (d / "micro").is_dir():
            found.append(d / "micro")
    return found


def read(root: Path) -> Iterator[Clip | Skip]:
    root = c.require_root(Path(root), "SMIC")
    micro = find_micro_dirs(root)
    if not micro:
        raise UnusableInput(f"{root}: no SMIC clips found (expected <variant>/s<N>/micro/<emotion>/<clip>/ "
                            f"folders, e.g. {RELEASE_DIR}/HS/s1/micro/negative/s1_ne_01)")
    keyed = []
    for m in micro:
        variant = _variant((m.resolve().parent.parent.name,))  # the folder right above s<N>
        keyed.append((c.natural_key(variant or ""), c.natural_key(m.parent.name), m, variant))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return c.dedupe(_clips([(m, v) for _, _, m, v in keyed]))


def _clips(micro: list[tuple[Path, str | None]]) -> Iterator[Clip | Skip]:
    for mdir, variant in micro:
        subject = mdir.parent.name
        fps = VARIANT_FPS.get(variant or "")
        for emo_dir in c.subdirs(mdir):
            for clip_dir in c.subdirs(emo_dir):
                cid = clip_id(DATABASE, subject, clip_dir.name, variant=variant)
                frames = c.list_frames(clip_dir)
                if not frames:
                    yield c.make_skip(cid, "missing_frame", f"clip folder {clip_dir} holds no frame images",
                                      clip_dir, None, "frames")
                    continue
                dup = c.duplicate_frames(c.Row(DATABASE, str(clip_dir), None, cid), frames)
                if dup is not None:
                    yield dup
                    continue
                extra = {"variant": variant} if variant else {}
                notes = c.ignored_note(frames)
                if notes:
                    extra["label_notes"] = notes
                yield Clip(
                    database=DATABASE, subject=subject, clip=clip_dir.name, onset=min(frames), apex=None,
                    offset=max(frames), frames=frames, emotion=emo_dir.name, au_text=None, aus=ParsedAUs(),
                    fps=fps, source_file=str(Path(clip_dir).resolve()), source_row=None, extra=extra,
                )


def clip_name(subject: int, emotion: str, index: int) -> str:
    code = CODES.get(emotion.lower(), emotion.lower()[:3])
    return f"s{subject}_{code}_{index:02d}"


def write(root: Path, clips: list[SynthClip], variant: str = "HS") -> list[str]:
    """The real layout: ``SMIC_all_cropped/<variant>/s<N>/micro/<emotion>/s<N>_<code>_<ii>/reg_<n:05d>.bmp``.

    SMIC has no apex label and no onset/offset beyond the folder: the clip is exactly its frames.
    """
    root = Path(root)
    ids = []
    for s in clips:
        emotion = s.emotion.lower()
        name = clip_name(s.subject, emotion, s.index)
        folder = root / RELEASE_DIR / variant / f"s{s.subject}" / "micro" / emotion / name
        for i, img in enumerate(s.frames):
            write_frame(folder / f"reg_{s.first_frame + i:05d}.bmp", img, s.jpeg_quality)
        ids.append(clip_id(DATABASE, f"s{s.subject}", name, variant=variant))
    return ids
