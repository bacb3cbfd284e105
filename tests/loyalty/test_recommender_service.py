"""Recommendations from a real (SQLite) loyalty database: training, serving, stock, reasons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Product, Store
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.members.models import Member
from loyalty.recommender import service, store
from tests.loyalty.corekit import T0, buy, days, many_members

PRODUCTS = [  # sku, zh, en, category, stock, active
    ("MILK", "鲜牛奶", "Fresh milk", "dairy", 50, True),
    ("YOG", "酸奶", "Yogurt", "dairy", 50, True),
    ("CHIPS", "薯片", "Potato chips", "snacks", 50, True),
    ("COLA", "可乐", "Cola", "drinks", 50, True),
    ("CREAM", "面霜", "Face cream", "skincare", 50, True),
    ("LOTION", "乳液", "Lotion", "skincare", 50, True),
    ("GIFTBOX", "礼盒", "Gift box", "gifts", 50, True),
    ("SOLDOUT", "精华", "Serum", "skincare", 0, True),
    ("OLD", "旧饼干", "Old cookies", "snacks", 50, False),
]
PRICE = {"MILK": "8.00", "YOG": "6.00", "CHIPS": "9.90", "COLA": "3.50", "CREAM": "199.00",
         "LOTION": "129.00", "GIFTBOX": "99.00", "SOLDOUT": "299.00", "OLD": "5.00"}


def order(member_id: int, skus: list[str], at: Any, store_code: str) -> None:
    lines = [{"sku": s, "qty": 1, "unit_price": PRICE[s]} for s in skus]
    total = sum(float(PRICE[s]) for s in skus)
    buy(member_id, f"{total:.2f}", at, lines=lines, store_code=store_code)


@pytest.fixture
def shop(sqlite_engine: Engine, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two stores, a small catalogue, snackers in Shanghai, skin-care fans in Beijing, a milk lover."""

    def setup(s: Any) -> dict[str, int]:
        s.add_all([Store(code="SH1", name_zh="上海店", name_en="Shanghai", city="上海"),
                   Store(code="BJ1", name_zh="北京店", name_en="Beijing", city="北京")])
        s.add_all([Product(sku=sku, name_zh=zh, name_en=en, category=cat, price_fen=100, stock=stock,
                           active=active) for sku, zh, en, cat, stock, active in PRODUCTS])
        s.flush()
        return {code: sid for code, sid in s.execute(Store.__table__.select().with_only_columns(
            Store.code, Store.id)).all()}

    stores = db.run(setup)
    ids = many_members(27, now=T0 - days(200))
    snackers, fans, milk = ids[:13], ids[13:26], ids[26]
    db.run(lambda s: s.execute(update(Member).where(Member.id.in_(snackers)).values(store_id=stores["SH1"])))
    db.run(lambda s: s.execute(update(Member).where(Member.id.in_(fans + [milk])).values(store_id=stores["BJ1"])))
    for n, m in enumerate(snackers):
        for k in range(3):
            order(m, ["CHIPS", "COLA"] + (["GIFTBOX"] if (n + k) % 4 == 0 else []), T0 - days(90 - 20 * k - n), "SH1")
    for n, m in enumerate(fans):
        for k in range(3):
            order(m, ["CREAM", "LOTION"] + (["YOG"] if (n + k) % 3 == 0 else []), T0 - days(90 - 20 * k - n), "BJ1")
    for week in range(10):
        order(milk, ["MILK"] + (["YOG"] if week == 3 else []), T0 - days(70 - 7 * week), "BJ1")
    folder = tmp_path / "models"
    result = db.run(service.train_and_save, str(folder), progress=False)
    yield {"stores": stores, "snackers": snackers, "fans": fans, "milk": milk, "dir": str(folder),
           "result": result}
    service.reload()


def reco(member_id: int, shop: dict[str, Any], **kw: Any) -> list[service.Recommendation]:
    return db.run(service.recommend, member_id, kw.pop("k", 5), directory=shop["dir"], now=T0, **kw)


def test_training_writes_a_versioned_model(shop: dict[str, Any]) -> None:
    r = shop["result"]
    assert Path(r.path).exists() and r.version in Path(r.path).name
    assert str(store.newest(shop["dir"])) == r.path
    assert (r.members, r.products, r.orders) == (27, len(PRODUCTS), 13 * 3 + 13 * 3 + 10)


def test_weekly_milk_buyer_gets_milk_first_with_a_reason(shop: dict[str, Any]) -> None:
    got = reco(shop["milk"], shop)
    assert got[0].sku == "MILK" and got[0].reason == "repeat"
    assert got[0].reason_zh == "因为你常买「鲜牛奶」" and got[0].reason_en == "Because you often buy Fresh milk"
    assert got[0].price == "1.00" and got[0].name_en == "Fresh milk"


def test_a_serving_process_runs_its_small_matrix_products_on_one_thread(shop: dict[str, Any]) -> None:
    from threadpoolctl import threadpool_info

    reco(shop["milk"], shop)  # loads the model for serving
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)


