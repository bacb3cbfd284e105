"""Instacart's files joined into the harness's shape: times from the gaps, one end day for all."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from bench import instacart_csv
from bench.instacart_csv import DAY, END_DAY
from bench.reco_data import CleanRules, ColumnMap, load_transactions, time_split

# Customer 7: orders 1, 2 (8 days later), 3 (30 days later); customer 9: one order with lines. Order 40 is
# Instacart's "test" set: an order without lines. Rows out of number order on purpose.
ORDERS = """\
order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,days_since_prior_order
12,7,prior,2,1,9,8.0
11,7,prior,1,0,14,
13,7,train,3,3,20,30.0
21,9,prior,1,5,8,
40,9,test,2,2,10,12.0
"""
PRIOR = """\
order_id,product_id,add_to_cart_order,reordered
11,100,1,0
11,200,2,0
12,100,1,1
21,300,1,0
"""
TRAIN = """\
order_id,product_id,add_to_cart_order,reordered
13,100,1,1
13,300,2,0
99,500,1,0
"""


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = tmp_path / "orders.csv", tmp_path / "prior.csv.gz", tmp_path / "train.csv"  # Kaggle's files may be gzipped
    for path, text in zip(paths, (ORDERS, PRIOR, TRAIN), strict=True):
        path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())
    return paths


def _written(path: Path) -> list[tuple[str, str, str, int]]:
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(instacart_csv.OUT_COLUMNS)
    return [(u, o, i, int(t)) for u, o, i, t in rows[1:]]


def test_orders_get_their_customers_days_and_hours_and_the_latest_falls_on_the_end_day(tmp_path: Path) -> None:
    orders, prior, train = _files(tmp_path)
    out = tmp_path / "out.csv"
    assert instacart_csv.main([str(out), str(prior), str(train), "--orders", str(orders)]) == 0
    end = END_DAY * DAY
    assert _written(out) == [
        ("7", "11", "100", end - 38 * DAY + 14 * 3600),
        ("7", "11", "200", end - 38 * DAY + 14 * 3600),
        ("7", "12", "100", end - 30 * DAY + 9 * 3600),
        ("9", "21", "300", end + 8 * 3600),  # its latest order with lines (40 has none): the end day
        ("7", "13", "100", end + 20 * 3600),
        ("7", "13", "300", end + 20 * 3600),
    ]  # order 99 is in no orders file: skipped


def test_an_extract_with_the_order_columns_on_each_line_gives_the_same_file(tmp_path: Path) -> None:
    orders, prior, train = _files(tmp_path)
    joined = tmp_path / "joined.csv"
    assert instacart_csv.main([str(joined), str(prior), str(train), "--orders", str(orders)]) == 0
    by_order = {r["order_id"]: r for r in csv.DictReader(ORDERS.splitlines())}
    extract = tmp_path / "extract.csv"
    with extract.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "user_id", "order_number", "order_hour_of_day", "days_since_prior_order", "product_id"])
        for text in (PRIOR, TRAIN):
            for line in csv.DictReader(text.splitlines()):
                o = by_order.get(line["order_id"])
                if o:
                    w.writerow([o["order_id"], o["user_id"], o["order_number"], o["order_hour_of_day"],
                                o["days_since_prior_order"], line["product_id"]])
    out = tmp_path / "out.csv"
    assert instacart_csv.main([str(out), str(extract)]) == 0
    assert _written(out) == _written(joined)


def test_the_harness_reads_it_and_the_time_split_holds_each_customers_last_month(tmp_path: Path) -> None:
    orders, prior, train = _files(tmp_path)
    out = tmp_path / "out.csv"
    instacart_csv.main([str(out), str(prior), str(train), "--orders", str(orders)])
    columns = ColumnMap(user="user_id", item="product_id", basket="order_id", time="time", qty=None, price=None,
                        time_format="s")
    data, report = load_transactions(str(out), columns, CleanRules(cancel_prefix=None, exclude_items=None))
    assert report.kept == 6 and int(data.basket.max()) + 1 == 4
    split = time_split(data, 30)  # customer 9's one order is in the last month: nothing to learn from
    assert [str(data.user_labels[u]) for u in split.test_users] == ["7"]
    assert sorted(str(data.item_labels[i]) for i in split.test_items[0]) == ["100", "300"]
    assert split.train.user.size == 3  # orders 11 and 12; 21 is in the last month


def test_missing_columns_and_unreadable_numbers_are_clear_errors(tmp_path: Path, capsys) -> None:
    orders, prior, train = _files(tmp_path)
    out = tmp_path / "out.csv"
    assert instacart_csv.main([str(out), str(prior)]) == 2  # no --orders and no order columns
    assert "has no column user_id" in capsys.readouterr().err
    orders.write_text(ORDERS.replace("12,7,prior,2,1,9,8.0", "12,7,prior,two,1,9,8.0"))
    assert instacart_csv.main([str(out), str(prior), "--orders", str(orders)]) == 2
    assert "unreadable row" in capsys.readouterr().err
