"""Points adjustments and the periodic jobs: expiry, tier reviews, recommender training, segments, reports."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from loyalty import db
from loyalty.apps.cli.common import EXIT_OK, command_group, int_in, local_time, parse_when, progress_bar, text_of
from loyalty.membership import service as membership
from loyalty.points import service as points
from loyalty.tiers import service as tiers


def cmd_points_adjust(a: argparse.Namespace) -> int:
    mv = db.run(points.adjust, a.member_id, a.delta, reason=a.reason, actor=a.actor, key=a.key)
    print(f"member {a.member_id}: {mv.delta:+d} points, balance {mv.balance} (ledger entry {mv.entry_id})")
    return EXIT_OK


def cmd_points_expire(a: argparse.Namespace) -> int:
    at = a.now or db.utcnow()
    due = db.run(points.members_with_due_lots, at, readonly=True)
    total = touched = 0
    with progress_bar(len(due), "expiring", "member") as bar:
        for mid in due:
            # One transaction per member: a failure leaves the others done, and a re-run finishes the job.
            n = db.run(points.expire_due_for, mid, at)
            total += n
            touched += n > 0
            bar.update()
    print(f"expired {total} points of {touched} members (lots due by {local_time(at)})")
    return EXIT_OK


def _review(s: Session, member_id: int, at: datetime) -> tuple[str, str]:
    before = membership.card(s, member_id).tier
    return before, tiers.review_member(s, member_id, at)


def cmd_tiers_review(a: argparse.Namespace) -> int:
    at = a.now or db.utcnow()
    due = db.run(tiers.members_due_for_review, at, readonly=True)
    up = down = 0
    with progress_bar(len(due), "reviewing", "member") as bar:
        for mid in due:
            before, after = db.run(_review, mid, at)
            up += tiers.rank(after) > tiers.rank(before)
            down += tiers.rank(after) < tiers.rank(before)
            bar.update()
    print(f"reviewed {len(due)} members as of {local_time(at)}: {down} moved down, {up} moved up, "
          f"{len(due) - up - down} kept their tier")
    return EXIT_OK


def cmd_recommender_train(a: argparse.Namespace) -> int:
    from loyalty.recommender import service as recommender
    from loyalty.recommender import store

    if a.if_stale:
        found = store.newest(a.out or recommender.model_dir())
        if found is not None and store.is_current(found):
            print(f"recommender {found.name} is current: not retrained")
            return EXIT_OK
    result = db.run(recommender.train_and_save, a.out, progress=True, readonly=True)
    print(f"trained recommender {result.version} on {result.members} members, {result.products} products, "
          f"{result.orders} orders in {result.seconds:.1f} s -> {result.path}")
    return EXIT_OK


def cmd_segments_recompute(a: argparse.Namespace) -> int:
    from loyalty.segments import job as segments_job

    run = db.run(segments_job.recompute_all, now=a.now or db.utcnow())
    print(f"segments of {run.members} members recomputed as of {local_time(run.as_of)}; {run.moves} moves recorded")
    for title, counts in (("segment", run.by_segment), ("lifecycle", run.by_lifecycle)):
        print(f"  by {title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    return EXIT_OK


def cmd_reports_refresh(a: argparse.Namespace) -> int:
    from loyalty.reports import rollup

    done = db.run(rollup.refresh, a.now)
    if done is None:
        print("another process is rebuilding the dashboard tables; nothing done")
        return EXIT_OK
    print(f"dashboard tables rebuilt as of {local_time(done.as_of)}: {done.rows} rows in {done.took_ms / 1000:.1f} s")
    return EXIT_OK


def add_points(sub: Any) -> None:
    pg = command_group(sub, "points", "points ledger")
    adj = pg.add_parser("adjust", help="add or take points (audited)")
    adj.add_argument("member_id", type=int_in(1, 2**62))
    adj.add_argument("delta", type=int_in(-1_000_000, 1_000_000), help="points to add (negative: take)")
    adj.add_argument("--reason", required=True, type=text_of(200))
    adj.add_argument("--actor", required=True, type=text_of(64), help="the staff member making the change")
    adj.add_argument("--key", type=text_of(100), help="idempotency key: the same key never adjusts twice")
    adj.set_defaults(func=cmd_points_adjust)
    exp = pg.add_parser("expire", help="expire every lot that is due (idempotent)")
    exp.add_argument("--now", type=parse_when, help="expire what is due by this time (default now)")
    exp.set_defaults(func=cmd_points_expire)


def add_tiers(sub: Any) -> None:
    tg = command_group(sub, "tiers", "member tiers")
    rv = tg.add_parser("review", help="apply the periodic tier review to every member due")
    rv.add_argument("--now", type=parse_when, help="review as of this time (default now)")
    rv.set_defaults(func=cmd_tiers_review)


def add_recommender(sub: Any) -> None:
    rg = command_group(sub, "recommender", "product recommendations")
    rt = rg.add_parser("train", help="retrain on every order and save a new versioned model file")
    rt.add_argument("--out", help="folder for model files (default LOYALTY_MODEL_DIR)")
    rt.add_argument("--if-stale", action="store_true",
                    help="only when there is no model this version reads (none yet, or an older format)")
    rt.set_defaults(func=cmd_recommender_train)


def add_segments(sub: Any) -> None:
    sg = command_group(sub, "segments", "RFM segments and lifecycle stages")
    sr = sg.add_parser("recompute", help="score every member and store segment, lifecycle and tags")
    sr.add_argument("--now", type=parse_when, help="as of this time (default now)")
    sr.set_defaults(func=cmd_segments_recompute)


def add_reports(sub: Any) -> None:
    rg = command_group(sub, "reports", "the staff dashboard's pre-aggregated tables")
    rr = rg.add_parser("refresh", help="rebuild them now (the outreach scheduler does it every "
                                       "REPORTS_REFRESH_SECONDS)")
    rr.add_argument("--now", type=parse_when, help="as of this time (default now)")
    rr.set_defaults(func=cmd_reports_refresh)
