"""Frame access for a clip, from a folder of images or from a video file.

Each frame is decoded at most once per reader (decoding dominates everything but the flow), and
always to 8-bit grey: colour adds nothing to TV-L1 or to the landmark model.

Decoding is strict: a frame that does not decode completely is a ``bad_frame`` naming its file. OpenCV
(libjpeg) only warns on a truncated or corrupt JPEG and returns the image with the missing part grey, so
JPEG files are decoded with simplejpeg (the same libjpeg-turbo, the same grey pixels as
``cv2.IMREAD_GRAYSCALE``) in strict mode, which turns libjpeg's warnings into errors. OpenCV's other
decoders (PNG, BMP, TIFF, ...) already fail on a truncated file. A frame whose size differs from the
clip's first decoded frame is a ``bad_frame`` too: one alignment cannot serve both.

A video is read as far as it decodes. The CLIs turn FFmpeg's own log off (:data:`FFMPEG_QUIET`, unless the
environment sets it; the library leaves a caller's process as it is): a truncated or damaged file printed decoder
errors by the screenful between the progress bar's lines. A video whose frames end more than :data:`MISCOUNT`
before the count its container records (AVI, MP4, MOV: :data:`COUNTED`) is truncated: its last frame that
decodes may be cut off, so it is not used either, and the reader's ``notes`` say so (the clip's label notes).

Every frame is read as it displays: a file stored sideways or mirrored with an EXIF orientation tag (phones
and some cameras write them) is turned upright, as OpenCV does for the other formats; simplejpeg ignores
the tag, and a mirrored face read as stored swaps its left and right AUs without a word. A video whose pixels
are not square (DV, HDV, anamorphic: its stream's sample aspect ratio) is scaled to square pixels, as a player
shows it, and the reader's ``notes`` say so: the face is found and measured in its true shape.

A video's frames keep their timestamps: a window's duration is taken from them (:attr:`FrameReader.times`), not
from the frame count at the declared rate, which a varying-rate video (a phone's) keeps only on average.
"""

from __future__ import annotations

import functools
import io
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from ..errors import InputError
from ..records import Clip

# Containers that record their frame count (a header's or an index's, not an estimate from the duration)
COUNTED = frozenset({".avi", ".mp4", ".mov", ".m4v"})
# Frames a whole video may decode fewer than its container records (an MP4's edit list, an AVI's empty "dropped"
# entries, a count estimated from the duration): a truncated file loses more, and a good last frame is not dropped.
MISCOUNT = 2
# FFmpeg's log level the CLIs set (AV_LOG_QUIET): OpenCV reads OPENCV_FFMPEG_LOGLEVEL at a process's first video.
FFMPEG_QUIET = {"OPENCV_FFMPEG_LOGLEVEL": "-8"}
# Above this a declared rate is more likely a container's time base (WebM and variable-rate files report 1000)
# than a camera's: MER cameras run at 25-200 fps (SMIC 100, CASME II and SAMM 200), phones' slow motion at 240-480.
MAX_DECLARED_FPS = 500.0

JPEG_MAGIC = b"\xff\xd8"
EXIF_MARK = b"Exif\x00\x00"
# EXIF orientation (tag 0x0112) -> the array operation that shows the stored pixels upright (TIFF 6.0's
# eight orientations: 2 mirrored, 3 upside down, 6 stored turned 90 degrees anticlockwise, ...).
_UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.T,
            6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].T, 8: lambda a: np.rot90(a, 1)}


class UnsupportedSamples(ValueError):
    """A whole, readable image whose samples the builder does not take (floating point, 32-bit)."""


def jpeg_orientation(data: bytes) -> int:
    """A JPEG's EXIF orientation (1: as stored, also where there is no tag or it cannot be read)."""
    head = data[:65536]  # APP1 (EXIF) comes first, and is at most 64 KiB
    if EXIF_MARK not in head:
        return 1
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the headers, not the pixels
            value = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def decode_grey(data: bytes) -> np.ndarray:
    """An image file's bytes as 8-bit grey, upright by its EXIF orientation; ``ValueError`` saying why when
    they do not decode completely (a 16-bit frame by the bits it uses, :func:`to_8bit`)."""
    img = decode_frame(data)
    return to_8bit(img) if img.dtype == np.uint16 else img


