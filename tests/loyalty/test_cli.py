"""The staff command line, run in-process through ``main(argv)`` on a migrated SQLite database."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loyalty import db
from loyalty.apikeys.models import ApiClient
from loyalty.apps import cli, demo
from loyalty.audit import AuditEntry
from loyalty.catalogue.models import Product, Store
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.orders.models import Order
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry

T0 = datetime(2025, 1, 10, 12, tzinfo=timezone.utc)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def count(model: type) -> int:
    return db.run(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one(), readonly=True)


def add_shop(s) -> None:  # type: ignore[no-untyped-def]
    s.add(Store(code="SH001", name_zh="上海静安店", name_en="Shanghai Jing'an", city="上海"))
    s.add_all([
        Product(sku="P1", name_zh="鲜牛奶", name_en="fresh milk", category="dairy", price_fen=1000, stock=9),
        Product(sku="P2", name_zh="酸奶", name_en="yoghurt", category="dairy", price_fen=1500, stock=9),
    ])


def join(phone: str = "13800138000", *, birthday: date | None = None, at: datetime = T0) -> int:
    return db.run(membership.signup, phone=phone, consent=True, birthday=birthday, now=at).card.id


def buy(member_id: int, yuan: str, at: datetime, ext: str) -> None:
    db.run(orders.record_order, "pos", {"external_id": ext, "placed_at": at.isoformat(), "amount": yuan,
                                        "member_id": member_id}, now=at)


def balance(member_id: int) -> int:
    return db.run(lambda s: s.get(Member, member_id).points_balance, readonly=True)


# --- db, global options ----------------------------------------------------------------------


def test_db_upgrade_and_current_on_a_new_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, out, _ = run(capsys, "--database-url", url, "db", "current")
    assert code == 0 and "empty" in out
    code, out, _ = run(capsys, "--database-url", url, "db", "upgrade")
    assert code == 0 and "upgraded (empty) -> " in out
    code, out, _ = run(capsys, "--database-url", url, "db", "current")
    assert code == 0 and "(head)" in out
    code, out, _ = run(capsys, "--database-url", url, "db", "upgrade")
    assert code == 0 and "already at" in out


def test_a_bad_database_url_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--database-url", "not a url", "db", "current")
    assert code == 2 and "--database-url" in err


def test_commands_ask_for_a_migrated_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    for argv in (["seed", "--members", "3"], ["points", "expire"], ["orders", "import", "x.csv", "--source", "pos"],
                 ["campaign", "list"], ["points", "adjust", "1", "5", "--reason", "r", "--actor", "a"]):
        code, _, err = run(capsys, "--database-url", url, *argv)
        assert code == 1 and "db upgrade" in err, argv


def test_unknown_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "nonsense")[0] == 2
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "seed" in out and "campaign" in out


def test_python_dash_m_runs_the_cli() -> None:
    res = subprocess.run([sys.executable, "-m", "loyalty", "points", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert res.returncode == 0 and "adjust" in res.stdout and "expire" in res.stdout


# --- seed --------------------------------------------------------------------------------------


def test_seed_fills_an_empty_database_once(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("seed", "--members", "12", "--days", "60", "--until", "2026-03-01", "--seed", "3")
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "apikey create" in out and count(ApiClient) == 0  # keys are never made by seed
    assert count(Store) == 5 and count(Member) == 12 and count(Order) > 12
    before = db.run(demo.digest, readonly=True)

    code, _, err = run(capsys, *argv)
    assert code == 1 and "database_not_empty" in err
    code, out, _ = run(capsys, *argv, "--if-empty")
    assert code == 0 and "skipped" in out
    assert db.run(demo.digest, readonly=True) == before


@pytest.mark.parametrize("argv, named", [
    (["--members", "0"], "--members"),
    (["--members", "many"], "--members"),
    (["--days", "5"], "--days"),
    (["--until", "2026-02-30"], "--until"),
    (["--seed", "x"], "--seed"),
])
def test_seed_rejects_bad_input_and_writes_nothing(sqlite_engine, capsys, argv, named) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "seed", *argv)
    assert code == 2 and named in err
    assert db.run(demo.is_empty, readonly=True)


# --- campaign ----------------------------------------------------------------------------------


def test_campaign_create_converts_yuan_and_dates(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "campaign", "create", "--code", "c100-20", "--kind", "threshold",
                       "--name-zh", "满100减20", "--name-en", "20 off 100", "--threshold", "100",
                       "--discount", "19.5", "--stock", "50", "--limit", "2", "--claim-start", "2030-01-01",
                       "--claim-end", "2030-01-31", "--valid-until", "2030-02-10", "--points-cost", "300",
                       "--min-tier", "silver", "--segment", "champions", "--actor", "alice")
    assert code == 0 and "created campaign C100-20" in out
    c = db.run(coupons.campaign_by_code, "C100-20", readonly=True)
    assert (c.threshold_fen, c.discount_fen, c.total_stock, c.per_member_limit) == (10000, 1950, 50, 2)
    assert (c.points_cost, c.min_tier, c.target_segment, c.audience) == (300, "silver", "champions", "public")
    # Dates are whole local days: the claim window ends at the midnight after its last day.
    assert c.claim_start == datetime(2029, 12, 31, 16, tzinfo=timezone.utc)
    assert c.claim_end == datetime(2030, 1, 31, 16, tzinfo=timezone.utc)
    assert c.valid_until == datetime(2030, 2, 10, 16, tzinfo=timezone.utc)
    assert db.run(lambda s: s.execute(select(AuditEntry.actor).where(AuditEntry.action == "campaign_create"))
                  .scalar_one(), readonly=True) == "alice"


def test_campaign_list_shows_every_kind(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    db.run(add_shop)
    assert run(capsys, "campaign", "list")[1].startswith("no campaigns")
    assert run(capsys, "campaign", "create", "--code", "D12", "--kind", "percent", "--name-zh", "88折",
               "--name-en", "12% off", "--percent", "12", "--valid-days", "7")[0] == 0
    assert run(capsys, "campaign", "create", "--code", "GIFT", "--kind", "gift", "--name-zh", "送酸奶",
               "--name-en", "free yoghurt", "--gift-sku", "P2", "--valid-days", "7", "--audience", "goodwill",
               "--stock", "3")[0] == 0
    code, out, _ = run(capsys, "campaign", "list")
    assert code == 0
    assert "D12" in out and "8.8折 (12% off)" in out and "GIFT" in out and "兑换 P2" in out and "3/3" in out


@pytest.mark.parametrize("extra, code, named", [
    (["--kind", "percent", "--valid-days", "7"], 2, "--kind percent needs --percent"),
    (["--kind", "threshold", "--discount", "5", "--percent", "10", "--valid-days", "7"], 2, "--percent applies"),
    (["--kind", "threshold", "--discount", "abc", "--valid-days", "7"], 2, "--discount"),
    (["--kind", "threshold", "--threshold", "20", "--discount", "30", "--valid-days", "7"], 2, "invalid_campaign"),
    (["--kind", "gift", "--gift-sku", "NOPE", "--valid-days", "7"], 2, "unknown_sku"),
    (["--kind", "threshold", "--discount", "5"], 2, "--valid-days"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--valid-until", "2030-01-01"], 2,
     "not allowed with"),
    (["--kind", "threshold", "--discount", "5", "--valid-until", "2020-01-01"], 2, "in the past"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--claim-start", "2030-02-01",
      "--claim-end", "2030-01-01"], 2, "--claim-end must be after"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--claim-start", "soon"], 2, "--claim-start"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--min-tier", "diamond"], 2, "--min-tier"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--audience", "vip"], 2, "--audience"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--stock", "-1"], 2, "--stock"),
    (["--kind", "threshold", "--discount", "5", "--valid-days", "7", "--code", "TAKEN"], 1, "campaign_exists"),
])
def test_campaign_create_rejects_bad_input(sqlite_engine, capsys, extra, code, named) -> None:  # type: ignore[no-untyped-def]
    db.run(coupons.create_campaign, code="TAKEN", kind="threshold", name_zh="x", name_en="x", discount_fen=100,
           valid_days=1)
    argv = ["campaign", "create", "--name-zh", "测试", "--name-en", "test"]
    argv += extra if "--code" in extra else ["--code", "NEW", *extra]
    got, out, err = run(capsys, *argv)
    assert got == code and named in err, err
    assert count(CouponCampaign) == 1 and out == ""


# --- points ------------------------------------------------------------------------------------


def test_points_adjust_credits_debits_and_audits(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    mid = join()
    code, out, _ = run(capsys, "points", "adjust", str(mid), "80", "--reason", "till was offline", "--actor", "li")
    assert code == 0 and "+80 points, balance 80" in out
    code, out, _ = run(capsys, "points", "adjust", str(mid), "-30", "--reason", "double credit", "--actor", "li",
                       "--key", "case-7")
    assert code == 0 and balance(mid) == 50
    assert run(capsys, "points", "adjust", str(mid), "-30", "--reason", "double credit", "--actor", "li",
               "--key", "case-7")[0] == 0
    assert balance(mid) == 50  # the same key never adjusts twice
    audits = db.run(lambda s: s.execute(select(AuditEntry.actor).where(AuditEntry.action == "points_adjust"))
                    .scalars().all(), readonly=True)
    assert audits == ["li", "li"]


@pytest.mark.parametrize("argv, code, named", [
    (["999", "10"], 2, "member_not_found"),
    (["{mid}", "-500"], 1, "insufficient_points"),
    (["{mid}", "0"], 2, "invalid_points"),
    (["{mid}", "ten"], 2, "delta"),
    (["{mid}", "10", "--reason", "  "], 2, "--reason"),
])
def test_points_adjust_rejects_bad_input(sqlite_engine, capsys, argv, code, named) -> None:  # type: ignore[no-untyped-def]
    mid = join()
    db.run(points.adjust, mid, 40, reason="start", actor="test")
    args = [a.format(mid=mid) for a in argv]
    if "--reason" not in args:
        args += ["--reason", "fix"]
    got, _, err = run(capsys, "points", "adjust", *args, "--actor", "li")
    assert got == code and named in err
    assert balance(mid) == 40 and count(LedgerEntry) == 1


def test_points_expire_is_idempotent(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    mid = join()
    buy(mid, "120.00", T0, "E1")
    code, out, _ = run(capsys, "points", "expire", "--now", "2025-06-01")
    assert code == 0 and "expired 0 points" in out and balance(mid) == 120
    code, out, _ = run(capsys, "points", "expire", "--now", "2026-02-01T09:00")
    assert code == 0 and "expired 120 points of 1 members" in out
    assert balance(mid) == 0 and db.run(points.lots_total, mid, readonly=True) == 0
    code, out, _ = run(capsys, "points", "expire", "--now", "2026-02-01T09:00")
    assert code == 0 and "expired 0 points of 0 members" in out
    assert run(capsys, "points", "expire", "--now", "yesterday")[0] == 2


def test_journey_freeze_writes_closed_windows_once(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.loyalty.test_reports_outreach import _welcome_fixture

    _welcome_fixture()
    code, out, _ = run(capsys, "journey", "freeze", "--now", "2026-04-01")
    assert code == 0 and "5 closed windows written" in out  # welcome: m1, m2, m4 treatment; m3, m6 control
    code, out, _ = run(capsys, "journey", "freeze", "--now", "2026-04-01T09:00")
    assert code == 0 and "0 closed windows written, 0 recomputed" in out


# --- tiers, gifts ------------------------------------------------------------------------------


def test_tiers_review_moves_members_down_once(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    joined = datetime(2024, 6, 1, 4, tzinfo=timezone.utc)
    mid = join(at=joined)
    buy(mid, "2500.00", datetime(2024, 7, 1, 4, tzinfo=timezone.utc), "T1")
    assert members_tier(mid) == "silver"
    code, out, _ = run(capsys, "tiers", "review", "--now", "2026-01-05")
    # 2025-01-01 keeps silver (2,500 spent in the window); 2026-01-01 finds nothing spent since.
    assert code == 0 and "reviewed 1 members" in out and "1 moved down" in out
    assert members_tier(mid) == "normal"
    code, out, _ = run(capsys, "tiers", "review", "--now", "2026-01-05")
    assert code == 0 and "reviewed 0 members" in out
    code, _, err = run(capsys, "tiers", "review", "--now", "2026-13-01")
    assert code == 2 and "--now" in err


def members_tier(mid: int) -> str:
    return db.run(membership.card, mid, readonly=True).tier


def test_gifts_birthday_gives_once_per_year(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    db.run(coupons.create_campaign, code="BIRTHDAY-SILVER", kind="threshold", name_zh="生日礼", name_en="Birthday",
           threshold_fen=0, discount_fen=2000, valid_days=30, audience="birthday", per_member_limit=0)
    now = datetime.now(timezone.utc)
    silver = join("13800138001", birthday=date(1992, 2, 29), at=now)
    buy(silver, "2500.00", now, "G1")
    normal = join("13800138002", birthday=date(1990, 2, 28), at=now)
    code, out, _ = run(capsys, "gifts", "birthday", "--date", "2027-02-28")
    # 29 February is celebrated on the 28th in common years; the normal tier has no birthday gift.
    assert code == 0 and "2 members celebrate on 2027-02-28: 1 hold" in out
    assert run(capsys, "gifts", "birthday", "--date", "2027-02-28")[0] == 0
    held = db.run(lambda s: s.execute(select(Coupon.member_id)).scalars().all(), readonly=True)
    assert held == [silver] and normal not in held
    code, _, err = run(capsys, "gifts", "birthday", "--date", "2027-02-30")
    assert code == 2 and "--date" in err


# --- orders import -----------------------------------------------------------------------------

HEADER = "external_id,placed_at,member_id,phone,store_code,channel,sku,qty,unit_price,amount\n"


def write_csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_orders_import_groups_lines_rejects_bad_rows_and_replays(
    sqlite_engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db.run(add_shop)
    mid = join("13900139000")
    path = write_csv(tmp_path, (
        f"A1,2026-03-01T10:00:00+08:00,{mid},,SH001,pos,P1,2,10.00,35.00\n"
        f"A1,2026-03-01T10:00:00+08:00,{mid},,SH001,pos,P2,1,15.00,35.00\n"
        "A2,2026-03-02T11:00:00+08:00,,139 0013 9000,SH001,pos,P1,1,10.00,10.00\n"
        f"B1,2026-03-02T11:00:00+08:00,{mid},,SH001,pos,P1,x,10.00,10.00\n"
        f"B2,2026-03-02T12:00:00+08:00,{mid},,XX999,pos,P1,1,10.00,10.00\n"
        f"B3,2026-03-02T12:00:00+08:00,{mid},,SH001,pos,P1,1,10.00,10.00\n"
        f"B3,2026-03-02T12:00:00+08:00,{mid},,SH001,pos,P2,1,15.00,25.00\n"
        f"A3,2026-03-03T09:00:00Z,{mid},,,online,P2,1,15.00,15.00\n"
        f",2026-03-03T09:00:00Z,{mid},,,online,P2,1,15.00,15.00\n"
    ))
    code, out, err = run(capsys, "orders", "import", str(path), "--source", "pos")
    assert code == 1
    assert "3 orders created, 0 replayed (already imported), 4 rejected; 60 points earned" in out
    assert "B1: line 5: qty 'x'" in err
    assert "B2 (line 6): unknown_store" in err
    assert "B3: line 8: amount '25.00' differs from line 7" in err
    assert "line 10: external_id is empty" in err
    assert balance(mid) == 60
    lines = db.run(lambda s: len(s.execute(select(Order).where(Order.external_id == "A1")).scalar_one().lines),
                   readonly=True)
    assert lines == 2

    code, out, _ = run(capsys, "orders", "import", str(path), "--source", "pos")
    assert code == 1 and "0 orders created, 3 replayed" in out
    assert balance(mid) == 60 and count(Order) == 3


def test_orders_import_reports_a_changed_order(sqlite_engine, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db.run(add_shop)
    mid = join()
    row = f"A1,2026-03-01T10:00:00+08:00,{mid},,SH001,pos,P1,1,10.00,{{amount}}\n"
    assert run(capsys, "orders", "import", str(write_csv(tmp_path, row.format(amount="10.00"))),
               "--source", "pos")[0] == 0
    code, out, err = run(capsys, "orders", "import", str(write_csv(tmp_path, row.format(amount="12.00"))),
                         "--source", "pos")
    assert code == 1 and "A1 (line 2): idempotency_conflict" in err and "0 orders created" in out
    assert balance(mid) == 10


def test_orders_import_messages_mask_phones_and_refuse_odd_numbers(sqlite_engine, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    db.run(add_shop)
    path = write_csv(tmp_path, (
        "P1,2026-03-01T10:00:00+08:00,,13800138000,SH001,pos,P1,1,10.00,20.00\n"
        "P1,2026-03-01T10:00:00+08:00,,13900139000,SH001,pos,P2,1,10.00,20.00\n"
        "P2,2026-03-01T10:00:00+08:00,²,,SH001,pos,P1,1,10.00,10.00\n"
        "P3,2026-03-01T10:00:00+08:00,,,SH001,pos,P1,１,10.00,10.00\n"
    ))
    code, out, err = run(capsys, "orders", "import", str(path), "--source", "pos")
    assert code == 1 and "0 orders created" in out and "3 rejected" in out
    assert "phone 139****9000 differs from line 2 (138****8000)" in err
    assert "13800138000" not in err and "13900139000" not in err
    assert "P2: line 4: member_id '²'" in err and "P3: line 5: qty '１'" in err
    assert count(Order) == 0


ROW = "A1,2026-03-01T10:00:00+08:00,,,SH001,pos,P1,1,10.00,10.00\n"


@pytest.mark.parametrize("content, named", [
    ("external_id,placed_at,member_id,store_code,channel,sku,unit_price,amount\n" + ROW, "missing columns: qty"),
    ("external_id,placed_at,store_code,channel,sku,qty,unit_price,amount\n" + ROW, "member_id or phone"),
    (HEADER.strip() + ",discount\n" + ROW, "unknown columns: discount"),
    ("", "is empty"),
])
def test_orders_import_rejects_a_bad_file_whole(sqlite_engine, tmp_path, capsys, content, named) -> None:  # type: ignore[no-untyped-def]
    db.run(add_shop)
    path = write_csv(tmp_path, content, header="")
    code, _, err = run(capsys, "orders", "import", str(path), "--source", "pos")
    assert code == 2 and named in err
    assert count(Order) == 0


def test_orders_import_needs_a_readable_file_and_a_source(sqlite_engine, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "orders", "import", str(tmp_path / "missing.csv"), "--source", "pos")
    assert code == 2 and "cannot read" in err
    (tmp_path / "latin1.csv").write_bytes(HEADER.encode() + "A1,é\n".encode("latin-1"))
    code, _, err = run(capsys, "orders", "import", str(tmp_path / "latin1.csv"), "--source", "pos")
    assert code == 2 and "UTF-8" in err
    code, _, err = run(capsys, "orders", "import", str(tmp_path / "missing.csv"))
    assert code == 2 and "--source" in err
    code, _, err = run(capsys, "orders", "import", str(tmp_path / "missing.csv"), "--source", "POS!")
    assert code == 2 and "--source" in err


# --- apikey, serve -----------------------------------------------------------------------------


def test_apikey_create_list_revoke(sqlite_engine, capsys: pytest.CaptureFixture[str]) -> None:
    apikeys = pytest.importorskip("loyalty.apikeys.service")
    code, out, err = run(capsys, "apikey", "create", "pos")
    key = out.strip()
    assert code == 0 and "shown this once" in err and key
    assert db.run(apikeys.authenticate, key, readonly=True) == "pos"
    code, _, err = run(capsys, "apikey", "create", "pos")
    assert code == 1 and "api_client_exists" in err
    code, out, _ = run(capsys, "apikey", "list")
    assert code == 0 and "pos" in out and "active" in out and key not in out
    code, out, _ = run(capsys, "apikey", "revoke", "pos")
    assert code == 0 and "revoked" in out
    assert db.run(apikeys.authenticate, key, readonly=True) is None
    code, _, err = run(capsys, "apikey", "revoke", "shop")
    assert code == 2 and "unknown_api_client" in err
    code, _, err = run(capsys, "apikey", "create", "Bad Source")
    assert code == 2 and "source" in err
    assert count(ApiClient) == 1


def test_serve_hands_host_and_port_to_the_api(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    api = pytest.importorskip("loyalty.apps.api")
    calls = []
    monkeypatch.setattr(api, "serve", lambda host, port, *, workers=1: calls.append((host, port, workers)))
    assert run(capsys, "serve", "--port", "9123", "--workers", "2")[0] == 0
    assert calls == [("127.0.0.1", 9123, 2)]
    code, _, err = run(capsys, "serve", "--port", "70000")
    assert code == 2 and "--port" in err and len(calls) == 1


def test_recommender_train_and_segments_recompute(sqlite_engine, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from loyalty.members.models import MemberSegment

    run(capsys, "seed", "--members", "30", "--days", "120", "--until", "2026-03-01", "--seed", "5")
    code, out, _ = run(capsys, "recommender", "train", "--out", str(tmp_path / "m"))
    assert code == 0 and "trained recommender" in out
    models = sorted((tmp_path / "m").glob("recommender-*.npz"))
    assert len(models) == 1
    code, out, _ = run(capsys, "recommender", "train", "--out", str(tmp_path / "m"), "--if-stale")
    assert code == 0 and "is current: not retrained" in out
    assert sorted((tmp_path / "m").glob("recommender-*.npz")) == models
    # A model of an older format (as after an upgrade) is retrained.
    meta = models[0].with_suffix(".json")
    meta.write_text(meta.read_text(encoding="utf-8").replace('"format": ', '"format": 0, "was": '),
                    encoding="utf-8")
    code, out, _ = run(capsys, "recommender", "train", "--out", str(tmp_path / "m"), "--if-stale")
    assert code == 0 and "trained recommender" in out
    assert len(list((tmp_path / "m").glob("recommender-*.npz"))) == 2
    code, out, _ = run(capsys, "segments", "recompute", "--now", "2026-03-01T12:00:00+08:00")
    assert code == 0 and "segments of" in out
    assert count(MemberSegment) == count(Member) - db.run(
        lambda s: s.execute(select(func.count()).select_from(Member).where(Member.status != "active")).scalar_one(),
        readonly=True,
    )
