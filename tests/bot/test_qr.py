"""Store QR codes: what they encode, how they render, the CLI and the HTTP routes."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import qrcode
import requests
from PIL import Image
from qrcode.constants import ERROR_CORRECT_H
from sanic import Sanic
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.qr import QrError
from bot.qr import cli as qr_cli
from bot.qr import codes as qr_codes
from bot.qr import render as qr_render
from bot.qr import routes as qr_routes
from bot.settings import SettingsError, WebChatSettings, load_webchat_settings, load_wechat_settings
from bot.wechat.dev.local_server import LocalServer
from bot.wechat.errors import WeChatApiError
from loyalty.catalogue.models import Store
from loyalty.errors import NotFound
from tests.bot.conftest import APP_ID, APP_SECRET, TOKEN, FakeApi
from tests.support.servers import missing

SVG = "{http://www.w3.org/2000/svg}"
EVIL_NAME = '<script>alert("x")</script> & 店'


@pytest.fixture
def stores(sqlite_engine: Engine) -> list[str]:
    """Two active stores (one with a hostile name) and a closed one."""
    with Session(sqlite_engine, future=True) as s, s.begin():
        s.add_all(
            [
                Store(code="SH001", name_zh="上海静安店", name_en="Shanghai Jing'an", city="上海"),
                Store(code="XSS01", name_zh=EVIL_NAME + "\x07", name_en="Tom & <b>Jerry</b>", city="上海"),
                Store(code="OLD01", name_zh="旧店", name_en="Closed", city="上海", active=False),
            ]
        )
    return ["SH001", "XSS01"]


@pytest.fixture
def webchat_codes(tmp_path: Path) -> qr_codes.StoreQrCodes:
    return qr_codes.StoreQrCodes(None, WebChatSettings("https://shop.example.com/chat/"), cache_dir=tmp_path / "qr")


@pytest.fixture
def wechat_codes(fake_api: FakeApi, tmp_path: Path) -> Iterator[qr_codes.StoreQrCodes]:
    codes = qr_codes.StoreQrCodes(_wechat_settings(fake_api), cache_dir=tmp_path / "qr")
    yield codes
    codes.close()


def _wechat_settings(fake_api: FakeApi) -> Any:
    return load_wechat_settings(
        {},
        token=TOKEN,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        api_base_url=fake_api.api_base_url,
        http_timeout=2.0,
    )


def _wechat_env(fake_api: FakeApi) -> dict[str, str]:
    return {
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_BASE_URL": fake_api.api_base_url,
    }


def created_for(fake_api: FakeApi, code: str) -> list[dict[str, Any]]:
    """Every QR code the fake WeChat made with ``code`` as its scene (the server is shared)."""
    return [q for q in fake_api.stats()["qrcodes"].values() if q["scene"].get("scene_str") == code]


def decode(png: bytes, tmp_path: Path) -> list[str]:
    """What a real QR reader (zbarimg) finds in the image."""
    exe = shutil.which("zbarimg")
    if exe is None:
        missing("zbarimg", "apt-get install zbar-tools")
    path = tmp_path / f"{uuid.uuid4().hex}.png"
    path.write_bytes(png)
    done = subprocess.run(
        [str(exe), "--quiet", "--raw", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    return done.stdout.splitlines()


def expected_matrix(content: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_H, border=4)
    code.add_data(content)
    code.make(fit=True)
    return code.get_matrix()


def png_modules(png: bytes, n: int) -> list[list[bool]]:
    """Sample the centre of each module of an n×n code drawn at the top of the image."""
    img = Image.open(BytesIO(png)).convert("L")
    box = img.width / n
    data, width = img.tobytes(), img.width
    return [
        [data[int((y + 0.5) * box) * width + int((x + 0.5) * box)] < 128 for x in range(n)] for y in range(n)
    ]


def svg_modules(svg: str) -> list[list[bool]]:
    root = ET.fromstring(svg)
    n = int(root.get("viewBox", "").split()[2])
    grid = [[False] * n for _ in range(n)]
    path = root.find(f"{SVG}path")
    assert path is not None
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.get("d", "")):
        for i in range(int(w)):
            grid[int(y)][int(x) + i] = True
    return grid


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---------------------------------------------------------------- web chat mode


def test_webchat_code_links_to_the_store(
    stores: list[str], webchat_codes: qr_codes.StoreQrCodes, tmp_path: Path
) -> None:
    url, kind = run(qr_codes.target_for("sh001", webchat_codes))
    assert kind == "webchat"
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "shop.example.com",
        "/chat/webhooks/webchat/",
    )
    assert parse_qs(parts.query) == {"store": ["SH001"]}
    assert decode(qr_render.render_png(url, ["上海静安店", "Shanghai Jing'an", "SH001"]), tmp_path) == [url]


def test_unknown_or_closed_store_is_not_found(stores: list[str], webchat_codes: qr_codes.StoreQrCodes) -> None:
    for code in ("NOPE", "OLD01", ""):
        with pytest.raises(NotFound) as err:
            run(webchat_codes.target(code))
        assert err.value.code == "unknown_store"


def test_webchat_settings() -> None:
    assert load_webchat_settings({}).public_url == "http://127.0.0.1:5005"
    assert (
        load_webchat_settings({"WEBCHAT_PUBLIC_URL": " https://a.example/x/ "}).public_url
        == "https://a.example/x"
    )
    for bad in ("ftp://a.example", "a.example", "https://a.example/?q=1"):
        with pytest.raises(SettingsError, match="WEBCHAT_PUBLIC_URL"):
            load_webchat_settings({"WEBCHAT_PUBLIC_URL": bad})


def test_mode_follows_wechat_configuration(fake_api: FakeApi) -> None:
    assert qr_codes.wechat_settings_from_env({"WECHAT_TOKEN": TOKEN}) is None
    assert qr_codes.StoreQrCodes.from_env({}).kind == "webchat"
    assert qr_codes.StoreQrCodes.from_env(_wechat_env(fake_api)).kind == "wechat"
    # App id and secret set but the channel cannot load: an error, not silent web chat posters.
    with pytest.raises(SettingsError, match="WECHAT_TOKEN"):
        qr_codes.StoreQrCodes.from_env({"WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET})


# ---------------------------------------------------------------- rendering


def test_png_is_printable_and_reads_back(tmp_path: Path) -> None:
    content = "http://weixin.qq.com/q/02abcDEF"
    png = qr_render.render_png(content, ["上海静安店", "Shanghai Jing'an", "SH001"])
    img = Image.open(BytesIO(png))
    assert 900 <= img.width <= 1100 and img.height > img.width  # caption below the code
    assert round(img.info["dpi"][0]) == 300
    matrix = expected_matrix(content)  # high error correction, 4-module quiet zone
    assert png_modules(png, len(matrix)) == matrix
    assert decode(png, tmp_path) == [content]


def test_png_caption_falls_back_without_cjk_font(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    content = "http://127.0.0.1:5005/webhooks/webchat/?store=SH001"
    if qr_render._font_files()[0] is None:
        missing("a CJK font", "apt-get install fonts-noto-cjk")
    with_zh = Image.open(BytesIO(qr_render.render_png(content, ["上海静安店", "Shanghai", "SH001"])))
    without_zh = Image.open(BytesIO(qr_render.render_png(content, ["Shanghai", "SH001"])))
    assert with_zh.height > without_zh.height

    monkeypatch.setattr(qr_render, "CJK_FONTS", ())
    qr_render._font_files.cache_clear()
    qr_render._font.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="bot.qr.render"):
            png = qr_render.render_png(content, ["上海静安店", "Shanghai", "SH001"])
        assert "fonts-noto-cjk" in caplog.text
        # The Chinese line is left out (not drawn as boxes); the English ones stay.
        assert Image.open(BytesIO(png)).height < with_zh.height
        assert decode(png, tmp_path) == [content]
    finally:
        qr_render._font_files.cache_clear()
        qr_render._font.cache_clear()


def test_svg_is_valid_escaped_and_encodes_the_content() -> None:
    content = "https://shop.example.com/webhooks/webchat/?store=XSS01"
    svg = qr_render.render_svg(content, [EVIL_NAME + "\x07", "Tom & <b>Jerry</b>", "XSS01"])
    root = ET.fromstring(svg)  # well-formed despite <, &, " and a control character
    assert root.tag == f"{SVG}svg"
    assert "<script" not in svg and "<b>" not in svg
    assert not root.findall(f".//{SVG}script")
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == [EVIL_NAME, "Tom & <b>Jerry</b>", "XSS01"]
    group = root.find(f"{SVG}g")
    assert group is not None and "Noto Sans CJK SC" in group.get("font-family", "")
    assert svg_modules(svg) == expected_matrix(content)


# ---------------------------------------------------------------- WeChat mode


def test_wechat_code_is_created_once_per_store_and_cached(
    stores: list[str], fake_api: FakeApi, wechat_codes: qr_codes.StoreQrCodes, tmp_path: Path
) -> None:
    before = {code: len(created_for(fake_api, code)) for code in stores}

    async def scenario() -> list[tuple[str, str]]:
        # Concurrent first requests for one store must not each make a code.
        first = await asyncio.gather(*(qr_codes.target_for("SH001", wechat_codes) for _ in range(5)))
        return [
            *first,
            await qr_codes.target_for("sh001", wechat_codes),
            await qr_codes.target_for("XSS01", wechat_codes),
        ]

    results = run(scenario())
    assert {kind for _, kind in results} == {"wechat"}
    sh_url = results[0][0]
    assert {url for url, _ in results[:6]} == {sh_url} and results[6][0] != sh_url

    made = created_for(fake_api, "SH001")
    assert len(made) == before["SH001"] + 1 and len(created_for(fake_api, "XSS01")) == before["XSS01"] + 1
    assert made[-1]["action_name"] == "QR_LIMIT_STR_SCENE"  # permanent
    ticket = sh_url.rsplit("/", 1)[-1]
    assert fake_api.stats()["qrcodes"][ticket]["scene"] == {"scene_str": "SH001"}

    # Another process (or a restart) reads the cache instead of asking WeChat again.
    again = qr_codes.StoreQrCodes(_wechat_settings(fake_api), cache_dir=tmp_path / "qr")
    try:
        assert run(qr_codes.target_for("SH001", again)) == (sh_url, "wechat")
    finally:
        again.close()
    assert len(created_for(fake_api, "SH001")) == before["SH001"] + 1

    png = qr_render.render_png(sh_url, ["上海静安店", "Shanghai Jing'an", "SH001"])
    assert decode(png, tmp_path) == [sh_url]


def test_wechat_failure_caches_nothing(
    stores: list[str], fake_api: FakeApi, wechat_codes: qr_codes.StoreQrCodes, tmp_path: Path
) -> None:
    fake_api.fail_next(45009, path="qrcode/create")  # daily API limit
    with pytest.raises(WeChatApiError):
        run(qr_codes.target_for("SH001", wechat_codes))
    cache = tmp_path / "qr" / f"wechat-{APP_ID}.json"
    assert not cache.exists() or "SH001" not in json.loads(cache.read_text())

    url, _ = run(qr_codes.target_for("SH001", wechat_codes))
    assert json.loads(cache.read_text())["SH001"]["url"] == url


def test_corrupt_cache_is_reported_and_kept(stores: list[str], fake_api: FakeApi, tmp_path: Path) -> None:
    cache = tmp_path / "qr" / f"wechat-{APP_ID}.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    codes = qr_codes.StoreQrCodes(_wechat_settings(fake_api), cache_dir=tmp_path / "qr")
    before = len(created_for(fake_api, "SH001"))
    try:
        with pytest.raises(QrError, match="not valid JSON"):
            run(codes.target("SH001"))
    finally:
        codes.close()
    assert cache.read_text() == "{not json"
    assert len(created_for(fake_api, "SH001")) == before


# ---------------------------------------------------------------- HTTP


def _serve(codes: qr_codes.StoreQrCodes) -> LocalServer:
    app = Sanic(f"qr_{uuid.uuid4().hex[:8]}")
    app.blueprint(qr_routes.qr_blueprint(codes), url_prefix="/qr")
    return LocalServer(app)


def test_http_routes(stores: list[str], webchat_codes: qr_codes.StoreQrCodes, tmp_path: Path) -> None:
    with _serve(webchat_codes) as srv:
        png = requests.get(srv.url + "/qr/SH001.png", timeout=30)
        svg = requests.get(srv.url + "/qr/xss01.svg", timeout=30)
        unknown = requests.get(srv.url + "/qr/NOPE.png", timeout=30)
        closed = requests.get(srv.url + "/qr/OLD01.svg", timeout=30)
        bad_ext = requests.get(srv.url + "/qr/SH001.gif", timeout=30)

    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert "max-age" in png.headers["Cache-Control"]
    assert decode(png.content, tmp_path) == ["https://shop.example.com/chat/webhooks/webchat/?store=SH001"]

    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml")
    assert "default-src 'none'" in svg.headers["Content-Security-Policy"]
    texts = [t.text for t in ET.fromstring(svg.content).iter(f"{SVG}text")]
    assert texts[0] == EVIL_NAME

    for res in (unknown, closed):
        assert res.status_code == 404 and res.json()["error"] == "unknown_store"
    assert bad_ext.status_code == 404 and bad_ext.json()["error"] == "not_found"


def test_http_wechat_error_is_a_502(
    stores: list[str], fake_api: FakeApi, wechat_codes: qr_codes.StoreQrCodes
) -> None:
    fake_api.fail_next(-1, path="qrcode/create")  # "system busy"
    with _serve(wechat_codes) as srv:
        failed = requests.get(srv.url + "/qr/SH001.png", timeout=30)
        retried = requests.get(srv.url + "/qr/SH001.svg", timeout=30)
    assert failed.status_code == 502 and failed.json()["error"] == "wechat_unavailable"
    assert retried.status_code == 200 and ET.fromstring(retried.content).tag == f"{SVG}svg"


# ---------------------------------------------------------------- CLI


def test_cli_writes_every_store(
    stores: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = qr_cli.main(["--all", "--out", str(out), "--format", "png,svg"], env={})
    printed = capsys.readouterr().out
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["SH001.png", "SH001.svg", "XSS01.png", "XSS01.svg"]
    assert "[1/2] SH001" in printed and "[2/2] XSS01" in printed
    assert decode((out / "XSS01.png").read_bytes(), tmp_path) == [
        "http://127.0.0.1:5005/webhooks/webchat/?store=XSS01"
    ]


def test_cli_errors(stores: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert qr_cli.main(["--store", "SH001", "--store", "NOPE", "--out", str(out)], env={}) == 2
    err = capsys.readouterr().err
    assert "unknown store(s): NOPE" in err and "SH001" in err
    assert not out.exists()  # nothing half-done
    assert qr_cli.main(["--store", "SH001", "--out", str(out), "--format", "gif"], env={}) == 2
    assert "--format" in capsys.readouterr().err
    assert qr_cli.main(["--out", str(out)], env={}) == 2


def test_cli_wechat_mode_reuses_codes(stores: list[str], fake_api: FakeApi, tmp_path: Path) -> None:
    env = _wechat_env(fake_api)
    before = len(created_for(fake_api, "SH001"))
    args = [
        "--store",
        "SH001",
        "--out",
        str(tmp_path / "out"),
        "--format",
        "png",
        "--cache-dir",
        str(tmp_path / "qr"),
    ]
    assert qr_cli.main(args, env=env) == 0
    first = decode((tmp_path / "out" / "SH001.png").read_bytes(), tmp_path)
    assert qr_cli.main(args, env=env) == 0
    assert decode((tmp_path / "out" / "SH001.png").read_bytes(), tmp_path) == first
    assert first[0].startswith("http://weixin.qq.com/q/")
    assert len(created_for(fake_api, "SH001")) == before + 1


def test_code_made_against_another_api_is_not_reused(
    stores: list[str], fake_api: FakeApi, tmp_path: Path
) -> None:
    cache = tmp_path / "qr" / f"wechat-{APP_ID}.json"
    cache.parent.mkdir(parents=True)
    other = {
        "SH001": {
            "url": "http://weixin.qq.com/q/elsewhere",
            "api_base_url": "https://api.weixin.qq.com/cgi-bin/",
        }
    }
    cache.write_text(json.dumps(other))
    codes = qr_codes.StoreQrCodes(_wechat_settings(fake_api), cache_dir=tmp_path / "qr")
    try:
        url, _ = run(qr_codes.target_for("SH001", codes))
    finally:
        codes.close()
    assert url != other["SH001"]["url"] and url.startswith("http://weixin.qq.com/q/fake-ticket-")
    assert json.loads(cache.read_text())["SH001"]["api_base_url"] == fake_api.api_base_url
