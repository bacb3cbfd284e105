"""Printable store QR codes: a CLI and an HTTP blueprint.

Scanning a store's code attributes the conversation (and a signup) to the
store. With WeChat configured (app id and secret) the code is a permanent
WeChat parametric QR code whose scene string is the store code; WeChat allows
only 100,000 permanent codes per account, so each store's code is created once
and kept in a JSON file under ``var/qr/``. Without WeChat the code links to
the web chat with ``?store=<code>``.

    python -m bot.qr --all --out posters/
    python -m bot.qr --store SH001 --out posters/ --format png
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import tempfile
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_H
from qrcode.exceptions import DataOverflowError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.settings import (
    SettingsError,
    WebChatSettings,
    WeChatSettings,
    load_webchat_settings,
    load_wechat_settings,
)
from bot.wechat.client import WeChatApi
from bot.wechat.errors import WeChatApiError
from bot.wechat.inbound import store_code_of
from loyalty import db
from loyalty.errors import NotFound, Unavailable
from loyalty.services import catalogue
from loyalty.services.catalogue import StoreView

logger = logging.getLogger(__name__)

Kind = Literal["wechat", "webchat"]
Format = Literal["png", "svg"]
FORMATS: tuple[Format, ...] = ("png", "svg")
CONTENT_TYPES: Mapping[str, str] = {"png": "image/png", "svg": "image/svg+xml; charset=utf-8"}

DEFAULT_CACHE_DIR = Path("var/qr")
WEBCHAT_PATH = "/webhooks/webchat/"
QUIET_ZONE = 4  # modules of white around the code, as the QR standard asks
PNG_SIZE = 1000  # target pixels of the code (quiet zone included)
PNG_DPI = 300  # 1000 px print at about 8.5 cm
LOCK_TIMEOUT = 30.0  # longer than one WeChat call with its retries

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


class QrError(Exception):
    """A store QR code could not be made; the message says why, for people."""


@dataclass(frozen=True)
class StoreQr:
    """What a store's code encodes, and the caption printed under it."""

    store: StoreView
    content: str
    kind: Kind

    @property
    def caption(self) -> list[str]:
        """Store name in Chinese, in English, then the store code."""
        return [self.store.name_zh, self.store.name_en, self.store.code]


# ---------------------------------------------------------------- targets


def wechat_settings_from_env(env: Mapping[str, str] | None = None) -> WeChatSettings | None:
    """WeChat settings when an app id and secret are set, else None (web chat codes).

    Set but unloadable settings raise :class:`SettingsError`: printing web chat
    posters when WeChat was meant would be a silent, costly mistake.
    """
    e = os.environ if env is None else env
    if not (e.get("WECHAT_APP_ID") and e.get("WECHAT_APP_SECRET")):
        return None
    return load_wechat_settings(e)


def webchat_url(settings: WebChatSettings, store_code: str) -> str:
    """The web chat page that attributes the conversation to ``store_code``."""
    return f"{settings.public_url}{WEBCHAT_PATH}?{urlencode({'store': store_code})}"


