"""``journey`` and ``broadcast``: preview, run now, pause, resume and report (docs/outreach.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from loyalty import db
from loyalty.apps.cli.common import EXIT_OK, command_group, local_time, parse_when, table, text_of
from loyalty.common import fen_to_yuan
from loyalty.errors import InvalidInput
from loyalty.outreach import outcomes
from loyalty.outreach import report as reports
from loyalty.outreach import service as svc
from loyalty.outreach.journeys import JOURNEYS
from loyalty.outreach.preview import Preview, preview


def _name(a: argparse.Namespace) -> str:
    return a.name if a.command == "journey" else f"broadcast:{a.name}"


def _print_preview(p: Preview) -> None:
    print(f"{p.journey}: audience {p.audience}, planned before {p.already}, control {p.control}, "
          f"would send {p.would_send}")
    for rule, n in sorted(p.skips.items()):
        print(f"  skipped by {rule}: {n}")
    if p.held_until:
        print(f"  quiet hours: held until {local_time(p.held_until)}")
    if p.languages:
        print("  in " + ", ".join(f"{lang}: {n}" for lang, n in sorted(p.languages.items(), reverse=True)))
    for mid, lang, zh, en in p.samples:
        print(f"  member {mid} (reads {lang}):\n    {zh}\n    {en}")


def cmd_preview(a: argparse.Namespace) -> int:
    _print_preview(db.run(preview, _name(a), a.now, readonly=True))
    return EXIT_OK


def cmd_run(a: argparse.Namespace) -> int:
    name = _name(a)
    fn = svc.plan_journey if a.command == "journey" else svc.plan_broadcast
    p = db.run(fn, name if a.command == "journey" else a.name, a.now)
    print(f"{name}: {p.candidates} found, {p.new} new sends recorded; the outreach scheduler delivers them "
          "(python -m bot.outreach --once to deliver now)")
    return EXIT_OK


def cmd_pause(a: argparse.Namespace) -> int:
    db.run(svc.set_paused, _name(a), a.action == "pause", actor=a.actor)
    print(f"{_name(a)}: {'paused' if a.action == 'pause' else 'running'}")
    return EXIT_OK


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def cmd_report(a: argparse.Namespace) -> int:
    r = db.run(reports.journey_report, _name(a), readonly=True)
    rows: list[list[Any]] = []
    for arm_name, arm in (("treatment", r.treatment), ("control", r.control)):
        rows.append([arm_name, arm.members, arm.reached, _pct(arm.conversion),
                     fen_to_yuan(round(arm.revenue_per_member_fen)), arm.redemptions, fen_to_yuan(arm.coupon_cost_fen)])
    table(["arm", "members", "reached", "conversion", "¥/member", "redemptions", "coupon cost ¥"], rows)
    c, v = r.conversion_uplift, r.revenue_uplift_fen
    print(f"conversion uplift {_pct(c.value)} (95% CI {_pct(c.low)} … {_pct(c.high)}); "
          f"revenue per member {v.value / 100:+.2f} yuan (95% CI {v.low / 100:+.2f} … {v.high / 100:+.2f})")
    return EXIT_OK


def cmd_freeze(a: argparse.Namespace) -> int:
    f = db.run(outcomes.freeze_outcomes, a.now, full=a.full)
    print(f"outcomes frozen up to {local_time(f.frozen_until)}: {f.frozen} closed windows written, "
          f"{f.refreshed} recomputed for orders posted late")
    return EXIT_OK


def cmd_broadcast_create(a: argparse.Namespace) -> int:
    try:
        audience = json.loads(a.audience)
        assert isinstance(audience, dict)
    except (ValueError, AssertionError):
        raise InvalidInput("--audience must be a JSON object, e.g. {\"tier\": \"gold\"}.",
                           code="invalid_audience") from None
    bid = db.run(svc.create_broadcast, a.name, audience, a.zh, a.en, a.at, actor=a.actor)
    print(f"broadcast {a.name} (id {bid}) scheduled for {local_time(a.at)}")
    return EXIT_OK


def _common(g: Any, names: list[str] | None) -> None:
    for action, fn, text in (("preview", cmd_preview, "audience, control, skips and sample messages; sends nothing"),
                             ("run", cmd_run, "record what is due now (the scheduler sends it)"),
                             ("pause", cmd_pause, "stop planning and sending"),
                             ("resume", cmd_pause, "run again"),
                             ("report", cmd_report, "treatment against control with 95% intervals")):
        p = g.add_parser(action, help=text)
        p.add_argument("name", choices=names, metavar="name" if names is None else None)
        if action in ("preview", "run"):
            p.add_argument("--now", type=parse_when, help="as of this time (default now)")
        if action in ("pause", "resume"):
            p.add_argument("--actor", required=True, type=text_of(64))
        p.set_defaults(func=fn)


def add_journey(sub: Any) -> None:
    g = command_group(sub, "journey", "marketing journeys (welcome, birthday, …)")
    _common(g, sorted(JOURNEYS))
    f = g.add_parser("freeze", help="freeze the outcomes of attribution windows that have closed (the outreach "
                                    "scheduler does it every planning round)")
    f.add_argument("--now", type=parse_when, help="as of this time (default now)")
    f.add_argument("--full", action="store_true", help="look at every send, not only those since the last freeze")
    f.set_defaults(func=cmd_freeze)


def add_broadcast(sub: Any) -> None:
    g = command_group(sub, "broadcast", "one-off messages to an audience")
    c = g.add_parser("create", help="schedule a broadcast")
    c.add_argument("name", type=text_of(40))
    c.add_argument("--audience", default="{}", help='JSON, e.g. {"tier": "gold", "lifecycle": "active"}')
    c.add_argument("--zh", required=True, type=text_of(500))
    c.add_argument("--en", required=True, type=text_of(500))
    c.add_argument("--at", required=True, type=parse_when, help="when to send (Asia/Shanghai if no zone)")
    c.add_argument("--actor", required=True, type=text_of(64))
    c.set_defaults(func=cmd_broadcast_create)
    _common(g, None)
