"""The evaluation harness on a tiny dataset whose metric values are worked out by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bench import eval_recommender
from bench.reco_baselines import BuyAgain, Popularity
from bench.reco_data import (
    CleanRules,
    ColumnMap,
    Split,
    Transactions,
    leave_last_basket_out,
    load_numeric,
    load_transactions,
    numeric_times,
    read_times,
    time_split,
)
from bench.reco_harness import evaluate, format_table
from bench.reco_metrics import ratio_interval, user_metrics

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
# Items AA..DD, written A..D below.
# u1: {A,B} day 1, {A} day 2, {A,C} day 40 (last); u2: {B} day 3, {B,D} day 41; u3: {A,B,C} day 5.
# Plus rows a retailer drops: no customer, a cancellation, postage, zero price, negative quantity.
ROWS = """\
1,AA,a,1,2024-01-01 10:00:00,1.0,1.0,UK
1,BB,b,2,2024-01-01 10:00:00,1.0,1.0,UK
1,BB,b,1,2024-01-01 10:00:00,1.0,1.0,UK
2,AA,a,1,2024-01-02 10:00:00,1.0,1.0,UK
3,AA,a,1,2024-02-09 10:00:00,1.0,1.0,UK
3,CC,c,1,2024-02-09 10:00:00,1.0,1.0,UK
4,BB,b,1,2024-01-03 10:00:00,1.0,2.0,UK
5,BB,b,1,2024-02-10 10:00:00,1.0,2.0,UK
5,DD,d,1,2024-02-10 10:00:00,1.0,2.0,UK
6,AA,a,1,2024-01-05 10:00:00,1.0,3.0,UK
6,BB,b,1,2024-01-05 10:00:00,1.0,3.0,UK
6,CC,c,1,2024-01-05 10:00:00,1.0,3.0,UK
7,AA,a,1,2024-01-06 10:00:00,1.0,,UK
C8,AA,a,-1,2024-01-07 10:00:00,1.0,1.0,UK
9,POST,postage,1,2024-01-08 10:00:00,5.0,2.0,UK
10,AA,a,1,2024-01-09 10:00:00,0.0,2.0,UK
11,BB,b,-2,2024-01-09 10:00:00,1.0,2.0,UK
"""
D2, D3, D4, D5 = (1 / math.log2(n) for n in (2, 3, 4, 5))


@pytest.fixture
def csv_path(tmp_path: Path) -> str:
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + ROWS, encoding="utf-8")
    return str(path)


def by_label(data, user: str, items: np.ndarray) -> set[str]:
    return {str(data.item_labels[i]) for i in items}


def test_metrics_of_one_list() -> None:
    hit, ndcg, r10, r20 = user_metrics(np.array([5, 1, 7, 9]), np.array([1, 42]))
    assert (hit, r10, r20) == (1.0, 0.5, 0.5)
    assert ndcg == pytest.approx(D3 / (D2 + D3))
    assert user_metrics(np.array([3, 4]), np.array([1])) == (0.0, 0.0, 0.0, 0.0)
    # Recall@20 sees hits past rank 10.
    ranked = np.arange(30)
    assert user_metrics(ranked, np.array([15]))[2:] == (0.0, 1.0)
    with pytest.raises(ValueError):
        user_metrics(ranked, np.array([], dtype=np.int64))


def test_ratio_interval_resamples_users_in_pairs() -> None:
    # Every user scores 1.1 times the other method: every draw gives exactly 1.1.
    other = np.random.default_rng(3).random((50, 2)) + 0.1
    assert ratio_interval(1.1 * other, other) == pytest.approx(np.full((2, 2), 1.1))
    # Two users, ours (1, 0) against (0.5, 0.5): a draw of user 0 twice gives 2, of user 1 twice 0,
    # one of each 1; each pure draw has probability 1/4, so the 95% interval spans 0 to 2.
    low, high = ratio_interval(np.array([1.0, 0.0]), np.array([0.5, 0.5]))[:, 0]
    assert (low, high) == (0.0, 2.0)
    # More users of the same two kinds: the interval narrows around the ratio (1.0).
    low, high = ratio_interval(np.tile([1.0, 0.0], 500), np.full(1000, 0.5))[:, 0]
    assert 0.9 < low < 1.0 < high < 1.1
    with pytest.raises(ValueError):
        ratio_interval(np.ones(3), np.ones(4))


def test_cleaning_drops_what_a_retailer_drops(csv_path: str) -> None:
    data, report = load_transactions(csv_path)
    assert report.rows == 17 and report.kept == 12
    assert report.dropped == {"unknown customer": 1, "cancellation": 1, "fee/postage code": 1,
                              "price <= 0": 1, "quantity <= 0": 1}
    assert list(data.user_labels) == ["1", "2", "3"]
    assert list(data.item_labels) == ["AA", "BB", "CC", "DD"]
    assert data.user.size == 11  # the two B lines of basket 1 merged
    assert data.qty[(data.basket == 0) & (data.item == 1)].tolist() == [3.0]


def test_splits_hold_out_the_right_items(csv_path: str) -> None:
    data, _ = load_transactions(csv_path)
    loo = leave_last_basket_out(data)
    assert [data.user_labels[u] for u in loo.test_users] == ["1", "2"]  # user 3 has one basket
    assert [by_label(data, "", t) for t in loo.test_items] == [{"AA", "CC"}, {"BB", "DD"}]
    assert loo.train.user.size == 7
    ts = time_split(data, days=30)
    assert [by_label(data, "", t) for t in ts.test_items] == [{"AA", "CC"}, {"BB", "DD"}]
    assert np.all(ts.now == data.time.max() - 30 * 86_400)
    short = time_split(data, days=1)  # only user 2's last basket is held out
    assert [data.user_labels[u] for u in short.test_users] == ["2"]


def test_known_metric_values_for_popularity_and_buy_again(csv_path: str) -> None:
    data, _ = load_transactions(csv_path)
    rows = evaluate([Popularity(), BuyAgain()], [leave_last_basket_out(data)])
    got = {(r.method, r.mode): r.scores for r in rows}
    ideal2 = D2 + D3
    # Popularity ranks B (3 buyers), A (2), C (1), D (0).
    # u1 wants {A, C} at ranks 2, 3; u2 wants {B, D} at ranks 1, 4.
    pop = got[("popularity", "all")]
    assert pop.users == 2 and pop.hit10 == 1.0 and pop.recall10 == 1.0
    assert pop.ndcg10 == pytest.approx(((D3 + D4) / ideal2 + (D2 + D5) / ideal2) / 2)
    # "new": u1 (bought A, B) wants C, sees [C, D]; u2 (bought B) wants D, sees [A, C, D].
    assert got[("popularity", "new")].ndcg10 == pytest.approx((1.0 + D4) / 2)
    # Buy-again: u1 bought A twice, B once -> [A, B, C, D]; u2 -> [B, A, C, D].
    again = got[("buy-again", "all")]
    assert again.ndcg10 == pytest.approx(((D2 + D4) / ideal2 + (D2 + D5) / ideal2) / 2)
    # u1's hits are A (bought before) and C (new); u2's are B (bought before) and D (new).
    row = next(r for r in rows if (r.method, r.mode) == ("buy-again", "all"))
    assert (row.repeat10, row.explore10) == (1.0, 1.0)
    assert next(r for r in rows if (r.method, r.mode) == ("buy-again", "new")).repeat10 == 0.0
    table = format_table(rows, ours="buy-again")
    assert "rep@10" in table and "popularity" in table and "buy-again / best other" in table and "mode: new" in table
    # Against popularity (ahead in NDCG@10 on the "all" rows), with the two users' interval.
    assert "buy-again / best other, 95% interval: HR@10 x1.000 [1.000-1.000] (vs popularity)" in table
    assert [r.users.tolist() for r in rows if r.mode == "all"] == [[0, 1], [0, 1]]


def _twelve_members(path: Path, header: str, line: Callable[[int, str, int, int], str]) -> str:
    """Twelve members, three orders each (on day 1 + member + 9 x order), two steady items per
    member (by parity) and one item per order number; ``line(member, sku, order, day)`` writes a row."""
    lines = [header]
    for user in range(12):
        for n in range(3):
            skus = ["x1", "x2"] if user % 2 else ["y1", "y2"]
            lines += [line(user, sku, n, 1 + user + 9 * n) for sku in skus + [f"z{n}"]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_cli_takes_any_csv_with_a_column_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _twelve_members(tmp_path / "orders.csv", "member,sku,order,paid_at",
                           lambda user, sku, n, day: f"m{user},{sku},o{user}-{n},2024-03-{day:02d}T09:00:00")
    code = eval_recommender.main([
        path, "--user-col", "member", "--item-col", "sku", "--basket-col", "order",
        "--time-col", "paid_at", "--qty-col", "none", "--price-col", "none",
        "--cancel-prefix", "none", "--exclude-items", "none", "--days", "5",
        "--methods", "popularity,buy-again,ours",
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert "users 12, items 7" in out
    assert out.count("loyalty (ours)") >= 4 and "time split (last 5 days)" in out


def test_cli_names_a_missing_column(csv_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_recommender.main([csv_path, "--user-col", "Customer"]) == 2
    assert "column 'Customer' for user not in the CSV header" in capsys.readouterr().err


def test_unreadable_times_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("u,i,b,t\n1,a,x,2024-01-01\n1,b,y,yesterday\n", encoding="utf-8")
    with pytest.raises(ValueError, match="yesterday"):
        load_transactions(str(path), ColumnMap("u", "i", "b", "t", None, None), CleanRules(None, None))


def test_validation_never_reads_the_test_part(csv_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = load_transactions(csv_path)
    test = leave_last_basket_out(data)
    val = leave_last_basket_out(test.train)
    # u1's last basket {A, C} is the test; validation holds out the one before it, {A}.
    assert [by_label(data, "", t) for t in val.test_items] == [{"AA"}]
    assert val.train.user.size < test.train.user.size
    assert eval_recommender.main([csv_path, "--validation", "--split", "loo",
                                  "--methods", "popularity,ours", "--ours", "shrink=0"]) == 0
    assert "VALIDATION" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown setting"):
        eval_recommender.main([csv_path, "--methods", "ours", "--ours", "nonsense=1"])


JAN_1_2024 = 1_704_067_200


@pytest.mark.parametrize(("raw", "seconds", "how"), [
    (["1704067200", "1704153600"], [JAN_1_2024, JAN_1_2024 + 86_400], "Unix seconds"),
    (["1704067200000", "1704067201500"], [JAN_1_2024, JAN_1_2024 + 2], "Unix milliseconds"),
    (["20240101", "20240229"], [JAN_1_2024, JAN_1_2024 + 59 * 86_400], "YYYYMMDD"),
    (["1", "711"], [86_400, 711 * 86_400], "day numbers (1-711)"),
    (["2024-01-01 10:00:00", "2024-01-01T10:00"], [JAN_1_2024 + 36_000] * 2, "ISO 8601"),
    (["12/1/2010 8:26", "12/13/2010 8:26"], [1_291_191_960, 1_292_228_760], "%m/%d/%Y %H:%M"),
    (["11/1/2000", "12/25/2000"], [973_036_800, 977_702_400], "%m/%d/%Y"),
    (["13/1/2024", "1/2/2024"], [JAN_1_2024 + 12 * 86_400, JAN_1_2024 + 31 * 86_400], "%d/%m/%Y"),
    (["2024/01/13", "2024/2/1"], [JAN_1_2024 + 12 * 86_400, JAN_1_2024 + 31 * 86_400], "%Y/%m/%d"),
    (["13.01.2024 10:00"], [JAN_1_2024 + 12 * 86_400 + 36_000], "%d.%m.%Y %H:%M"),
])
def test_times_are_read_by_their_form(raw: list[str], seconds: list[int], how: str) -> None:
    got, said = read_times(raw)
    assert got.tolist() == seconds and how in said


def test_a_date_both_orders_can_read_says_so_and_the_layout_can_be_named() -> None:
    got, said = read_times(["1/2/2024", "3/4/2024"])
    assert got[0] == JAN_1_2024 + 86_400 and "%d/%m/%Y" in said  # month first, with a warning
    got, said = read_times(["1/2/2024", "3/4/2024"], "%d/%m/%Y")
    assert got[0] == JAN_1_2024 + 31 * 86_400 and said == "dates and times as %d/%m/%Y"
    assert numeric_times(np.array([20_240_101]), "day")[0].tolist() == [20_240_101 * 86_400]


@pytest.mark.parametrize(("raw", "layout", "named"), [
    (["20240101", "20240231"], "yyyymmdd", "20240231"),
    (["1/2/2024", "1/2/24x"], "%d/%m/%Y", "'1/2/24x'"),
    (["1", "two"], "day", "'two'"),
    (["2024-01-01", "soon"], "auto", "'soon'"),
])
def test_a_time_that_does_not_read_is_named(raw: list[str], layout: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        read_times(raw, layout)


def test_day_numbers_split_like_the_dates_they_stand_for(tmp_path: Path) -> None:
    """Dunnhumby numbers its days: read as seconds, 711 days would be 12 minutes and the
    30-day split would hold out everything. Read as days they split as the dates would."""
    start = np.datetime64("2024-01-01")
    forms = {"iso": lambda d: str(start + d), "day": lambda d: str(d), "mdy": lambda d: (
        lambda y, m, dd: f"{int(m)}/{int(dd)}/{y}")(*str(start + d).split("-"))}
    splits = {}
    for name, write in forms.items():
        lines = ["user,item,basket,day"]
        for user in range(6):
            for n, day in enumerate(range(user, 60, 7)):
                lines += [f"u{user},i{(user + n + k) % 5},b{user}-{n},{write(day)}" for k in range(2)]
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        data, report = load_transactions(str(path), ColumnMap("user", "item", "basket", "day", None, None),
                                         CleanRules(None, None))
        split = time_split(data, 10)
        held = [sorted(data.item_labels[h].tolist()) for h in split.test_items]
        splits[name] = (report.times, split.test_users.tolist(), held, split.train.user.size, data.user.size)
    assert "day numbers (0-59)" in splits["day"][0] and "%m/%d/%Y" in splits["mdy"][0]
    assert splits["day"][1:] == splits["iso"][1:] == splits["mdy"][1:]
    assert len(splits["day"][1]) == 6 and 0 < splits["day"][3] < splits["day"][4]  # the last 10 days held out


def test_the_integer_reader_takes_day_numbers_and_refuses_a_text_layout(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("member,sku,order_id,paid_at,qty\n1,7,1,3,1\n1,8,2,40,1\n2,7,3,41,2\n", encoding="utf-8")
    columns = ColumnMap("member", "sku", "order_id", "paid_at", "qty", None)
    data, report = load_numeric(str(path), columns, CleanRules(None, None))
    assert sorted(data.time.tolist()) == [3 * 86_400, 40 * 86_400, 41 * 86_400]
    assert report.times.startswith("day numbers")
    with pytest.raises(ValueError, match="numeric times only"):
        load_numeric(str(path), ColumnMap("member", "sku", "order_id", "paid_at", "qty", None,
                                          time_format="%d/%m/%Y"), CleanRules(None, None))


def test_a_semicolon_export_without_receipt_ids_reads_like_the_comma_one(tmp_path: Path) -> None:
    """Ta-Feng style: no basket column (a customer's lines of one day are one basket), fields
    separated by semicolons, decimal commas in the quantities."""
    comma = ["user,item,receipt,day,qty"]
    semicolon = ["\ufeffuser;item;day;qty"]
    for user in range(5):
        for n, day in enumerate(range(user + 1, 28, 6)):
            for k in range(2):
                item, qty = f"i{(user + n + k) % 4}", 1 + k / 2
                comma.append(f"u{user},{item},r{user}-{n},2001-01-{day:02d},{qty}")
                semicolon.append(f"u{user};{item};1/{day}/2001;{str(qty).replace('.', ',')}")
    semicolon.append("u9;i1;1/9/2001;-1,5")  # a return: dropped like the comma file's would be
    (tmp_path / "a.csv").write_text("\n".join(comma) + "\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("\r\n".join(semicolon) + "\r\n", encoding="utf-8")
    a, _ = load_transactions(str(tmp_path / "a.csv"), ColumnMap("user", "item", "receipt", "day", "qty", None),
                             CleanRules(None, None))
    b, report = load_transactions(str(tmp_path / "b.csv"), ColumnMap("user", "item", None, "day", "qty", None),
                                  CleanRules("C", None))
    assert report.dropped == {"quantity <= 0": 1} and "%m/%d/%Y" in report.times
    for field in ("user", "item", "basket", "time", "qty"):
        assert getattr(a, field).tolist() == getattr(b, field).tolist(), field
    assert int(b.basket.max()) + 1 == 23 and sorted(set(b.qty.tolist())) == [1.0, 1.5]


def test_the_integer_reader_takes_tabs_and_no_basket_column(tmp_path: Path) -> None:
    path = tmp_path / "n.tsv"
    path.write_text("member\tsku\tday\n1\t7\t3\n1\t8\t3\n1\t7\t40\n2\t7\t41\n", encoding="utf-8")
    data, _ = load_numeric(str(path), ColumnMap("member", "sku", None, "day", None, None), CleanRules(None, None))
    assert data.basket.tolist() == [0, 0, 1, 2]  # member 1's two lines of day 3 are one basket
    assert data.item_labels[data.item].tolist() == ["7", "8", "7", "7"]


def test_cli_reads_a_file_without_receipt_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _twelve_members(tmp_path / "tafeng.csv", "CUSTOMER_ID;PRODUCT_ID;TRANSACTION_DT;AMOUNT",
                           lambda user, sku, n, day: f"c{user};{sku};3/{day}/2001;1")
    code = eval_recommender.main([
        path, "--user-col", "CUSTOMER_ID", "--item-col", "PRODUCT_ID", "--basket-col", "none",
        "--time-col", "TRANSACTION_DT", "--qty-col", "AMOUNT", "--price-col", "none",
        "--cancel-prefix", "none", "--exclude-items", "none", "--days", "5", "--methods", "buy-again",
    ])
    out = capsys.readouterr().out
    assert code == 0 and "users 12, items 7" in out and "baskets 36" in out


def test_one_split_and_one_fit_in_memory_at_a_time(csv_path: str) -> None:
    """Each split is cut when the harness reaches it, and a method's fit is dropped once that
    split is scored: a chain's model is not held while the next one is learned."""
    data, _ = load_transactions(csv_path)
    events: list[str] = []

    class Watched(BuyAgain):
        def fit(self, train: Transactions) -> None:
            assert not hasattr(self, "_counts")  # the previous split's fit is gone
            events.append("fit")
            super().fit(train)

        def release(self) -> None:
            events.append("release")
            super().release()

    def splits():
        for cut in (leave_last_basket_out, lambda d: time_split(d, days=30)):
            events.append("split")
            yield cut(data)

    method = Watched()
    rows = evaluate([method], splits())
    assert events == ["split", "fit", "release", "split", "fit", "release"]
    assert not hasattr(method, "_counts") and not hasattr(method, "_pop")
    assert len(rows) == 4 and all(r.scores.users == 2 for r in rows)


def test_the_command_line_cuts_each_split_when_the_harness_reaches_it(
        csv_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    def noted(name: str) -> Callable[..., Split]:
        real = getattr(eval_recommender, name)

        def cut(*args: object) -> Split:
            events.append(name)
            return real(*args)
        return cut

    for name in ("leave_last_basket_out", "time_split"):
        monkeypatch.setattr(eval_recommender, name, noted(name))

    def scored_one_by_one(methods, splits, *args, **kwargs):
        for split in splits:
            events.append(f"scored {split.name.split()[0]}")
        return []

    monkeypatch.setattr(eval_recommender, "evaluate", scored_one_by_one)
    assert eval_recommender.main([csv_path, "--methods", "popularity", "--validation"]) == 0
    # On validation each kind is cut twice (again from its training part), just before it is used.
    assert events == ["leave_last_basket_out", "leave_last_basket_out", "scored leave-last-basket-out",
                      "time_split", "time_split", "scored time"]
