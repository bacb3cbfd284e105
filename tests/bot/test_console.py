"""The agent console over HTTP and websockets, inside a Sanic app mounted as Rasa mounts channels.

The app carries the real trained model (one load per module), a SQL tracker
store feeding the console's event broker, the web chat and WeChat channels
(WeChat's API is the local fake) and the console. Handoffs start as
action_handoff starts them: the core's ``request`` plus ``ConversationPaused``
on the tracker; everything after that runs through the real routes.
"""

from __future__ import annotations

import copy
import ipaddress
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from rasa.core.agent import Agent
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.run import configure_app
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationPaused, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic
from sqlalchemy import update
from sqlalchemy.engine import Engine

from bot.console.broker import ConsoleBroker
from bot.console.channel import ConsoleInput
from bot.console.live import live
from bot.settings import SettingsError, load_console_settings, load_webchat_settings, load_wechat_settings
from bot.webchat.channel import WebchatInput, sign
from bot.wechat.channel import WeChatInput
from bot.wechat.dev.local_server import LocalServer
from bot.wechat.dev.simulate import WeChatSide
from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.handoff import auth, service
from loyalty.members import service as members
from loyalty.members.models import Member
from tests.bot.conftest import AES_KEY, APP_ID, APP_SECRET, TOKEN, FakeApi, new_openid
from tests.loyalty.corekit import join
from tests.support.console import PW, H, WsClient
from tests.support.console import agent as agent_account
from tests.support.console import console_login as login
from tests.support.console import console_socket as console_ws
from tests.support.sms import FakeSms, shows_code
from tests.support.stack import load_agent, require_model

WEB_SECRET = "console-tests-webchat"
CONSOLE_SECRET = "console-tests-secret-0123456789"


# ---------------------------------------------------------------- the served assistant


@pytest.fixture(scope="module")
def loaded() -> Iterator[Agent]:
    """The trained model, loaded once for the module, with the real action server beside it.

    The action server runs in this process, so its core calls use the database
    each test configures (the ``sqlite_engine`` fixture).
    """
    require_model()
    from rasa.utils.endpoints import EndpointConfig
    from rasa_sdk.endpoint import create_app as create_action_app

    Sanic.test_mode = True
    actions = LocalServer(create_action_app("actions")).start()
    agent = load_agent(action_endpoint=EndpointConfig(url=f"{actions.url}/webhook"))
    yield agent
    actions.stop()


@dataclass
class Served:
    server: LocalServer
    agent: Agent
    broker: ConsoleBroker
    webchat: WebchatInput
    wechat: WeChatInput
    sql: SQLTrackerStore

    @property
    def base(self) -> str:
        return self.server.url

    @property
    def console(self) -> str:
        return self.server.url + "/webhooks/console"

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return self.server.call(coro, timeout)

    def settle(self) -> None:
        """Let the broker finish what the last saves started."""
        async def both() -> None:
            await self.broker.drain()
            await live.settle()

        self.call(both())

    def tracker(self, sender: str) -> Any:
        return self.call(self.agent.tracker_store.retrieve(sender))


def serve(loaded: Agent, workdir: Path, api_base_url: str, **wechat: Any) -> Served:
    """An app as `rasa run` builds it (channels under /webhooks/), on the loaded model."""
    Sanic.test_mode = True
    broker = ConsoleBroker()
    store = SQLTrackerStore(domain=loaded.domain, dialect="sqlite", db=str(workdir / "tracker.db"),
                            event_broker=broker)
    lock = InMemoryLockStore()
    agent = Agent(domain=loaded.domain, tracker_store=store, lock_store=lock)
    # A new process would load the same model; sharing the loaded graph with new stores is equivalent.
    processor = copy.copy(loaded.processor)
    processor.tracker_store, processor.lock_store = store, lock
    agent.processor = processor
    webchat = WebchatInput(allow_rest=True, settings=load_webchat_settings({}, secret=WEB_SECRET,
                                                                             var_dir=str(workdir)))
    settings = {"token": TOKEN, "app_id": APP_ID, "app_secret": APP_SECRET, "aes_key": AES_KEY,
                "api_base_url": api_base_url, "passive_wait": 2.0, "http_timeout": 2.0, **wechat}
    wx = WeChatInput(load_wechat_settings({}, **settings))
    # The test client connects from 127.0.0.1, standing in for a trusted reverse proxy: tests
    # choose the shopper-side address with X-Forwarded-For (without the header it is 127.0.0.1).
    console = ConsoleInput(load_console_settings({}, secret=CONSOLE_SECRET, var_dir=str(workdir), poll_seconds=0.5,
                                                 trusted_proxies=("127.0.0.1",)))
    app = configure_app(input_channels=[webchat, wx, console], enable_api=False, route="/webhooks/")
    app.ctx.agent = agent
    return Served(LocalServer(app).start(), agent, broker, webchat, wx, store)


