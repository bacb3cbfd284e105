"""The recommender model on small hand-made shops where the right answer is known."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from loyalty.recommender import BOUGHT_WITH, POPULAR, REPEAT, Interactions, Recommender, store
from loyalty.recommender.data import DAY
from loyalty.recommender.features import FEATURES

# Items: index -> (name, category)
ITEMS = ["milk", "yogurt", "bread", "chips", "cookies", "cola", "cream", "lotion", "mask", "tea"]
DAIRY, BAKERY, SNACKS, SKIN = 0, 1, 2, 3
CATEGORY = np.array([DAIRY, DAIRY, BAKERY, SNACKS, SNACKS, SNACKS, SKIN, SKIN, SKIN, SNACKS])
ITEM = {name: n for n, name in enumerate(ITEMS)}
T0 = 1_700_000_000.0
END = T0 + 120 * DAY


class Shop:
    """Collects order lines for a small synthetic shop."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, float, int, int]] = []
        self.basket = 0

    def order(self, user: int, items: list[str], day: float, store: int = 0) -> None:
        self.basket += 1
        for name in items:
            self.rows.append((user, ITEM[name], T0 + day * DAY, self.basket, store))

    def interactions(self) -> Interactions:
        a = np.array(self.rows, dtype=np.float64)
        return Interactions(
            user=a[:, 0].astype(np.int64), item=a[:, 1].astype(np.int64), time=a[:, 2],
            basket=a[:, 3].astype(np.int64), groups={"store": a[:, 4].astype(np.int64)},
        )


def background(shop: Shop, users: range, seed: int = 1) -> None:
    """Shoppers with tastes: snackers buy chips+cola (+cookies), skin-care fans cream+lotion (+mask)."""
    rng = random.Random(seed)
    for u in users:
        taste = [["chips", "cola"], ["cream", "lotion"]][u % 2]
        extra = ["cookies", "mask"][u % 2]
        store = u % 2  # snackers shop in store 0, skin-care fans in store 1
        for _ in range(rng.randint(2, 5)):
            basket = taste + ([extra] if rng.random() < 0.5 else []) + (["bread"] if rng.random() < 0.2 else [])
            shop.order(u, basket, rng.uniform(0, 119), store)


MILK_USER = 100
FAN_USER = 101  # bought chips only: cola is what goes with it


def trained() -> Recommender:
    shop = Shop()
    background(shop, range(0, 60))
    for week in range(16):  # milk every week, bread now and then
        shop.order(MILK_USER, ["milk"] + (["bread"] if week % 5 == 0 else []), week * 7.0, 0)
    shop.order(FAN_USER, ["chips"], 100.0, 0)
    return Recommender().fit(shop.interactions(), n_users=200, n_items=len(ITEMS), category=CATEGORY)


@pytest.fixture(scope="module")
def model() -> Recommender:
    return trained()


def names(recs: list) -> list[str]:
    return [ITEMS[r.item] for r in recs]


def test_weekly_milk_buyer_gets_milk_first_with_a_repeat_reason(model: Recommender) -> None:
    recs = model.recommend(MILK_USER, 5, now=END)
    assert names(recs)[0] == "milk"
    assert recs[0].reason == REPEAT and recs[0].anchor == ITEM["milk"]
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_bought_with_names_an_item_the_member_bought(model: Recommender) -> None:
    recs = model.recommend(FAN_USER, 3, now=END, exclude_bought=True)
    assert "chips" not in names(recs)
    assert names(recs)[0] == "cola"
    assert recs[0].reason == BOUGHT_WITH and recs[0].anchor == ITEM["chips"]