def decode_frame(data: bytes) -> np.ndarray:
    """:func:`decode_grey`, a 16-bit file left 16-bit: a clip's frames are brought to 8 bits alike
    (:meth:`FrameReader.get`), not each by its own brightest sample."""
    if data[:2] == JPEG_MAGIC:
        try:
            img = simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True)[..., 0]
        except (ValueError, RuntimeError) as e:
            raise ValueError(str(e).strip() or "not a decodable JPEG") from e
        turn = _UPRIGHT.get(jpeg_orientation(data))
        return img if turn is None else np.ascontiguousarray(turn(img))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH) if data else None
    if img is None:
        raise ValueError("not a decodable image" if data else "the file is empty")
    if img.dtype not in (np.uint8, np.uint16):
        kind = "floating point" if img.dtype.kind == "f" else "integer"
        raise UnsupportedSamples(f"its samples are {img.dtype.itemsize * 8}-bit {kind} ({img.dtype}); frames must "
                                 f"be 8- or 16-bit integer images: convert them")
    return img


def to_8bit(img: np.ndarray, shift: int | None = None) -> np.ndarray:
    """A 16-bit frame as 8-bit grey, by the bits its samples use (``shift``: drop this many low bits; default:
    as many as bring the frame's largest sample under 256). A 12-bit camera's frames in 16-bit files use the
    low 12 bits: dropping the low 8, as OpenCV does, leaves them black (0-15), and no face is found."""
    if shift is None:
        shift = max(0, int(img.max()).bit_length() - 8)
    return np.clip(img >> shift, 0, 255).astype(np.uint8)


def declared_fps(cap: cv2.VideoCapture) -> float | None:
    """The frame rate an open video declares (its header's), or None where it declares none or an implausible one
    (``MAX_DECLARED_FPS``); rounded, so that a clip's rate taken from it compares equal (:attr:`FrameReader.times`)."""
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    return round(fps, 3) if 1.0 <= fps <= MAX_DECLARED_FPS else None


def read_frame(path: str | Path) -> np.ndarray:
    """:func:`decode_frame` of a file; ``OSError`` when it cannot be read."""
    return decode_frame(Path(path).read_bytes())


def pixel_shape(cap: cv2.VideoCapture) -> tuple[tuple[int, int] | None, bool]:
    """An open video's sample aspect ratio where its pixels are not square (else None), and whether its rotation tag
    turns its frames a quarter turn (OpenCV turns them; the ratio is of the pixels as stored)."""
    num, den = int(cap.get(cv2.CAP_PROP_SAR_NUM)), int(cap.get(cv2.CAP_PROP_SAR_DEN))
    sar = (num, den) if num > 0 and den > 0 and abs(num / den - 1) >= 0.01 else None
    turned = bool(cap.get(cv2.CAP_PROP_ORIENTATION_AUTO)) and int(cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 180 == 90
    return sar, turned


def square_pixels(img: np.ndarray, sar: tuple[int, int] | None, turned: bool = False) -> np.ndarray:
    """A frame of non-square pixels (:func:`pixel_shape`) scaled along its stored rows by its sample aspect ratio
    (widened 1.6 times at 8:5; a frame turned by its rotation tag, heightened): measured as stored, the face is 1.6
    times too narrow for the landmark model, and its smile was judged contradicted. Square pixels: ``img``."""
    if sar is None:
        return img
    (num, den), (h, w) = sar, img.shape[:2]
    size = (w, max(1, round(h * num / den))) if turned else (max(1, round(w * num / den)), h)
    # bicubic where it enlarges, as FFmpeg's scaler (a player's); bilinear blurred the lids a blink's flow follows
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if num < den else cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=16)
def packet_times(video: str, size: int, mtime_ns: int) -> tuple[float, ...]:
    """Every frame's timestamp, ms, in display order, read from the video's packets without decoding them (a hundred
    times faster: an hour of 720p in about 2 s, against 8 min to decode); on the 23 real-footage videos they are the
    decoded frames' timestamps, one for one. Empty where they cannot number the frames: OpenCV cannot read packets,
    or two frames share a time. ``size`` and ``mtime_ns`` key the cache to the file as it stands."""
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    times = []
    try:
        if cap.isOpened() and cap.get(cv2.CAP_PROP_FORMAT) == -1:
            while cap.grab():
                times.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    finally:
        cap.release()
    times.sort()
    return tuple(times) if len(set(times)) == len(times) else ()


