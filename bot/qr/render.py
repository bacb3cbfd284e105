"""Store QR codes as print-ready PNG and SVG, with the store's names under the code."""

from __future__ import annotations

import logging
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from functools import lru_cache
from io import BytesIO
from typing import Any, Literal

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_H
from qrcode.exceptions import DataOverflowError

from bot.qr import QrError
from bot.qr.codes import StoreQr

logger = logging.getLogger(__name__)

Format = Literal["png", "svg"]
FORMATS: tuple[Format, ...] = ("png", "svg")
CONTENT_TYPES: Mapping[str, str] = {"png": "image/png", "svg": "image/svg+xml; charset=utf-8"}

QUIET_ZONE = 4  # modules of white around the code, as the QR standard asks
PNG_SIZE = 1000  # target pixels of the code (quiet zone included)
PNG_DPI = 300  # 1000 px print at about 8.5 cm

# CJK fonts in the usual places (Debian/Ubuntu, Arch, Fedora, macOS, Windows).
CJK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
LATIN_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)
SVG_FONT_FAMILY = (
    "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', "
    "'Hiragino Sans GB', 'Microsoft YaHei', 'WenQuanYi Micro Hei', sans-serif"
)
# Characters XML 1.0 cannot carry at all; a store name must not break the SVG.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SAFE_FILE = re.compile(r"[^A-Za-z0-9_-]")



def _matrix(content: str) -> list[list[bool]]:
    """Modules of the code, quiet zone included; high error correction survives wear."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_H, border=QUIET_ZONE)
    code.add_data(content)
    try:
        code.make(fit=True)
    except DataOverflowError:
        raise QrError(f"{len(content)} characters are too many for a QR code") from None
    return code.get_matrix()


def _clean(line: str) -> str:
    return " ".join(_XML_INVALID.sub("", line).split())


def _is_wide(line: str) -> bool:
    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in line)


def _face_index(path: str) -> int:
    """In a font collection, the Simplified Chinese face (glyph shapes differ from JP/KR)."""
    if not path.lower().endswith(".ttc"):
        return 0
    for index in range(12):
        try:
            family, _ = ImageFont.truetype(path, 10, index=index).getname()
        except OSError:
            break
        if family and (family.endswith(" SC") or "GB" in family):
            return index
    return 0


@lru_cache(maxsize=1)
def _font_files() -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """(CJK font, Latin font) as (path, face index), either None when absent."""
    cjk = next(((p, _face_index(p)) for p in CJK_FONTS if os.path.isfile(p)), None)
    latin = cjk or next(((p, 0) for p in LATIN_FONTS if os.path.isfile(p)), None)
    if cjk is None:
        logger.warning(
            "no CJK font found (install fonts-noto-cjk): PNG captions show the English name and code only"
        )
    return cjk, latin


@lru_cache(maxsize=32)
def _font(size: int, wide: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    cjk, latin = _font_files()
    chosen = cjk if wide else latin
    if chosen is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(chosen[0], size, index=chosen[1])


def render_png(content: str, caption_lines: Sequence[str]) -> bytes:
    """A printable PNG: the code at about 1000 px, the caption lines centred below it.

    Lines with Chinese characters are left out when no CJK font is installed.
    """
    matrix = _matrix(content)
    n = len(matrix)
    box = max(4, round(PNG_SIZE / n))
    side = n * box
    code_img = Image.new("L", (n, n), 255)
    code_img.putdata([0 if dark else 255 for row in matrix for dark in row])
    code_img = code_img.resize((side, side), Image.Resampling.NEAREST)

    has_cjk = _font_files()[0] is not None
    lines = [ln for ln in map(_clean, caption_lines) if ln and (has_cjk or not _is_wide(ln))]
    margin = QUIET_ZONE * box
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    laid_out: list[tuple[str, Any, int]] = []
    for i, line in enumerate(lines):
        size = round(side * (0.075 if i == 0 else 0.05))
        font = _font(size, _is_wide(line))
        width = measure.textlength(line, font=font)
        if width > side - 2 * margin:  # long names shrink to fit the code's width
            size = max(10, int(size * (side - 2 * margin) / width))
            font = _font(size, _is_wide(line))
        laid_out.append((line, font, round(size * 1.4)))

    height = side + sum(h for _, _, h in laid_out) + (margin // 2 if laid_out else 0)
    canvas = Image.new("L", (side, height), 255)
    canvas.paste(code_img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = side
    for line, font, line_height in laid_out:
        draw.text((side / 2, y), line, fill=0, font=font, anchor="mt")
        y += line_height
    out = BytesIO()
    canvas.save(out, "PNG", optimize=True, dpi=(PNG_DPI, PNG_DPI))
    return out.getvalue()


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _text_em(line: str) -> float:
    """Rough width in em: CJK characters are square, Latin ones about 0.6 em."""
    return sum(1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.6 for ch in line)


def render_svg(content: str, caption_lines: Sequence[str]) -> str:
    """A printable SVG (one unit per module): the code, then the caption as text."""
    matrix = _matrix(content)
    n = len(matrix)
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < n and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")

    lines = [ln for ln in map(_clean, caption_lines) if ln]
    avail = n - 2 * QUIET_ZONE
    texts: list[tuple[str, float, float]] = []  # line, font size, baseline
    y_pos = float(n)
    for i, line in enumerate(lines):
        size = n * (0.075 if i == 0 else 0.05)
        size = min(size, avail / max(_text_em(line), 1.0))
        texts.append((line, size, y_pos + size))
        y_pos += size * 1.4
    height = y_pos + (QUIET_ZONE / 2 if lines else 0)

    scale = PNG_SIZE / n
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {n} {_num(height)}",
            "width": _num(n * scale),
            "height": _num(height * scale),
        },
    )
    ET.SubElement(svg, "title").text = " · ".join(lines) or "QR code"
    ET.SubElement(svg, "rect", {"width": str(n), "height": _num(height), "fill": "#fff"})
    ET.SubElement(svg, "path", {"d": "".join(runs), "fill": "#000", "shape-rendering": "crispEdges"})
    caption = ET.SubElement(
        svg, "g", {"font-family": SVG_FONT_FAMILY, "text-anchor": "middle", "fill": "#000"}
    )
    for line, size, baseline in texts:
        text = ET.SubElement(
            caption, "text", {"x": _num(n / 2), "y": _num(baseline), "font-size": _num(size)}
        )
        text.text = line  # ElementTree escapes & < > in text and attributes
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(svg, encoding="unicode") + "\n"


@lru_cache(maxsize=64)
def _render(fmt: Format, content: str, caption: tuple[str, ...]) -> bytes:
    # Posters are asked for again and again; the inputs fully decide the bytes.
    if fmt == "png":
        return render_png(content, caption)
    return render_svg(content, caption).encode("utf-8")


def render(qr: StoreQr, fmt: Format) -> bytes:
    """The file content of a store's code in ``png`` or ``svg``."""
    return _render(fmt, qr.content, tuple(qr.caption))


def file_name(store_code: str, fmt: Format) -> str:
    """A safe file name for a store's code, e.g. ``SH001.png``."""
    return f"{_SAFE_FILE.sub('_', store_code)}.{fmt}"

