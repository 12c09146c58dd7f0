"""Writing a database's on-disk layout (the synthetic generator's clips): frames and label workbooks.

Each ``sources/<db>.py`` keeps its ``write`` beside its reader (their round trip is tested); the file
writing they share is here.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openpyxl

JPEG_QUALITY = 95  # a writer's quality when the clip names none


def write_frame(path: Path, img: np.ndarray, quality: int | None = None) -> None:
    """Write one frame; ``.jpg`` at ``quality`` (default :data:`JPEG_QUALITY`).

    A lossless file (``.bmp``, ``.png``) given a ``quality`` stores the frame as decoded from a JPEG
    at that quality, so that a clip shows the same compression in every layout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    suffix = path.suffix.lower()
    jpeg = suffix in (".jpg", ".jpeg")
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality {quality} is outside 1..100")
    if quality is not None and not jpeg:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise OSError(f"cannot JPEG-encode frame {path}")
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality or JPEG_QUALITY)] if jpeg else []
    if not cv2.imwrite(str(path), img, params):
        raise OSError(f"cannot write frame {path}")


def write_xlsx(path: Path, sheets: list[tuple[str, list[list[Any]]]]) -> None:
    """A workbook with the given sheets (rows written from row 1; ``None`` cells stay empty)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets:
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(list(r))
    # Fixed document dates and zip entry times: the same synthetic database, byte for byte.
    stamp = datetime.datetime(2020, 1, 1)
    wb.properties.created = wb.properties.modified = stamp
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps "modified" at save time
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2020-01-01T00:00:00Z", data)
            dst.writestr(fixed, data)