class _TicketCache:
    """Permanent WeChat QR tickets per store, in one JSON file per app.

    Creation happens under an exclusive ``flock`` so that concurrent requests
    and processes on this host create each store's code once.
    """

    def __init__(self, cache_dir: Path, settings: WeChatSettings) -> None:
        self.path = cache_dir / f"wechat-{_SAFE_FILE.sub('_', settings.app_id)}.json"
        self._api_base_url = settings.api_base_url

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            # It is the only record of the codes already issued: never overwrite it.
            raise QrError(f"{self.path} is not valid JSON; repair or move it away") from None
        if not isinstance(data, dict):
            raise QrError(f"{self.path} does not hold a JSON object; repair or move it away")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _url(self, data: dict[str, Any], code: str) -> str | None:
        entry = data.get(code)
        # A code made against another API base (the local fake) is useless here.
        if isinstance(entry, dict) and entry.get("api_base_url") == self._api_base_url and entry.get("url"):
            return str(entry["url"])
        return None

    async def get(self, code: str) -> str | None:
        """The cached code content for ``code``, or None."""
        return self._url(await asyncio.to_thread(self._read), code)

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Poll a non-blocking lock: a cancelled request then leaves nothing behind.
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise QrError(f"timed out waiting for the lock on {self.path}") from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    async def get_or_create(self, code: str, api: WeChatApi) -> str:
        """The code content for ``code``, asking WeChat only the first time."""
        cached = await self.get(code)
        if cached:
            return cached
        async with self._locked():
            data = await asyncio.to_thread(self._read)
            cached = self._url(data, code)
            if cached:
                return cached
            ticket = await api.create_qrcode(code)  # permanent: QR_LIMIT_STR_SCENE
            if not ticket.url:
                raise QrError(f"WeChat returned no URL for store {code}")
            data[code] = {
                "ticket": ticket.ticket,
                "url": ticket.url,
                "api_base_url": self._api_base_url,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            await asyncio.to_thread(self._write, data)
            logger.info("wechat permanent qr code created store=%s", code)
            return ticket.url


class StoreQrCodes:
    """Resolves what each store's QR code encodes (WeChat or web chat)."""

    def __init__(
        self,
        wechat: WeChatSettings | None = None,
        webchat: WebChatSettings | None = None,
        *,
        cache_dir: Path | str = DEFAULT_CACHE_DIR,
        api: WeChatApi | None = None,
    ) -> None:
        if wechat is not None and not wechat.can_send:
            raise SettingsError("WeChat QR codes need WECHAT_APP_ID and WECHAT_APP_SECRET")
        self.wechat = wechat
        self.webchat = webchat or WebChatSettings()
        self._cache = _TicketCache(Path(cache_dir), wechat) if wechat else None
        self._api = api
        self._own_api = api is None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, cache_dir: Path | str = DEFAULT_CACHE_DIR
    ) -> StoreQrCodes:
        """Codes as configured by environment variables (see .env.example)."""
        return cls(wechat_settings_from_env(env), load_webchat_settings(env), cache_dir=cache_dir)

    @property
    def kind(self) -> Kind:
        """``wechat`` when WeChat codes are made, else ``webchat``."""
        return "wechat" if self.wechat else "webchat"

    async def target_of(self, store: StoreView) -> StoreQr:
        """What the code of a known store encodes."""
        if self.wechat is None or self._cache is None:
            return StoreQr(store, webchat_url(self.webchat, store.code), "webchat")
        if store_code_of(store.code) != store.code:
            # The channel would ignore such a scene string on scan.
            raise QrError(f"store code {store.code!r} cannot be a WeChat scene (A-Z, 0-9, _ and - only)")
        if self._api is None:
            self._api = WeChatApi(self.wechat)
        return StoreQr(store, await self._cache.get_or_create(store.code, self._api), "wechat")

    async def target(self, store_code: str) -> StoreQr:
        """The code of an active store; raises NotFound (code ``unknown_store``)."""
        store = await db.arun(catalogue.store, store_code, readonly=True)
        return await self.target_of(store)

    def close(self) -> None:
        """Stop the WeChat client's threads if this object started them."""
        if self._api is not None and self._own_api:
            self._api.close()
            self._api = None


async def target_for(store_code: str, codes: StoreQrCodes | None = None) -> tuple[str, Kind]:
    """``(content, kind)`` of a store's QR code; kind is ``wechat`` or ``webchat``."""
    own = codes is None
    codes = codes or StoreQrCodes.from_env()
    try:
        qr = await codes.target(store_code)
    finally:
        if own:
            codes.close()
    return qr.content, qr.kind


# ---------------------------------------------------------------- rendering


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


# ---------------------------------------------------------------- HTTP


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"error": code, "message": message}, status=status)