def test_a_long_historys_reason_names_one_of_its_strongest_items(model: Recommender,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import loyalty.recommender.model as model_module

    hist = model.history.get(MILK_USER)  # type: ignore[union-attr]
    assert set(hist.item.tolist()) == {ITEM["milk"], ITEM["bread"]}  # milk weekly, bread now and then
    before = model.recommend(MILK_USER, 5, now=END, exclude_bought=True)
    assert {r.anchor for r in before if r.reason == BOUGHT_WITH} == {ITEM["bread"]}
    monkeypatch.setattr(model_module, "ANCHORS", 1)  # as if bread were beyond the strongest ANCHORS
    after = model.recommend(MILK_USER, 5, now=END, exclude_bought=True)
    assert [r.item for r in after] == [r.item for r in before]  # the same list, other reasons
    assert {r.reason for r in after} == {POPULAR} and ITEM["bread"] not in {r.anchor for r in after}


def test_new_member_gets_their_store_best_sellers(model: Recommender) -> None:
    skin_store = model.recommend(150, 2, now=END, context={"store": 1})
    snack_store = model.recommend(150, 2, now=END, context={"store": 0})
    assert set(names(skin_store)) == {"cream", "lotion"}
    assert set(names(snack_store)) == {"chips", "cola"}
    assert all(r.reason == POPULAR and r.level == "store" for r in skin_store)
    everyone = model.recommend(150, 3, now=END)
    assert all(r.reason == POPULAR and r.level == "" for r in everyone)


def test_out_of_stock_never_appears(model: Recommender) -> None:
    m = trained()
    available = np.ones(len(ITEMS), dtype=bool)
    available[[ITEM["milk"], ITEM["cola"], ITEM["cream"]]] = False
    m.set_catalog(available=available)
    for user in (MILK_USER, FAN_USER, 3, 4, 150):
        for exclude_bought in (False, True):
            got = names(m.recommend(user, len(ITEMS), now=END, exclude_bought=exclude_bought,
                                    context={"store": 1}))
            assert not {"milk", "cola", "cream"} & set(got)
    assert "milk" in names(model.recommend(MILK_USER, 3, now=END))  # the shared model is untouched


def test_category_narrowing_returns_only_that_category(model: Recommender) -> None:
    for user in (MILK_USER, FAN_USER, 2, 150):
        got = model.recommend(user, 3, now=END, categories=[SKIN])
        assert got and all(CATEGORY[r.item] == SKIN for r in got)
    assert names(model.recommend(MILK_USER, 1, now=END, categories=[BAKERY])) == ["bread"]
    assert model.recommend(MILK_USER, 5, now=END, categories=[99]) == []


def test_new_order_changes_recommendations_without_retraining() -> None:
    m = trained()
    user = 170  # never seen in training
    before = m.recommend(user, 3, now=END, context={"store": 0})
    assert all(r.reason == POPULAR for r in before)
    m.add_order(user, [ITEM["cream"]], END - DAY, basket=9001)
    after = m.recommend(user, 3, now=END, exclude_bought=True)
    assert names(after)[0] == "lotion" and after[0].anchor == ITEM["cream"]
    again = m.recommend(user, 1, now=END)
    assert again[0].reason in (REPEAT, BOUGHT_WITH)
    # The same order posted twice counts once.
    m.add_order(user, [ITEM["cream"]], END - DAY, basket=9001)
    assert m.history.get(user).item.tolist() == [ITEM["cream"]]  # type: ignore[union-attr]
    # Products created after training are skipped, not a crash.
    m.add_order(user, [len(ITEMS) + 5], END, basket=9002)
    assert m.recommend(user, 2, now=END)


def test_save_and_load_give_the_same_answers(tmp_path) -> None:
    m = trained()
    path = str(store.save(m, str(tmp_path)))
    assert path.endswith(".npz") and "recommender-" in path
    meta = json.loads(open(path[:-4] + ".json", encoding="utf-8").read())
    assert meta["format"] == Recommender.FORMAT and meta["version"] == m.version
    second = str(store.save(m, str(tmp_path)))
    assert str(store.newest(tmp_path)) == second != path
    loaded = store.load(second)
    for user, kw in ((MILK_USER, {}), (FAN_USER, {"exclude_bought": True}), (150, {"context": {"store": 1}})):
        assert loaded.recommend(user, 5, now=END, **kw) == m.recommend(user, 5, now=END, **kw)


def test_a_model_saved_before_a_setting_existed_serves_as_it_was_trained(tmp_path) -> None:
    m = trained()
    assert m.config.features.spread_floor > 0  # the current default
    path = str(store.save(m, str(tmp_path)))
    assert store.load(path).config.features.spread_floor == m.config.features.spread_floor
    meta_path = path[:-4] + ".json"
    meta = json.loads(open(meta_path, encoding="utf-8").read())
    del meta["config"]["features"]["spread_floor"]  # as written before the row floor was added
    del meta["config"]["member_row_items"]  # and before members' rows were cut
    open(meta_path, "w", encoding="utf-8").write(json.dumps(meta))
    old = store.load(path)
    assert old.config.features.spread_floor == 0.0  # every row, as it was trained
    assert old.config.member_row_items == 0  # whole rows, as it was trained


def test_damaged_or_foreign_model_files_are_refused(tmp_path) -> None:
    path = str(store.save(trained(), str(tmp_path)))
    meta_path = path[:-4] + ".json"
    meta = json.loads(open(meta_path, encoding="utf-8").read())
    for old in (Recommender.FORMAT - 1, 999):  # the previous layout, and one from the future
        meta["format"] = old
        open(meta_path, "w", encoding="utf-8").write(json.dumps(meta))
        with pytest.raises(store.ModelFileError, match="retrain"):
            store.load(path)
    open(path, "wb").write(b"not a zip")
    meta["format"] = Recommender.FORMAT
    open(meta_path, "w", encoding="utf-8").write(json.dumps(meta))
    with pytest.raises(store.ModelFileError):
        store.load(path)
    assert store.newest(tmp_path / "missing") is None


def test_bad_inputs_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="length"):
        Interactions(user=np.array([0, 1]), item=np.array([0]), time=np.array([0.0, 1.0]),
                     basket=np.array([0, 1]))
    with pytest.raises(ValueError, match=">= 0"):
        Interactions(user=np.array([-1]), item=np.array([0]), time=np.array([0.0]), basket=np.array([0]))
    with pytest.raises(ValueError, match="beyond"):
        Recommender().fit(Interactions(user=np.array([5]), item=np.array([0]), time=np.array([0.0]),
                                       basket=np.array([0])), n_users=2, n_items=2)
    with pytest.raises(RuntimeError, match="not trained"):
        Recommender().recommend(0, 3)