@pytest.fixture
def served(loaded: Agent, sqlite_engine: Engine, tmp_path: Path, fake_api: FakeApi) -> Iterator[Served]:
    fake_api.reset()
    s = serve(loaded, tmp_path, fake_api.api_base_url)
    yield s
    s.server.stop()


def visitor() -> str:
    return uuid.uuid4().hex


def shopper_ws(s: Served, v: str) -> WsClient:
    token = sign(v, WEB_SECRET.encode())
    ws = WsClient(f"{s.base.replace('http://', 'ws://')}/webhooks/webchat/ws?visitor={v}&token={token}")
    ws.send({"type": "hello", "last_ts": time.time()})
    return ws


def say(s: Served, v: str, text: str) -> list[dict[str, Any]]:
    """The shopper writes in the web chat; returns what the bot answered in that turn."""
    body = {"visitor": v, "token": sign(v, WEB_SECRET.encode()), "text": text, "id": uuid.uuid4().hex}
    r = requests.post(s.base + "/webhooks/webchat/send", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json().get("messages", [])


def start_handoff(s: Served, sender: str, channel: str = "webchat", member_id: int | None = None,
                  reason: str = "request") -> int:
    """What action_handoff does: queue the conversation in the core, then pause it."""
    ticket = db.run(service.request, sender_id=sender, channel=channel, member_id=member_id, reason=reason)

    async def pause() -> None:
        async with s.agent.lock_store.lock(sender):
            tracker = await s.agent.tracker_store.get_or_create_tracker(sender)
            tracker.update(ConversationPaused())
            await s.agent.tracker_store.save(tracker)

    s.call(pause())
    return ticket.handoff_id


def member_on_web(v: str, tier: str = "normal") -> int:
    m = join()
    db.run(members.bind_identity, m, "webchat", f"web-{v}")
    if tier != "normal":
        db.run(lambda x: x.execute(update(Member).where(Member.id == m).values(tier=tier)))
    return m


def events_after_last_user(tracker: Any) -> list[Any]:
    idx = max(i for i, e in enumerate(tracker.events) if isinstance(e, UserUttered))
    return list(tracker.events)[idx + 1:]


# ---------------------------------------------------------------- access


def test_session_cookies_are_signed_and_expire() -> None:
    from bot.console import sessions

    secret = b"s" * 32
    value = sessions.issue(7, 3, 1, secret, now=1000.0)
    assert sessions.read(value, secret, now=1001.0) == sessions.Session(7, 3, 1000 + 3600)
    assert sessions.read(value, secret, now=1000.0 + 3600) is None  # expired
    assert sessions.read(value, b"t" * 32, now=1001.0) is None  # another secret
    body, mac = value.split(".")
    forged = sessions.issue(8, 3, 1, b"attacker-key", now=1000.0).split(".")[0] + "." + mac
    assert sessions.read(forged, secret, now=1001.0) is None  # another agent under the same signature
    for junk in ("", "x", "a.b.c", body, "." + mac, "é" * 600):
        assert sessions.read(junk, secret, now=1001.0) is None



ROUTES = [
    ("GET", "/api/me"), ("POST", "/api/logout"), ("POST", "/api/password"), ("GET", "/api/queue"),
    ("GET", "/api/agents"), ("GET", "/api/handoffs/1"), ("POST", "/api/handoffs/1/take"),
    ("POST", "/api/handoffs/1/reply"), ("POST", "/api/handoffs/1/coupon"), ("POST", "/api/handoffs/1/points"),
    ("POST", "/api/handoffs/1/note"), ("POST", "/api/handoffs/1/transfer"), ("POST", "/api/handoffs/1/close"),
    ("POST", "/api/handoffs/1/link"),
]


def test_every_route_and_the_socket_refuse_without_a_valid_session(served: Served) -> None:
    agent_account("anna")
    start_handoff(served, "web-x")
    forged = "eyJ4IjoxfQ.AAAA"
    for cookie in (None, forged, "junk", ""):
        for method, path in ROUTES:
            jar = {"console_session": cookie} if cookie is not None else {}
            r = requests.request(method, served.console + path, json={}, headers=H, cookies=jar, timeout=10)
            assert r.status_code == 401, (method, path, cookie, r.status_code)
            assert r.json() == {"error": "unauthorized"}
    ws = WsClient(served.console.replace("http://", "ws://") + "/ws")
    assert ws.wait(lambda f: True) == {"type": "error", "code": "unauthorized"}
    assert ws.closed()
    # The page itself is only the login form: no data in it.
    page = requests.get(served.console + "/", timeout=10)
    assert page.status_code == 200 and "login-form" in page.text and "web-x" not in page.text
    assert requests.get(served.console, allow_redirects=False, timeout=10).status_code in (301, 302)


def test_writes_need_the_console_header_and_the_same_origin(served: Served) -> None:
    agent_account("anna")
    h = start_handoff(served, "web-x")
    http = login(served, "anna")
    for headers in ({}, {"X-Console": "0"}, {"X-Console": "1", "Origin": "http://evil.example"}):
        r = http.post(served.console + f"/api/handoffs/{h}/take", json={}, headers=headers, timeout=10)
        assert r.status_code == 403, headers
    assert db.run(service.get, h).status == "queued"
    assert requests.post(served.console + "/api/login", json={"username": "anna", "password": PW},
                         timeout=30).status_code == 403
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    ws = WsClient(served.console.replace("http://", "ws://") + "/ws", {"Cookie": cookie, "Origin": "http://evil.example"})
    assert ws.wait(lambda f: True)["code"] == "unauthorized"


def test_login_cookie_and_logout_everywhere(served: Served) -> None:
    agent_account("anna", display="安娜")
    r = requests.post(served.console + "/api/login", json={"username": "anna", "password": "wrong one!!"},
                      headers=H, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "bad_credentials" and "console_session" not in r.cookies
    r = requests.post(served.console + "/api/login", json={"username": "anna", "password": PW}, headers=H, timeout=30)
    assert r.status_code == 200 and r.json()["agent"]["name"] == "安娜"
    raw = r.headers["Set-Cookie"].lower()
    assert "httponly" in raw and "samesite=strict" in raw and "path=/webhooks/console" in raw
    cookie = r.cookies["console_session"]
    copy_elsewhere = requests.Session()
    copy_elsewhere.cookies.set("console_session", cookie)
    assert copy_elsewhere.get(served.console + "/api/me", timeout=10).json()["username"] == "anna"
    out = requests.post(served.console + "/api/logout", headers=H, cookies={"console_session": cookie}, timeout=10)
    assert out.status_code == 200
    # The cookie copied to another browser stops working too.
    assert copy_elsewhere.get(served.console + "/api/me", timeout=10).status_code == 401
    for _ in range(auth.MAX_FAILURES):
        requests.post(served.console + "/api/login", json={"username": "anna", "password": "nope nope nope"},
                      headers=H, timeout=30)
    locked = requests.post(served.console + "/api/login", json={"username": "anna", "password": PW}, headers=H,
                           timeout=30)
    assert locked.status_code == 429 and locked.json()["retry_after"] > 0


def _try_login(served: Served, name: str, password: str, client: str) -> tuple[int, dict[str, Any]]:
    r = requests.post(served.console + "/api/login", json={"username": name, "password": password},
                      headers={**H, "X-Forwarded-For": client}, timeout=30)
    return r.status_code, r.json()


def _same(a: list[tuple[int, dict[str, Any]]], b: list[tuple[int, dict[str, Any]]]) -> bool:
    """Same statuses and bodies, allowing the clock to tick between the two runs (retry_after ±2 s)."""
    def strip(x: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
        return [(st, {k: v for k, v in body.items() if k != "retry_after"}) for st, body in x]

    ticks = [abs(x[1].get("retry_after", 0) - y[1].get("retry_after", 0)) for x, y in zip(a, b, strict=True)]
    return strip(a) == strip(b) and max(ticks) <= 2


def test_an_unknown_name_gets_exactly_the_answers_of_a_known_one(served: Served) -> None:
    agent_account("anna")
    tries = auth.MAX_FAILURES + 1
    known = [_try_login(served, "anna", "wrong password", "203.0.113.1") for _ in range(tries)]
    unknown = [_try_login(served, "nobody", "wrong password", "203.0.113.2") for _ in range(tries)]
    assert known[0] == (401, {"error": "bad_credentials"})
    assert known[-1][0] == 429 and known[-1][1]["error"] == "locked" and known[-1][1]["retry_after"] > 0
    assert _same(known, unknown)


def test_a_stranger_cannot_lock_an_agent_out_from_elsewhere(served: Served) -> None:
    agent_account("anna")
    for _ in range(auth.MAX_FAILURES):
        _try_login(served, "anna", "wrong password", "203.0.113.7")
    assert _try_login(served, "anna", PW, "203.0.113.7")[0] == 429
    status, body = _try_login(served, "anna", PW, "198.51.100.2")
    assert status == 200 and body["agent"]["username"] == "anna"
    # A forged header in front of the proxy's entry changes nothing: the proxy's entry counts.
    assert _try_login(served, "anna", PW, "198.51.100.2, 203.0.113.7")[0] == 429


def test_client_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    from bot.console.api import client_address

    proxies = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "::1/128"))
    # No proxy configured, or a peer that is not one: the header is the client's own words.
    assert client_address("203.0.113.7", ["198.51.100.2"], ()) == "203.0.113.7"
    assert client_address("203.0.113.7", ["198.51.100.2"], proxies) == "203.0.113.7"
    # From a proxy: the right-most hop that is not a proxy of ours.
    assert client_address("10.0.0.5", ["198.51.100.2"], proxies) == "198.51.100.2"
    assert client_address("10.0.0.5", ["6.6.6.6, 198.51.100.2, 10.0.0.9"], proxies) == "198.51.100.2"
    assert client_address("10.0.0.5", ["6.6.6.6", "198.51.100.2:4431"], proxies) == "198.51.100.2"
    assert client_address("::1", ["[2001:db8::5]:443"], proxies) == "2001:db8::5"
    assert client_address("10.0.0.5", [], proxies) == "10.0.0.5"
    assert client_address("10.0.0.5", ["10.0.0.7"], proxies) == "10.0.0.7"


def test_trusted_proxies_are_read_and_checked() -> None:
    cfg = load_console_settings({"CONSOLE_TRUSTED_PROXIES": "127.0.0.1, 10.1.0.0/16 ,::1"})
    assert cfg.trusted_proxies == ("127.0.0.1/32", "10.1.0.0/16", "::1/128")
    assert load_console_settings({}).trusted_proxies == ()
    assert load_console_settings({}, trusted_proxies=["10.0.0.1"]).trusted_proxies == ("10.0.0.1/32",)
    with pytest.raises(SettingsError):
        load_console_settings({"CONSOLE_TRUSTED_PROXIES": "10.0.0.1, proxy.example"})


# ---------------------------------------------------------------- the whole takeover


def test_takeover_from_queue_to_hand_back(served: Served) -> None:
    agent_account("anna", display="Anna")
    agent_account("ben")
    v = visitor()
    sender = f"web-{v}"
    m = member_on_web(v, tier="gold")
    db.run(coupons.create_campaign, code="SORRY10", name_zh="致歉券 减10元", name_en="Sorry: 10 off",
           kind="threshold", discount_fen=1000, valid_days=30, audience="goodwill")
    anna_http, ben_http = login(served, "anna"), login(served, "ben")
    console = console_ws(served, anna_http)
    shopper = shopper_ws(served, v)
    assert say(served, v, "你好")  # the bot answers while nobody has taken over

    h = start_handoff(served, sender, member_id=m)
    snap = console.wait(lambda f: f.get("type") == "queue" and any(e["id"] == h for e in f["queue"]))
    entry = next(e for e in snap["queue"] if e["id"] == h)
    assert entry["priority"] > 0 and entry["member"]["tier"] == "gold" and entry["channel"] == "webchat"

    # While waiting, the shopper's words go to the console, never to the bot's prediction.
    assert say(served, v, "我的积分好像少了") == []
    got = console.wait(lambda f: f.get("type") == "message" and f["handoff"] == h)
    assert got["from"] == "shopper" and got["text"] == "我的积分好像少了"
    assert not any(isinstance(e, ActionExecuted | BotUttered) for e in events_after_last_user(served.tracker(sender)))

    # Exactly one of two agents gets it.
    first = anna_http.post(served.console + f"/api/handoffs/{h}/take", headers=H, timeout=30)
    second = ben_http.post(served.console + f"/api/handoffs/{h}/take", headers=H, timeout=30)
    assert first.status_code == 200 and second.status_code == 409 and second.json()["error"] == "already_taken"
    greeting = shopper.wait(lambda f: f.get("type") == "bot" and f.get("agent") == "Anna")
    assert "Anna" in greeting["text"]

    # The agent's reply reaches the shopper live and lands in the tracker as a bot turn.
    r = anna_http.post(served.console + f"/api/handoffs/{h}/reply", json={"text": "您好，我来查一下"}, headers=H,
                       timeout=30)
    assert r.status_code == 200 and r.json()["ok"]
    pushed = shopper.wait(lambda f: f.get("type") == "bot" and f.get("text") == "您好，我来查一下")
    assert pushed["agent"] == "Anna" and pushed["ts"] == r.json()["ts"]
    turn = [e for e in served.tracker(sender).events if isinstance(e, BotUttered) and e.text == "您好，我来查一下"]
    assert len(turn) == 1 and turn[0].metadata["agent_username"] == "anna" and turn[0].metadata["handoff"] == h
    # Ben may not speak in Anna's conversation, nor read it.
    assert ben_http.post(served.console + f"/api/handoffs/{h}/reply", json={"text": "hi"}, headers=H,
                         timeout=30).json()["error"] == "not_yours"
    assert ben_http.get(served.console + f"/api/handoffs/{h}", timeout=30).status_code == 409

    # Transcript and profile side by side.
    d = anna_http.get(served.console + f"/api/handoffs/{h}", timeout=30).json()
    kinds = [(i["kind"], i["text"]) for i in d["transcript"]]
    assert ("shopper", "你好") in kinds and ("shopper", "我的积分好像少了") in kinds
    assert ("agent", "您好，我来查一下") in kinds and any(k == "bot" for k, _ in kinds)
    assert ("system", "paused") in kinds
    p = d["profile"]
    assert p["tier"]["code"] == "gold" and p["card"]["phone_masked"].count("*") == 4
    assert {"SORRY10"} <= {g["code"] for g in p["grantable"]}
    assert set(p) >= {"points", "coupons", "orders", "segment", "recommendations"}

    # A goodwill coupon, once per key; points within the agent's limit; above it, refused.
    key = uuid.uuid4().hex
    for _ in range(2):
        c = anna_http.post(served.console + f"/api/handoffs/{h}/coupon", json={"campaign": "SORRY10", "key": key},
                           headers=H, timeout=30)
        assert c.status_code == 200, c.text
    assert [cp.campaign.code for cp in db.run(coupons.member_coupons, m)].count("SORRY10") == 1
    bad = anna_http.post(served.console + f"/api/handoffs/{h}/coupon", json={"campaign": "NOPE", "key": "k"},
                         headers=H, timeout=30)
    assert bad.status_code == 409 and bad.json()["error"] == "not_grantable"
    ok = anna_http.post(served.console + f"/api/handoffs/{h}/points",
                        json={"delta": 50, "reason": "收银漏积分", "key": "p1"}, headers=H, timeout=30)
    assert ok.status_code == 200 and ok.json()["balance"] == 50
    big = anna_http.post(served.console + f"/api/handoffs/{h}/points",
                         json={"delta": 5000, "reason": "too much", "key": "p2"}, headers=H, timeout=30)
    assert big.status_code == 409 and big.json()["error"] == "supervisor_only"
    n = anna_http.post(served.console + f"/api/handoffs/{h}/note", json={"text": "会员很客气"}, headers=H, timeout=30)
    assert n.status_code == 200
    notes = [x.text for x in db.run(service.notes, h)]
    assert "会员很客气" in notes and any(x.startswith("coupon SORRY10") for x in notes)
    assert any(x.startswith("points +50") for x in notes)

    # Hand back: the bot answers again.
    end = anna_http.post(served.console + f"/api/handoffs/{h}/close", headers=H, timeout=60)
    assert end.status_code == 200 and db.run(service.get, h).status == "closed"
    assert not served.tracker(sender).is_paused()
    assert say(served, v, "你好")  # predicted and answered by the bot
    console.wait(lambda f: f.get("type") == "ended" and f["handoff"] == h)
    console.close()
    shopper.close()


def test_an_agent_links_a_shopper_whose_number_changed(served: Served, fake_sms: FakeSms) -> None:
    agent_account("anna", display="Anna")
    v = visitor()
    sender = f"web-{v}"
    old, new = "13600136000", "13700137000"
    m = join(phone=old)
    http = login(served, "anna")
    shopper = shopper_ws(served, v)
    assert say(served, v, "你好")
    h = start_handoff(served, sender)
    assert http.post(served.console + f"/api/handoffs/{h}/take", headers=H, timeout=30).status_code == 200
    # Not the number of another member; not someone the agent cannot name.
    join(phone="13500135000")
    taken = http.post(served.console + f"/api/handoffs/{h}/link", json={"phone": old, "new_phone": "13500135000"},
                      headers=H, timeout=30)
    assert taken.status_code == 409 and taken.json()["error"] == "phone_taken"
    unknown = http.post(served.console + f"/api/handoffs/{h}/link", json={"phone": "13900000001", "new_phone": new},
                        headers=H, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_a_member"

    r = http.post(served.console + f"/api/handoffs/{h}/link", json={"phone": old, "new_phone": new}, headers=H,
                  timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"member_id": m, "phone": "137****7000", "expires_in": 300, "told": True, "delivery": None}
    told = shopper.wait(lambda f: f.get("type") == "bot" and "137****7000" in f.get("text", ""))
    assert told["agent"] == "Anna"
    assert fake_sms.messages(old) == []
    code = fake_sms.last_code(new)
    say(served, v, code)  # while the agent has the conversation: checked by the channel all the same
    served.settle()
    assert db.run(lambda s: s.get(Member, m).phone) == new
    with db.session(readonly=True) as s:
        from sqlalchemy import select

        from loyalty.audit import AuditEntry
        from loyalty.members.models import ChannelIdentity

        assert s.execute(select(ChannelIdentity.member_id).where(ChannelIdentity.external_id == sender)
                         ).scalar_one() == m
        actions = [tuple(a) for a in s.execute(select(AuditEntry.actor, AuditEntry.action)
                                               .where(AuditEntry.member_id == m).order_by(AuditEntry.id))]
    assert ("agent:anna", "link_started_by_agent") in actions and ("agent:anna", "phone_change") in actions
    assert actions[-1] == ("agent:anna", "identity_link")
    tracker_text = repr([e.as_dict() for e in served.tracker(sender).events])
    assert not shows_code(code, tracker_text) and "/link_code" in tracker_text


def test_racing_agents_over_http_exactly_one_wins(served: Served) -> None:
    names = [f"racer{i}" for i in range(6)]
    for name in names:
        agent_account(name)
    sessions = [login(served, name) for name in names]
    h = start_handoff(served, "web-race")
    barrier = threading.Barrier(len(sessions))

    def take(http: requests.Session) -> int:
        barrier.wait()
        return http.post(served.console + f"/api/handoffs/{h}/take", headers=H, timeout=60).status_code

    with ThreadPoolExecutor(len(sessions)) as pool:
        codes = list(pool.map(take, sessions))
    assert sorted(codes) == [200] + [409] * (len(sessions) - 1)
    row = db.run(service.get, h)
    assert row.status == "active" and row.agent_username == names[codes.index(200)]


def test_the_shopper_can_go_back_to_the_bot_while_waiting(served: Served) -> None:
    agent_account("anna")
    v = visitor()
    sender = f"web-{v}"
    console = console_ws(served, login(served, "anna"))
    say(served, v, "你好")
    h = start_handoff(served, sender)
    console.wait(lambda f: f.get("type") == "queue" and any(e["id"] == h for e in f["queue"]))
    say(served, v, "/cancel_handoff")  # the button under the queued message
    ended = console.wait(lambda f: f.get("type") == "ended" and f["handoff"] == h)
    assert ended["by"] == "shopper"
    served.settle()
    assert db.run(service.get, h).status == "cancelled"
    assert not served.tracker(sender).is_paused()
    console.wait(lambda f: f.get("type") == "queue" and not any(e["id"] == h for e in f["queue"]))
    console.close()


def test_a_restart_keeps_queue_assignments_and_sessions(
    loaded: Agent, sqlite_engine: Engine, tmp_path: Path, fake_api: FakeApi
) -> None:
    first = serve(loaded, tmp_path, fake_api.api_base_url)
    try:
        agent_account("anna")
        http = login(first, "anna")
        waiting = start_handoff(first, "web-waiting")
        v = visitor()
        say(first, v, "你好")
        taken = start_handoff(first, f"web-{v}")
        assert http.post(first.console + f"/api/handoffs/{taken}/take", headers=H, timeout=30).status_code == 200
        first.settle()
    finally:
        first.server.stop()
    second = serve(loaded, tmp_path, fake_api.api_base_url)
    try:
        q = http.get(second.console + "/api/queue", timeout=30)  # the session cookie survives too
        assert q.status_code == 200
        assert [e["id"] for e in q.json()["queue"]] == [waiting]
        assert [(e["id"], e["agent"]["username"]) for e in q.json()["active"]] == [(taken, "anna")]
        console = console_ws(second, http)
        shopper = shopper_ws(second, v)
        assert say(second, v, "还在吗？") == []  # still with the agent after the restart
        console.wait(lambda f: f.get("type") == "message" and f["handoff"] == taken and f["text"] == "还在吗？")
        r = http.post(second.console + f"/api/handoffs/{taken}/reply", json={"text": "在的"}, headers=H, timeout=30)
        assert r.status_code == 200
        shopper.wait(lambda f: f.get("type") == "bot" and f.get("text") == "在的")
        console.close()
        shopper.close()
    finally:
        second.server.stop()


# ---------------------------------------------------------------- conversation edge cases


def test_an_expired_session_is_paused_again_for_the_open_handoff(served: Served) -> None:
    agent_account("anna")
    v = visitor()
    sender = f"web-{v}"
    say(served, v, "你好")
    h = start_handoff(served, sender)
    old = time.time() - 5 * 3600  # longer than the domain's session expiry (240 min)

    # SQLTrackerStore appends only new events; rewrite this conversation from scratch.
    async def rewrite() -> None:
        tracker = await served.agent.tracker_store.retrieve(sender)
        events = list(tracker.events)
        for e in events:
            e.timestamp = old
        fresh = DialogueStateTracker.from_events(sender, events, served.agent.domain.slots)
        store = served.sql
        with store.session_scope() as session:
            session.query(store.SQLEvent).filter_by(sender_id=sender).delete()
            session.commit()
        await store.save(fresh)

    served.call(rewrite())
    assert served.tracker(sender).is_paused()
    say(served, v, "有人吗")  # a new session starts (and Rasa's session start un-pauses)
    served.settle()
    assert served.tracker(sender).is_paused()
    assert say(served, v, "还有人吗") == []
    assert db.run(service.get, h).status == "queued"


def test_a_conversation_paused_without_a_handoff_is_resumed(served: Served) -> None:
    v = visitor()
    sender = f"web-{v}"
    shopper = shopper_ws(served, v)
    say(served, v, "你好")

    async def pause_only() -> None:
        tracker = await served.agent.tracker_store.retrieve(sender)
        tracker.update(ConversationPaused())
        await served.agent.tracker_store.save(tracker)

    served.call(pause_only())
    assert say(served, v, "你好") == []  # ignored by the paused conversation…
    shopper.wait(lambda f: f.get("type") == "bot")  # …then answered once the broker resumed it
    served.settle()
    assert not served.tracker(sender).is_paused()
    shopper.close()


def test_a_restart_ends_the_handoff(served: Served) -> None:
    v = visitor()
    sender = f"web-{v}"
    say(served, v, "你好")
    h = start_handoff(served, sender)
    say(served, v, "/restart")
    served.settle()
    assert db.run(service.get, h).status == "cancelled" and db.run(service.get, h).closed_by == "restart"


# ---------------------------------------------------------------- WeChat


def test_wechat_replies_respect_the_window_and_the_quota(loaded: Agent, sqlite_engine: Engine, tmp_path: Path,
                                                         fake_api: FakeApi) -> None:
    fake_api.reset()
    s = serve(loaded, tmp_path, fake_api.api_base_url, cs_quota_message=3)
    try:
        agent_account("anna", display="Anna")
        http = login(s, "anna")
        side = WeChatSide(TOKEN, APP_ID, AES_KEY)
        openid = new_openid()
        params, body = side.sign(side.text(openid, "你好"))
        assert requests.post(s.base + "/webhooks/wechat/webhook", params=params, data=body, timeout=30).ok
        s.call(s.wechat.drain(timeout=20))
        h = start_handoff(s, openid, channel="wechat")
        took = http.post(s.console + f"/api/handoffs/{h}/take", headers=H, timeout=30)
        assert took.status_code == 200 and took.json()["announced"]  # quota 3 → 2 left
        assert any("Anna" in t for t in fake_api.wait_messages(openid, 1))
        r1 = http.post(s.console + f"/api/handoffs/{h}/reply", json={"text": "第一条"}, headers=H, timeout=30)
        assert r1.status_code == 200 and r1.json()["quota_left"] == 1
        r2 = http.post(s.console + f"/api/handoffs/{h}/reply", json={"text": "第二条"}, headers=H, timeout=30)
        assert r2.json()["quota_left"] == 0
        r3 = http.post(s.console + f"/api/handoffs/{h}/reply", json={"text": "第三条"}, headers=H, timeout=30)
        assert r3.status_code == 409 and r3.json()["error"] == "quota_used"
        assert fake_api.messages(openid)[-1] == "第二条"
        assert any(n.text == "undelivered (quota_used): 第三条" for n in db.run(service.notes, h))
        assert not [e for e in s.tracker(openid).events if isinstance(e, BotUttered) and e.text == "第三条"]
        d = http.get(s.console + f"/api/handoffs/{h}", timeout=30).json()
        assert d["channel"]["code"] == "quota_used" and d["channel"]["quota_left"] == 0

        # A shopper silent for more than 48 hours cannot be written to.
        quiet = new_openid()

        async def old_conversation() -> None:
            tracker = await s.agent.tracker_store.get_or_create_tracker(quiet)
            tracker.update(UserUttered("你好", timestamp=time.time() - 49 * 3600, input_channel="wechat"))
            await s.agent.tracker_store.save(tracker)

        s.call(old_conversation())
        h2 = start_handoff(s, quiet, channel="wechat")
        took2 = http.post(s.console + f"/api/handoffs/{h2}/take", headers=H, timeout=30)
        assert took2.status_code == 200 and took2.json()["delivery"] == "window_closed"
        late = http.post(s.console + f"/api/handoffs/{h2}/reply", json={"text": "抱歉久等"}, headers=H, timeout=30)
        assert late.status_code == 409 and late.json()["error"] == "window_closed"
        assert fake_api.messages(quiet) == []
    finally:
        s.server.stop()