def qr_blueprint(codes: StoreQrCodes | None = None, *, name: str = "store_qr") -> Blueprint:
    """``GET /qr/<code>.png`` and ``GET /qr/<code>.svg``: a store's printable code.

    Without ``codes`` the configuration comes from the environment, read now so
    that a misconfiguration stops the server at start-up.
    """
    qr_codes = codes or StoreQrCodes.from_env()
    bp = Blueprint(name)

    @bp.get("/qr/<filename:str>")
    async def store_qr(request: Request, filename: str) -> HTTPResponse:
        code, dot, ext = filename.rpartition(".")
        fmt = ext.lower()
        if not dot or not code or fmt not in FORMATS:
            return _error(404, "not_found", "Use /qr/<store code>.png or .svg")
        try:
            qr = await qr_codes.target(code)
        except NotFound as exc:
            return response.json(exc.as_dict(), status=404)
        except Unavailable as exc:
            return response.json(exc.as_dict(), status=503)
        except WeChatApiError as exc:
            logger.warning("wechat qr code failed store=%s error=%s", code[:64], exc)
            return _error(502, "wechat_unavailable", "WeChat did not make the QR code; try again later.")
        except QrError as exc:
            return _error(500, "qr_failed", str(exc))
        body = await asyncio.to_thread(render, qr, fmt)  # type: ignore[arg-type]
        headers = {
            "Cache-Control": "public, max-age=3600",
            "Content-Disposition": f'inline; filename="{file_name(qr.store.code, fmt)}"',  # type: ignore[arg-type]
            "X-Content-Type-Options": "nosniff",
        }
        if fmt == "svg":
            # Opened on its own, an SVG is a document: allow no scripts or fetches.
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response.raw(body, content_type=CONTENT_TYPES[fmt], headers=headers)

    @bp.listener("after_server_stop")
    async def _close(*_: Any) -> None:
        if codes is None:
            qr_codes.close()

    return bp


# ---------------------------------------------------------------- CLI


def _formats(raw: str) -> list[Format]:
    chosen = [part.strip().lower() for part in raw.split(",") if part.strip()]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FORMATS)} (comma separated), got {raw!r}")
    return list(dict.fromkeys(chosen))  # type: ignore[arg-type]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.qr", description="Write printable QR codes (PNG, SVG) for stores."
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--store", action="append", metavar="CODE", help="a store code (repeatable)")
    which.add_argument("--all", action="store_true", help="every active store")
    parser.add_argument("--out", required=True, type=Path, help="folder for the files")
    parser.add_argument("--format", type=_formats, default=list(FORMATS), help="png,svg (default both)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="WeChat ticket cache")
    return parser


def _lookup(codes: Sequence[str] | None) -> tuple[list[StoreView], list[str]]:
    """The stores asked for (all active ones without ``codes``) and the unknown codes."""
    if codes is None:
        return db.run(catalogue.stores, readonly=True), []
    found: list[StoreView] = []
    unknown: list[str] = []
    for code in codes:
        try:
            found.append(db.run(catalogue.store, code, readonly=True))
        except NotFound:
            unknown.append(code)
    return found, unknown


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a half-written poster never replaces a good one


async def _write_all(
    codes: StoreQrCodes, stores: Sequence[StoreView], out: Path, formats: Sequence[Format]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, store in enumerate(stores, 1):
        qr = await codes.target_of(store)
        paths = []
        for fmt in formats:
            path = out / file_name(store.code, fmt)
            await asyncio.to_thread(_write_file, path, render(qr, fmt))
            paths.append(str(path))
        print(f"[{i}/{len(stores)}] {store.code}  {qr.kind}  {qr.content}  -> {', '.join(paths)}", flush=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Command line entry; returns the exit status (2: unknown store or bad usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        stores, unknown = _lookup(None if args.all else args.store)
    except Unavailable:
        print("error: the loyalty database is unavailable (run `make db` first?)", file=sys.stderr)
        return 1
    if unknown:
        known = ", ".join(s.code for s in db.run(catalogue.stores, readonly=True)) or "none"
        print(f"error: unknown store(s): {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return 2
    if not stores:
        print("error: there are no active stores (run `python -m loyalty seed`?)", file=sys.stderr)
        return 1
    try:
        codes = StoreQrCodes.from_env(env, cache_dir=args.cache_dir)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(_write_all(codes, stores, args.out, args.format))
    except (QrError, WeChatApiError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        codes.close()
    print(f"{len(stores)} store(s) written to {args.out} ({codes.kind} codes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
