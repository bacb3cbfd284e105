"""The synthetic chain's oracle: the generator's own probabilities rank its 30-day question best."""

from __future__ import annotations

import numpy as np
import pytest

from bench import synth_chain, synth_oracle
from bench.reco_data import CleanRules, ColumnMap, load_numeric, time_split

SHAPE = synth_chain.ChainShape(members=1500, skus=800, lines=40_000, days=200, seed=3)
ARGS = ["--members", "1500", "--skus", "800", "--lines", "40000", "--days", "200", "--seed", "3"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("oracle") / "chain.csv")
    synth_chain.write(path, SHAPE, log=lambda _: None)
    return path


def test_keeping_the_hidden_parameters_does_not_change_the_lines(chain: str) -> None:
    shape = SHAPE
    truth: list[dict[str, np.ndarray]] = []
    lines = np.vstack(list(synth_chain.chunks(shape, truth=truth)))
    written = np.loadtxt(chain, delimiter=",", skiprows=1, dtype=np.int64)
    assert np.array_equal(lines, written) and len(truth) == 1
    truth = []
    assert np.array_equal(np.vstack(list(synth_chain.chunks(shape, 600, truth))),
                          np.vstack(list(synth_chain.chunks(shape, 600))))
    assert len(truth) == 3  # one per chunk of 600 members
    staples = np.concatenate([t["staple_member"] for t in truth])
    assert staples.min() >= 0 and staples.max() >= 1200  # members numbered across chunks


def test_the_oracle_leads_buy_again_and_knows_a_staple(chain: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert synth_oracle.main([chain, *ARGS]) == 0
    out = capsys.readouterr().out
    again = float(out.split("buy-again   NDCG@10 ")[1].split()[0])
    best = float(out.split("oracle      NDCG@10 ")[1].split()[0])
    assert best > 1.05 * again > 0
    shape = SHAPE
    truth = synth_oracle.hidden(shape, chain)
    cat = synth_chain.make_catalogue(shape, np.random.default_rng(shape.seed))
    weekly = np.flatnonzero((truth["staple_cadence"] == 7 * synth_chain.DAY) & (truth["staple_events"] >= 20))[0]
    member, item = int(truth["staple_member"][weekly]), int(truth["staple_item"][weekly])
    first = float(truth["staple_first"][weekly])
    cut = first + 60 * synth_chain.DAY  # the staple is in full swing
    p = synth_oracle.oracle_scores(truth, cat, member, cut, cut + 30 * synth_chain.DAY, shape.days)
    assert p[item] > 0.9 and np.median(p) < 0.05


def test_staples_cadences_estimated_from_the_lines_follow_the_hidden_ones(
        chain: str, capsys: pytest.CaptureFixture[str]) -> None:
    shape = SHAPE
    truth = synth_oracle.hidden(shape, chain)
    cat = synth_chain.make_catalogue(shape, np.random.default_rng(shape.seed))
    columns = ColumnMap(user="member", item="sku", basket="order_id", time="paid_at", qty="qty", price=None,
                        category=None)
    data, _ = load_numeric(chain, columns, CleanRules(cancel_prefix=None, exclude_items=None))
    split = time_split(data)
    est = synth_oracle.estimated_staples(truth, cat, split, data, shape.days)
    weight = est["staple_weight"]
    assert np.allclose(weight.sum(axis=1), 1.0)
    asked = np.isin(truth["staple_member"], data.user_labels[split.test_users].astype(np.int64))
    seen = asked & (est["staple_first"] > 0)  # bought before the cut: the lines say something
    assert seen.sum() > 1000
    assert not est["staple_events"][~asked].any()  # never scored: nothing estimated
    log_cadence = weight @ np.log(synth_oracle.CADENCE_GRID * synth_chain.DAY)
    true = truth["staple_cadence"]
    by_cadence = [np.median(log_cadence[seen & (true == c * synth_chain.DAY)]) for c in (7, 14, 28, 56)]
    assert np.all(np.diff(by_cadence) > 0)  # longer cadences are estimated longer
    error = np.median(np.abs(log_cadence[seen] - np.log(true[seen])))
    guess = np.median(np.abs(np.log(synth_oracle.CADENCE_GRID[30] * synth_chain.DAY) - np.log(true[seen])))
    assert error < 0.7 * guess
    assert synth_oracle.main([chain, *ARGS, "--cadence", "estimated"]) == 0
    assert "staples' cadence estimated" in capsys.readouterr().out


def test_a_file_of_other_options_is_refused(chain: str) -> None:
    with pytest.raises(SystemExit, match="not the chain of these options"):
        synth_oracle.main([chain, *ARGS[:-1], "4"])
