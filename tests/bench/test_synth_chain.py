"""The synthetic chain: the structure it promises is in the file, and the harness reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import synth_chain
from bench.reco_data import CleanRules, ColumnMap, leave_last_basket_out, load_numeric, load_transactions

SYNTH = ColumnMap(user="member", item="sku", basket="order_id", time="paid_at", qty="qty", price=None,
                  category="category")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, synth_chain.ChainShape]:
    shape = synth_chain.ChainShape(members=3000, skus=5000, lines=60_000, seed=7)
    path = str(tmp_path_factory.mktemp("chain") / "chain.csv")
    synth_chain.write(path, shape, chunk=1000, log=lambda _: None)
    return path, shape


def test_sizes_and_columns(chain: tuple[str, synth_chain.ChainShape]) -> None:
    path, shape = chain
    lines = Path(path).read_text(encoding="ascii").splitlines()
    assert lines[0] == "member,sku,order_id,paid_at,qty,category"
    rows = np.array([[int(v) for v in line.split(",")] for line in lines[1:]])
    assert 0.8 * shape.lines <= rows.shape[0] <= 1.2 * shape.lines
    assert rows[:, 0].max() < shape.members and rows[:, 1].max() < shape.skus
    assert (rows[:, 4] >= 1).all()
    cat = synth_chain.make_catalogue(shape, np.random.default_rng(shape.seed))
    assert (rows[:, 5] == cat.category[rows[:, 1]]).all()  # the catalogue's category of the SKU
    # One line per (order, sku); an order belongs to one member at one time.
    assert np.unique(rows[:, [2, 1]], axis=0).shape[0] == rows.shape[0]
    per_order = np.unique(rows[:, [2, 0, 3]], axis=0)
    assert np.unique(per_order[:, 0]).size == per_order.shape[0]


def test_realistic_structure(chain: tuple[str, synth_chain.ChainShape]) -> None:
    path, shape = chain
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    cat = synth_chain.make_catalogue(shape, np.random.default_rng(shape.seed))
    # New items are sold only from their launch day on, and some of them do sell.
    day = (rows[:, 3] - synth_chain.START) // synth_chain.DAY
    assert (day >= cat.launch_day[rows[:, 1]]).all()
    assert (cat.launch_day[rows[:, 1]] > 0).any()
    # Long tail: the top 1% of SKUs sell far more than the median SKU.
    sold = np.sort(np.bincount(rows[:, 1], minlength=shape.skus))[::-1]
    assert sold[: shape.skus // 100].mean() > 20 * max(np.median(sold), 1)
    # Repeat purchases: many (member, sku) pairs are bought in several orders.
    pairs, counts = np.unique(rows[:, [0, 1]], axis=0, return_counts=True)
    assert (counts >= 3).mean() > 0.05
    # Category affinity: a member's lines concentrate in few categories.
    member_cat = np.unique(np.column_stack([rows[:, 0], cat.category[rows[:, 1]]]), axis=0)
    assert np.bincount(member_cat[:, 0]).mean() < 0.5 * cat.cat_weight.size
    # Seasonality: December has more trips per day than the months before.
    orders = np.unique(rows[:, [2, 3]], axis=0)
    oday = (orders[:, 1] - synth_chain.START) // synth_chain.DAY
    assert (oday >= 335).sum() / 30 > 1.2 * ((oday >= 150) & (oday < 300)).sum() / 150


def test_the_fast_reader_cleans_and_indexes_like_the_general_one(
        chain: tuple[str, synth_chain.ChainShape], tmp_path: Path) -> None:
    path, _ = chain
    text = Path(path).read_text(encoding="ascii").splitlines()
    # Add a returned line (qty 0) and check both readers drop it.
    text.append("1,2,999999,1704067300,0,0")
    dirty = tmp_path / "dirty.csv"
    dirty.write_text("\n".join(text) + "\n", encoding="ascii")
    rules = CleanRules(cancel_prefix=None, exclude_items=None)
    fast, fr = load_numeric(str(dirty), SYNTH, rules, block_bytes=4096)  # many blocks
    slow, sr = load_transactions(str(dirty), SYNTH, rules)
    assert fr.kept == sr.kept == len(text) - 2 and fr.dropped["quantity <= 0"] == 1

    def lines(d):  # (member, sku, time) by label, independent of index order
        return sorted(zip(d.user_labels[d.user], d.item_labels[d.item], d.time.tolist(), strict=True))

    assert lines(fast) == lines(slow)
    # The fast reader keeps each item's category (for our method only); the general one has none.
    assert fast.item_category is not None and slow.item_category is None
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    by_sku = dict(zip(rows[:, 1].tolist(), rows[:, 5].tolist(), strict=False))
    assert all(by_sku[int(label)] == c for label, c in zip(fast.item_labels, fast.item_category, strict=True))
    split = leave_last_basket_out(fast)
    assert split.train.item_category is fast.item_category


def test_the_fast_reader_refuses_non_numbers(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("member,sku,order_id,paid_at,qty\n1,AB,1,1704067300,1\n", encoding="ascii")
    with pytest.raises(ValueError):
        load_numeric(str(bad), SYNTH, CleanRules(cancel_prefix=None, exclude_items=None))


def test_the_generator_refuses_impossible_sizes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert synth_chain.main([str(tmp_path / "x.csv"), "--members", "10", "--lines", "5"]) == 2
    assert "lines >= members" in capsys.readouterr().err
