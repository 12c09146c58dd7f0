"""The objects a process creates once and every clip reuses (model loading must never be per clip).

:class:`Tools` is made by :func:`unimer_builder.pipeline.build` (or a pool worker's initializer) and handed
to every stage that needs one; no stage creates its own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .config import BuildConfig
from .face import FaceAligner
from .flow import make_dis, make_tvl1
from .pyfeat_backend import PyFeat


@dataclass
class Tools:
    aligner: FaceAligner  # dlib's detector and 68-point predictor, or py-feat's finder (face.FaceAligner)
    tvl1: object  # OpenCV's DualTVL1OpticalFlow or flow_torch.TorchTVL1: calc() and setScalesNumber()
    dis: object  # OpenCV's DISOpticalFlow for the timing curves and the apex search
    helper: ThreadPoolExecutor  # one thread: TV-L1 runs there while the DIS curves run in the caller's
    pyfeat: PyFeat | None = None  # with --au-detector / --face-detector py-feat
    made_for: tuple = ()  # the settings these tools depend on (see :meth:`fits`)

    @classmethod
    def create(cls, cfg: BuildConfig) -> Tools:
        """Tools for ``cfg``; raises :class:`.pyfeat_backend.PyFeatUnavailable` where py-feat is asked for
        and cannot run."""
        pyfeat = PyFeat() if "py-feat" in (cfg.face.detector, cfg.check.au_detector) else None
        finder = pyfeat.find_face if pyfeat is not None and cfg.face.detector == "py-feat" else None
        return cls(aligner=FaceAligner(cfg.face, finder), tvl1=make_tvl1(cfg.flow), dis=make_dis(cfg.flow),
                   helper=ThreadPoolExecutor(1, thread_name_prefix="unimer-tvl1"), pyfeat=pyfeat,
                   made_for=_depends_on(cfg))

    def fits(self, cfg: BuildConfig) -> bool:
        """Whether these tools were made for settings that give the same tools as ``cfg``."""
        return self.made_for == _depends_on(cfg)

    def close(self) -> None:
        self.helper.shutdown(wait=True)

    def __enter__(self) -> Tools:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _depends_on(cfg: BuildConfig) -> tuple:
    return (cfg.face, cfg.flow, cfg.check.au_detector)