def test_ranker_learns_an_interaction_only_with_pair_features() -> None:
    from loyalty.recommender.ranker import fit_ranker, quadratic_pairs

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4000, 2))
    y = x[:, 0] * x[:, 1] > 0  # "both high or both low": no single weight can say it
    plain = fit_ranker(x, y)
    paired = fit_ranker(x, y, quadratic_pairs([0, 1]))
    probe = np.array([[0.8, 0.8], [-0.8, -0.8], [0.8, -0.8], [-0.8, 0.8]])
    s = paired.score(probe)
    assert min(s[:2]) > max(s[2:])
    assert np.ptp(plain.score(probe)) < np.ptp(s)
    with pytest.raises(ValueError, match="both"):
        fit_ranker(x, np.zeros(len(x), dtype=bool))


def test_a_column_of_rounding_noise_gets_no_weight() -> None:
    """A small shop's latent-factor score is 0 give or take 1e-8, and the bits of that noise
    differ between CPUs; standardised, it won a weight in the millions and the ranking followed it."""
    from loyalty.recommender.ranker import fit_ranker

    rng = np.random.default_rng(3)
    signal = rng.normal(size=3000)
    y = signal + rng.normal(size=3000) > 1.0
    noise = rng.normal(scale=5e-8, size=3000)
    got = fit_ranker(np.column_stack((signal, noise)), y)
    assert got.weights[1] == 0.0 and got.weights[0] > 0.5
    # The same rows with the noise drawn again (another machine) rank the same.
    probe = np.column_stack((np.linspace(-2, 2, 9), rng.normal(scale=5e-8, size=9)))
    assert (np.diff(got.score(probe)) > 0).all()
    flat = fit_ranker(np.column_stack((noise, noise)), y)  # nothing to learn from: the base rate
    assert flat.score(probe[:2]) == pytest.approx([np.log(y.mean() / (1 - y.mean()))] * 2)


def test_interaction_ranker_survives_save_and_load(tmp_path) -> None:
    from loyalty.recommender import Config

    shop = Shop()
    background(shop, range(0, 60))
    m = Recommender(Config(interactions=True)).fit(shop.interactions(), n_users=100, n_items=len(ITEMS))
    assert m.ranker_all is not None and m.ranker_all.pairs.size
    loaded = store.load(str(store.save(m, str(tmp_path))))
    assert loaded.config.interactions
    assert loaded.recommend(3, 5, now=END) == m.recommend(3, 5, now=END)


def test_categories_set_after_training_turn_the_category_features_on_and_off() -> None:
    m = trained()
    share = FEATURES.index("cat_share")
    fresh = m.history.get(FAN_USER)  # type: ignore[union-attr]

    def cat_share() -> np.ndarray:
        return m._candidates(fresh, FAN_USER, END).x[:, share]

    assert cat_share().max() > 0  # fit with categories: the fan's snack share is there
    m.set_catalog(category=np.full(len(ITEMS), -1))
    assert m._category() is None and not cat_share().any()
    m.set_catalog(category=CATEGORY)
    assert m._category() is not None and cat_share().max() > 0