class FrameReader:
    """A clip's frames, decoded on demand. A video's frames are numbered as decoding from its start counts them, and
    read in order, held from ``first`` on while they fit in ``video_budget`` bytes; past it only the frames asked
    for are kept, and a frame asked for again behind the capture's position is reached by opening the video once
    more. A first frame more than ``seek_after`` frames in is reached by a seek (:meth:`_seek`), the frame landed
    on told by its timestamp among the packets' (a seek lands near a time, not on a frame); where that cannot be
    told, or the decoded frames leave the packets' timestamps, the video is decoded from frame 0. A frame before the
    landing that does not decode goes unseen (decoded from frame 0, the video ends there, as a truncated one). A
    window with no offset runs to the video's end, and the frames it needs (the apex search's, the stack's) are a
    few dozen of them: an hour of video costs passes of decoding, not the hour in memory."""

    video_budget = 512 * 2**20  # bytes of decoded video frames held beyond those asked for
    seek_after = 250  # frames: a first frame further than this from the start is sought (:meth:`_seek`), not decoded to

    def __init__(self, clip: Clip, first: int | None = None):
        """``first``: the earliest frame that will be asked for (default: the clip's onset). Of a video no frame
        before it nor after the clip's offset (or apex) is decoded into memory."""
        self.clip = clip
        self.first = clip.onset if first is None else int(first)
        self._cache: dict[int, np.ndarray] = {}
        self._first: tuple[int, tuple[int, ...]] | None = None  # (frame number, shape) of the first frame decoded
        self._shift: int | None = None  # low bits dropped from the clip's 16-bit frames (:func:`to_8bit`)
        self._count: int | None = None  # frames of the video up to its stop (numbered 0..count-1), once known
        self._cap: cv2.VideoCapture | None = None
        self._pos = 0  # the frame number the open capture grabs next
        self._held = 0  # bytes of video frames held that nobody asked for yet
        self._declared = 0  # the frame count the video's container records (COUNTED), 0: none
        self._notes: list[str] = []  # what the clip's label notes should say of its frames (a truncated video)
        self._rate: float | None = None  # the video's declared rate (declared_fps)
        self._period = 0.0  # ms between frames at the video's declared rate, 0: unknown
        self._sar: tuple[int, int] | None = None  # the video's sample aspect ratio where its pixels are not square
        self._turned = False  # the video's rotation tag turns its frames a quarter turn (stored rows display upright)
        self._sizes: tuple[tuple[int, int], tuple[int, int]] | None = None  # a frame's (w, h) as read and made square
        self._times: dict[int, float] = {}  # frame -> its timestamp, ms (the frames grabbed so far)
        self._scan: list[float] | None = None  # every frame's timestamp, ms, in display order, from the packets ([]: none)
        self._landed = False  # the capture was sought: the frame it grabbed is frame _pos, and is yet to be read
        self._check_times = False  # the frames grabbed since a seek must keep the packets' timestamps
        marks = [m for m in (clip.offset, clip.apex) if m is not None]
        self._stop = max(marks) if clip.offset is not None else None  # the last frame a window reads

    @property
    def notes(self) -> list[str]:
        """What the clip's label notes should say of its frames: a truncated video, timestamps that skip frames or
        that time the window otherwise than the declared rate, pixels made square."""
        notes = [*self._notes, *self._clock_note(), *self._square_note()]
        gaps = self._gaps()
        if not gaps:
            return notes
        where = ", ".join(f"{k} before frame {n}" for n, k in sorted(gaps.items())[:5])
        more = f" and {len(gaps) - 5} more gaps" if len(gaps) > 5 else ""
        total = sum(gaps.values())
        return [*notes, f"the video's timestamps skip {total} frame{'s' if total > 1 else ''} ({where}{more}): "
                        f"frames dropped in recording, or a varying frame rate; frame numbers count the frames "
                        f"that decode, so after a gap they run behind a count by time (a player's clock)"]

    @property
    def times(self) -> dict[int, float]:
        """The clip's onset, apex and offset frames (those read) -> their timestamps, s, which
        ``labels.duration_s`` prefers to a count at the clip's rate: a varying-rate video runs at its declared
        (average) rate nowhere. Empty for a folder of images; where the timestamps do not advance (none recorded); and
        where the clip's ``fps`` is not the video's declared rate (an ``fps`` column for slow motion: the file's
        clock is then the playback's, not the camera's)."""
        if not self.clip.video or (self.clip.fps is not None and self.clip.fps != self._rate):
            return {}
        marks = sorted({m for m in (self.clip.onset, self.clip.apex, self.clip.offset) if m in self._times})
        t = [self._times[m] / 1000.0 for m in marks]
        return dict(zip(marks, t, strict=True)) if all(a < b for a, b in zip(t, t[1:], strict=False)) else {}

    def _clock_note(self) -> list[str]:
        """A note where the timestamps time the window more than half a frame otherwise than its declared rate."""
        t, fps, onset, offset = self.times, self.clip.fps, self.clip.onset, self.clip.offset
        if not fps or onset not in t or offset not in t:
            return []
        by_time, by_count = t[offset] - t[onset], (offset - onset) / fps
        if abs(by_time - by_count) <= 0.5 / fps:
            return []
        return [f"the video's timestamps put {by_time:.3f} s between frames {onset} and {offset}, where its declared "
                f"{fps:g} fps gives {by_count:.3f} s (its frame rate varies, or frames were dropped): the duration is "
                f"the timestamps'"]

    def _square_note(self) -> list[str]:
        """A note where the frames were made square (:meth:`_square`), naming the pixels that measures are in."""
        if self._sizes is None:
            return []
        (num, den), ((w, h), (w2, h2)) = self._sar, self._sizes
        return [f"the video's pixels are not square (sample aspect ratio {num}:{den}): its {w}x{h} frames are scaled "
                f"to {w2}x{h2}, as a player shows them, before the face is found; frame px (the face box, the eyes' "
                f"distance) are those square pixels, and the crop px of the flow are of the face in its true shape"]

    @property
    def numbers(self) -> list[int]:
        """Available frame numbers, ascending (of a video: up to the clip's offset, where it has one)."""
        if self.clip.video:
            return list(range(self._video_count()))
        return sorted(self.clip.frames)

    def get(self, n: int) -> np.ndarray:
        if n in self._cache:
            return self._cache[n]
        if self.clip.video:
            img = self._video_frame(n)
        else:
            img = self._read(n)
        self._cache[n] = img
        return img

    def _read(self, n: int) -> np.ndarray:
        path = self.clip.frames.get(n)
        if path is None:
            raise InputError("missing_frame", f"frame {n} of clip {self.clip.clip_id} is missing",
                             self.clip.source_file, self.clip.source_row, "frame")
        try:
            img = read_frame(path)
        except FileNotFoundError:
            raise self.clip.error("missing_frame", f"frame {n} ({path}) is gone", path, "frame") from None
        except UnsupportedSamples as e:
            raise self.clip.error("bad_frame", f"frame {n} ({path}) cannot be read: {e}", path, "frame") from None
        except (OSError, ValueError) as e:
            raise self.clip.error("bad_frame", f"frame {n} ({path}) does not decode completely: {e}", path,
                              "frame") from None
        if img.dtype == np.uint16:
            # one scale for the clip, from the first 16-bit frame read: frames scaled each by its own brightest
            # sample would flicker by factors of two
            if self._shift is None:
                self._shift = max(0, int(img.max()).bit_length() - 8)
            img = to_8bit(img, self._shift)
        if self._first is None:
            self._first = (n, img.shape)
        elif img.shape != self._first[1]:
            first_n, shape = self._first
            raise self.clip.error("bad_frame", f"frame {n} ({path}) is {img.shape[1]}x{img.shape[0]} px, the clip's "
                              f"frame {first_n} ({self.clip.frames.get(first_n)}) is {shape[1]}x{shape[0]} px",
                              path, "frame")
        return img

    # --- video ---------------------------------------------------------------------------------------

    def _video_count(self) -> int:
        if self._count is None:
            self._advance(self._stop)
            if self._count is None:  # the stop was reached before the video's end
                self._count = self._pos
            if self._count == 0:
                raise self.clip.error("bad_frame", "video has no decodable frames", self.clip.video, "path")
        return self._count

    def _video_frame(self, n: int) -> np.ndarray:
        count = self._video_count()
        if not (self.first <= n < count):
            where = (f"before frame {self.first}, the first this clip reads" if 0 <= n < self.first else
                     f"outside the video's {count} frames")
            raise self.clip.error("missing_frame", f"frame {n} is {where}", self.clip.video, "frame")
        if n in self._cache:  # held on the way to another frame
            return self._cache[n]
        if n < self._pos:  # behind the capture: read the video from its start again
            self._close()
        self._advance(n, want=n)
        if n not in self._cache:
            raise self.clip.error("bad_frame", f"frame {n} no longer decodes", self.clip.video, "frame")
        self._held -= self._cache[n].nbytes  # asked for: it no longer counts against the budget
        return self._cache[n]

    def _advance(self, to: int | None, want: int | None = None) -> None:
        """Grab frames up to ``to`` (the end when None), keeping those from ``first`` on while they fit in the
        budget, and ``want`` whatever the budget."""
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.clip.video))
            self._pos = 0
            if not self._cap.isOpened():
                self._cap = None
                raise self.clip.error("bad_frame", "cannot open video", self.clip.video, "path")
            if Path(self.clip.video).suffix.lower() in COUNTED:
                self._declared = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self._rate = declared_fps(self._cap)
            self._period = 1000.0 / self._rate if self._rate else 0.0
            self._sar, self._turned = pixel_shape(self._cap)
            start = self.first if want is None else want
            if start > self.seek_after:
                self._seek(start)
        cap = self._cap
        sought = self._packet_times() if self._check_times else []
        while to is None or self._pos <= to:
            if self._landed:
                self._landed = False
            elif not cap.grab():
                if self._count is None:
                    self._count = self._ended(self._pos)
                self._close()
                return
            n = self._pos
            self._pos += 1
            self._times[n] = cap.get(cv2.CAP_PROP_POS_MSEC)
            if self._check_times and (n >= len(sought) or self._times[n] != sought[n]):
                self._unseek()  # the decoder left the packets' order (a frame that does not decode): count from 0
                return self._advance(to, want)
            if n < self.first or n in self._cache:
                continue
            if n != want and self._held > self.video_budget:
                continue
            ok, img = cap.retrieve()
            if not ok:
                self._count = n if self._count is None else self._count
                self._close()
                return
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
            img = self._square(img) if self._sar else img
            self._cache[n] = img
            self._held += img.nbytes

    def _packet_times(self) -> list[float]:
        """:func:`packet_times` of the clip's video (once per process for one file as it stands: windows of one long
        video are clips of their own)."""
        if self._scan is None:
            st = Path(self.clip.video).stat()
            self._scan = list(packet_times(str(self.clip.video), st.st_size, st.st_mtime_ns))
        return self._scan

    def _seek(self, start: int) -> None:
        """Put the open capture at frame ``start`` or a little before it, without decoding the frames before: a
        window an hour into a video was reached by decoding the hour. OpenCV's seek lands near a time, not on a
        frame (off by one on 4 of 23 real videos, by up to 8 on a phone's varying-rate one), so it aims a second or
        more early and the frame it lands on is told by its timestamp among the packets' (:meth:`_packet_times`);
        the frames before it are numbered as decoding from the start would number them. Where no landing at or
        before ``start`` is found, the capture stays at frame 0."""
        times = self._packet_times()
        if start >= len(times):
            return
        at = {t: n for n, t in enumerate(times)}
        early = max(2 * int(self._rate or 30), 16)
        for _ in range(3):
            self._cap.set(cv2.CAP_PROP_POS_MSEC, times[max(0, start - early)])
            landed = at.get(self._cap.get(cv2.CAP_PROP_POS_MSEC)) if self._cap.grab() else None
            if landed is not None and landed <= start:
                self._pos, self._landed, self._check_times = landed, True, True
                self._times.update({n: times[n] for n in range(landed)})
                return
            early *= 4
        self._close()  # back to the start: decoded from frame 0
        self._cap = cv2.VideoCapture(str(self.clip.video))

    def _unseek(self) -> None:
        """Forget what was read since a seek: decoding from frame 0 numbers the frames (seeking is off for the clip)."""
        self._close()
        self.seek_after = float("inf")
        self._cache, self._held, self._times, self._check_times, self._landed = {}, 0, {}, False, False

    def _square(self, img: np.ndarray) -> np.ndarray:
        """:func:`square_pixels`, noting the frame's size as read and as made square."""
        out = square_pixels(img, self._sar, self._turned)
        self._sizes = ((img.shape[1], img.shape[0]), (out.shape[1], out.shape[0]))
        return out

    def _gaps(self) -> dict[int, int]:
        """Frame -> how many frames the timestamps skip just before it: a step of more than 1.5 frame periods. A
        capture that dropped frames writes empty entries (an AVI's) or leaves the time out (a phone's MP4): the frames
        that decode are numbered in order, so every frame after a gap is numbered lower than the recording's own count,
        which a sheet made with a player's clock follows. The period is the declared rate's, or the commonest step
        where that is a little shorter (an MP4's declared rate is its average, which its gaps lower); a video whose
        rate changes between runs of frames (two takes joined, 24 then 30 fps) steps by both, neither a gap."""
        times = sorted(self._times.items())
        steps = [(n, b - a) for (_, a), (n, b) in zip(times, times[1:], strict=False) if b > a]
        if not self._period or not steps:
            return {}
        common = Counter(round(d) for _, d in steps).most_common(1)[0][0]
        # the commonest step stands for the period only a little under the declared one (drops lower an average by a
        # few %); far under it, the rate varies (a phone's 30 and 60 fps), and the declared average stays
        period = common if 0.85 * self._period <= common < self._period else self._period
        return {n: int(round(d / period)) - 1 for n, d in steps if d > 1.5 * period}

    def _ended(self, decoded: int) -> int:
        """The frame count of a video whose frames ran out after ``decoded``: more than :data:`MISCOUNT` fewer
        than its container records, beyond those its timestamps skip, it is truncated, and its last frame that
        decoded (perhaps in part: FFmpeg returns what it has) is dropped."""
        # an AVI counts the entries of frames dropped in recording, which are empty and skipped in its timestamps:
        # no frame lost from the file (an MP4's or MOV's count is of the frames it holds: its gaps are no credit)
        dropped = sum(self._gaps().values()) if Path(self.clip.video).suffix.lower() == ".avi" else 0
        if decoded + dropped + MISCOUNT >= self._declared or decoded == 0:
            return decoded
        last = decoded - 1
        img = self._cache.pop(last, None)
        self._held -= 0 if img is None else img.nbytes
        self._notes.append(f"the video's frames end at frame {last} though its container records {self._declared} "
                           f"(a truncated file, or one cut without re-encoding): frame {last}, which may be "
                           f"incomplete, and later ones are not used")
        return last

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap, self._pos, self._landed, self._check_times = None, 0, False, False
