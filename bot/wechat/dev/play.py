"""Play WeChat's server against the channel, so anyone can try it without an account.

Examples::

    python -m bot.wechat.dev.play --openid o123 "我的积分"
    python -m bot.wechat.dev.play --openid o123 --aes "hello"
    python -m bot.wechat.dev.play --openid o123 --subscribe SH001
    python -m bot.wechat.dev.play --openid o123 --scan SH001
    python -m bot.wechat.dev.play --openid o123 --click MENU_POINTS
    python -m bot.wechat.dev.play --openid o123 --media image
    python -m bot.wechat.dev.play --verify

Token, app id and AES key come from WECHAT_TOKEN, WECHAT_APP_ID and
WECHAT_AES_KEY unless given. With ``--fake-api`` (the local fake API server's
base URL) the script also prints what arrived by customer-service message.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import requests

from bot.wechat.dev.simulate import WeChatSide, new_msg_id

DEFAULT_URL = "http://localhost:5005/webhooks/wechat/webhook"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot.wechat.dev.play",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("text", nargs="?", help="a text message to send")
    p.add_argument("--url", default=DEFAULT_URL, help="the channel's webhook URL")
    p.add_argument("--openid", default="o_play_shopper_0001", help="the shopper's openid")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--subscribe", metavar="STORE", nargs="?", const="", help="follow, via STORE's QR code if given"
    )
    kind.add_argument("--scan", metavar="STORE", help="scan STORE's QR code as a follower")
    kind.add_argument("--click", metavar="KEY", help="tap the menu item with this key")
    kind.add_argument(
        "--media", choices=["image", "voice", "location", "video"], help="send a non-text message"
    )
    kind.add_argument("--verify", action="store_true", help="do WeChat's GET URL verification")
    p.add_argument("--aes", action="store_true", help="encrypt (safe mode)")
    p.add_argument(
        "--repeat", type=int, default=1, help="send the same callback N times, like WeChat's retries"
    )
    p.add_argument("--token", default=os.environ.get("WECHAT_TOKEN", ""))
    p.add_argument("--app-id", default=os.environ.get("WECHAT_APP_ID", ""))
    p.add_argument("--aes-key", default=os.environ.get("WECHAT_AES_KEY") or None)
    p.add_argument("--fake-api", metavar="URL", help="fake API base, e.g. http://127.0.0.1:8089")
    p.add_argument("--wait", type=float, default=8.0, help="seconds to watch for customer-service messages")
    return p


def main(argv: list[str] | None = None) -> int:
    """Send one callback (or a verification) and print what came back."""
    args = _parser().parse_args(argv)
    if not args.token:
        print("set WECHAT_TOKEN or pass --token", file=sys.stderr)
        return 2
    side = WeChatSide(args.token, args.app_id, args.aes_key)

    if args.verify:
        res = requests.get(args.url, params=side.verification("play-echo"), timeout=10)
        ok = res.status_code == 200 and res.text == "play-echo"
        print(f"verification {'passed' if ok else 'FAILED'}: HTTP {res.status_code} {res.text!r}")
        return 0 if ok else 1

    if args.subscribe is not None:
        xml = side.subscribe(args.openid, args.subscribe or None)
    elif args.scan:
        xml = side.scan(args.openid, args.scan)
    elif args.click:
        xml = side.event(args.openid, "CLICK", args.click)
    elif args.media:
        xml = side.media(args.openid, args.media)
    elif args.text:
        xml = side.text(args.openid, args.text, msg_id=new_msg_id())
    else:
        print("say something: a text, or --subscribe/--scan/--click/--media/--verify", file=sys.stderr)
        return 2

    seen = _fake_messages(args.fake_api, args.openid) if args.fake_api else 0
    if args.fake_api:  # the shopper interacted: the fake's quota starts again
        requests.post(f"{args.fake_api}/_fake/interaction", json={"openid": args.openid}, timeout=5)

    for attempt in range(1, args.repeat + 1):
        # Every retry is signed afresh, as WeChat does; the body stays the same.
        params, body = side.sign(xml, aes=args.aes)
        started = time.monotonic()
        res = requests.post(args.url, params=params, data=body, timeout=10)
        elapsed = time.monotonic() - started
        if res.status_code != 200:
            print(f"[{attempt}] HTTP {res.status_code} {res.text!r} ({elapsed:.2f}s)")
            return 1
        reply = side.open_reply(res.text)
        if reply.text is None:
            print(f"[{attempt}] success (no passive reply) ({elapsed:.2f}s)")
        else:
            print(f"[{attempt}] passive reply ({elapsed:.2f}s):\n{reply.text}")

    if args.fake_api:
        _watch(args.fake_api, args.openid, seen, args.wait)
    return 0


def _fake_messages(base: str, openid: str) -> int:
    res = requests.get(f"{base}/_fake/messages", params={"touser": openid}, timeout=5)
    return len(res.json()["messages"])


def _watch(base: str, openid: str, seen: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        res = requests.get(f"{base}/_fake/messages", params={"touser": openid}, timeout=5)
        messages = res.json()["messages"]
        for message in messages[seen:]:
            print(f"customer-service message:\n{message.get('text', {}).get('content', message)}")
        seen = len(messages)
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