def test_a_new_member_gets_their_store_best_sellers(shop: dict[str, Any]) -> None:
    newcomer = many_members(1, now=T0)[0]
    db.run(lambda s: s.execute(update(Member).where(Member.id == newcomer).values(store_id=shop["stores"]["BJ1"])))
    got = reco(newcomer, shop, k=2)
    assert {r.sku for r in got} == {"CREAM", "LOTION"}
    assert all(r.reason == "popular" and r.reason_zh == "本店热销" for r in got)


def test_out_of_stock_and_delisted_products_never_appear(shop: dict[str, Any]) -> None:
    service.AVAILABILITY_TTL_S = 0.0  # see stock changes at once in this test
    try:
        everyone = [*shop["snackers"], *shop["fans"], shop["milk"]]
        seen = {r.sku for m in everyone for r in reco(m, shop, k=9)}
        assert not {"SOLDOUT", "OLD"} & seen
        db.run(lambda s: s.execute(update(Product).where(Product.sku == "CREAM").values(stock=0)))
        for m in shop["fans"][:4]:
            assert "CREAM" not in {r.sku for r in reco(m, shop, k=9)}
    finally:
        service.AVAILABILITY_TTL_S = 5.0


def test_category_and_need_narrow_the_list(shop: dict[str, Any]) -> None:
    snacker = shop["snackers"][0]
    assert {r.category for r in reco(snacker, shop, category="护肤品")} == {"skincare"}
    assert {r.category for r in reco(snacker, shop, category="dairy")} == {"dairy"}
    gift = reco(shop["milk"], shop, need="想买送妈妈的礼物")
    assert gift and {r.category for r in gift} <= {"gifts", "skincare", "personal_care"}
    with pytest.raises(InvalidInput) as err:
        reco(snacker, shop, category="火箭")
    assert err.value.code == "unknown_category"
    assert reco(snacker, shop, need="随便看看")  # nothing recognised: the whole catalogue


def test_a_new_order_changes_recommendations_at_once(shop: dict[str, Any]) -> None:
    newcomer = many_members(1, now=T0 - days(1))[0]
    before = reco(newcomer, shop, k=3)
    assert all(r.reason == "popular" for r in before)
    order(newcomer, ["CHIPS"], T0 - days(1) + days(0.5), "SH1")
    after = reco(newcomer, shop, k=3)
    cola = next(r for r in after if r.sku == "COLA")
    assert cola.reason == "bought_with" and cola.anchor_sku == "CHIPS"
    assert cola.reason_zh == "和你买过的「薯片」一起买的人也买了它"
    # Asking again applies nothing twice.
    assert reco(newcomer, shop, k=3) == after


def test_serving_reloads_the_newest_file(shop: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    first = reco(shop["fans"][0], shop)
    service.reload()
    assert reco(shop["fans"][0], shop) == first  # read back from disk, same answers
    again = db.run(service.train_and_save, shop["dir"], progress=True)
    assert "ranker examples" in capsys.readouterr().err  # the CLI job shows a progress bar
    assert again.version > shop["result"].version
    assert str(store.newest(shop["dir"])) == again.path


def test_without_a_model_best_sellers_are_offered(shop: dict[str, Any], tmp_path: Path) -> None:
    got = db.run(service.recommend, shop["milk"], 3, directory=str(tmp_path / "empty"), now=T0)
    assert len(got) == 3 and all(r.reason == "popular" for r in got)
    assert not {"SOLDOUT", "OLD"} & {r.sku for r in got}


def test_unknown_members_and_bad_k_are_refused(shop: dict[str, Any]) -> None:
    with pytest.raises(NotFound):
        reco(999_999, shop)
    with pytest.raises(InvalidInput):
        reco(shop["milk"], shop, k=0)


def test_training_an_empty_shop_is_refused_clearly(sqlite_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(Refused) as err:
        db.run(service.train_and_save, str(tmp_path / "m"), progress=False)
    assert err.value.code == "nothing_to_train"
    assert store.newest(tmp_path / "m") is None


def test_a_model_saved_by_another_process_is_picked_up_without_restart(
        shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    first = reco(shop["milk"], shop)
    old = shop["result"].version
    assert service.serving_version(shop["dir"]) == old
    # Another process (the nightly training job) writes a newer version into the directory.
    newer = store.load(shop["result"].path)
    store.save(newer, shop["dir"])
    assert newer.version > old
    monkeypatch.setattr(service, "RELOAD_CHECK_S", 3600.0)
    assert service.serving_version(shop["dir"]) == old  # looked at most once per interval
    monkeypatch.setattr(service, "RELOAD_CHECK_S", 0.0)
    assert reco(shop["milk"], shop) == first
    assert service.serving_version(shop["dir"]) == newer.version
    # A damaged newest file is not swapped in: the process keeps answering from what it has.
    Path(shop["dir"], f"{store.PREFIX}99999999T000000Z-001.json").write_text("{}", encoding="utf-8")
    Path(shop["dir"], f"{store.PREFIX}99999999T000000Z-001.npz").write_bytes(b"not a model")
    assert reco(shop["milk"], shop) == first
    assert service.serving_version(shop["dir"]) == newer.version
