"""Intent F1 per shopper language, from a Rasa NLU cross-validation run.

Rasa reports one F1 over all examples; this splits its held-out predictions by
the language each message is in (the assistant's own detector,
bot/nlu/language.py, falling back to the folder the example lives in,
data/nlu/zh or data/nlu/en, for "ok", "👍", bare numbers and codes).

With ``--baseline`` it also cross-validates a plain character n-gram TF-IDF +
logistic regression on the same examples and folds count, and prints our F1
as a ratio of the baseline's.

Run by hand (a benchmark: it prints figures, asserts nothing)::

    .venv/bin/rasa test nlu --cross-validation --folds 3 --successes --out results/nlu_cv
    .venv/bin/python bench/nlu_f1_by_language.py results/nlu_cv --baseline
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(ROOT))

from bot.nlu.language import detect  # noqa: E402

LANGUAGES = ("zh", "en")


class Prediction(NamedTuple):
    """One held-out example: its text, true intent and predicted intent."""

    text: str
    target: str
    predicted: str


def load_examples(nlu_dir: Path) -> dict[str, tuple[str, str]]:
    """Text -> (intent, folder language) for every intent example under data/nlu/<lang>/."""
    from rasa.shared.nlu.training_data.loading import load_data

    out: dict[str, tuple[str, str]] = {}
    for lang in LANGUAGES:
        folder = nlu_dir / lang
        if not folder.is_dir():
            continue
        for msg in load_data(str(folder)).intent_examples:
            out[msg.get("text")] = (msg.get("intent"), lang)
    return out


def load_predictions(results: Path) -> list[Prediction]:
    """The held-out predictions Rasa wrote (needs ``--successes``; errors are on by default)."""
    rows: list[Prediction] = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = results / name
        if not path.exists():
            if name == "intent_successes.json":
                raise SystemExit(f"{path} is missing: run rasa test nlu with --successes")
            continue
        for r in json.loads(path.read_text(encoding="utf-8")):
            rows.append(Prediction(r["text"], r["intent"], r["intent_prediction"]["name"] or "None"))
    return rows


def language_of(text: str, folder_language: dict[str, tuple[str, str]]) -> str:
    """The detector's answer; the example's folder when the detector abstains."""
    lang = detect(text)
    if lang is not None:
        return lang
    known = folder_language.get(text)
    return known[1] if known else "unknown"


def f1_scores(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, float], dict[str, int], float]:
    """Per-intent F1, per-intent support and accuracy for (target, predicted) pairs."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    support: Counter[str] = Counter()
    n = correct = 0
    for target, predicted in pairs:
        n += 1
        support[target] += 1
        if target == predicted:
            tp[target] += 1
            correct += 1
        else:
            fp[predicted] += 1
            fn[target] += 1
    f1: dict[str, float] = {}
    for intent in support:  # only intents that occur in this slice
        denom = 2 * tp[intent] + fp[intent] + fn[intent]
        f1[intent] = 2 * tp[intent] / denom if denom else 0.0
    return f1, dict(support), (correct / n if n else 0.0)


def summary(pairs: list[tuple[str, str]]) -> tuple[float, float, float, int]:
    """Macro F1, support-weighted F1, accuracy and size of a slice."""
    f1, support, acc = f1_scores(pairs)
    total = sum(support.values())
    macro = sum(f1.values()) / len(f1) if f1 else 0.0
    weighted = sum(f1[i] * support[i] for i in f1) / total if total else 0.0
    return macro, weighted, acc, total


def baseline_pairs(examples: dict[str, tuple[str, str]], folds: int, seed: int) -> dict[str, str]:
    """Held-out predictions of char n-gram TF-IDF + logistic regression, text -> intent."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    texts = list(examples)
    labels = [examples[t][0] for t in texts]
    out: dict[str, str] = {}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(texts, labels):
        model = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=True, sublinear_tf=True),
            LogisticRegression(max_iter=2000, C=10.0),
        )
        model.fit([texts[i] for i in train], [labels[i] for i in train])
        for i, pred in zip(test, model.predict([texts[i] for i in test]), strict=False):
            out[texts[i]] = pred
    return out


def main(argv: list[str] | None = None) -> None:
    """Print intent F1 per language (and per intent) for a cross-validation run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="the --out folder of rasa test nlu --cross-validation")
    ap.add_argument("--nlu", type=Path, default=ROOT / "data" / "nlu", help="folder with zh/ and en/")
    ap.add_argument("--baseline", action="store_true", help="also cross-validate a TF-IDF + LR baseline")
    ap.add_argument("--folds", type=int, default=3, help="folds for the baseline (match the Rasa run)")
    ap.add_argument("--per-intent", action="store_true", help="print F1 for every intent and language")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)

    examples = load_examples(args.nlu)
    preds = load_predictions(args.results)
    by_lang: dict[str, list[tuple[str, str]]] = defaultdict(list)
    abstained = 0
    for p in preds:
        if detect(p.text) is None:
            abstained += 1
        by_lang[language_of(p.text, examples)].append((p.target, p.predicted))

    base: dict[str, str] = baseline_pairs(examples, args.folds, seed=2024) if args.baseline else {}
    base_by_lang: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text, pred in base.items():
        base_by_lang[language_of(text, examples)].append((examples[text][0], pred))

    print(f"held-out predictions: {len(preds)} (detector abstained on {abstained}; folder language used)")
    header = f"{'language':10}{'n':>6}{'macro F1':>10}{'weighted F1':>13}{'accuracy':>10}"
    if base:
        header += f"{'baseline macro F1':>19}{'ratio':>8}"
    print(header)
    for lang in [*LANGUAGES, *sorted(set(by_lang) - set(LANGUAGES))] + ["all"]:
        pairs = [x for v in by_lang.values() for x in v] if lang == "all" else by_lang.get(lang, [])
        if not pairs:
            continue
        macro, weighted, acc, n = summary(pairs)
        line = f"{lang:10}{n:>6}{macro:>10.3f}{weighted:>13.3f}{acc:>10.3f}"
        if base:
            bpairs = [x for v in base_by_lang.values() for x in v] if lang == "all" else base_by_lang[lang]
            bmacro = summary(bpairs)[0]
            line += f"{bmacro:>19.3f}{(macro / bmacro if bmacro else float('nan')):>8.3f}"
        print(line)

    if args.per_intent:
        print()
        print(f"{'intent':18}" + "".join(f"{lang + ' F1':>9}{'n':>5}" for lang in LANGUAGES))
        scores = {lang: f1_scores(by_lang.get(lang, [])) for lang in LANGUAGES}
        intents = sorted({i for lang in LANGUAGES for i in scores[lang][1]})
        for intent in intents:
            row = f"{intent:18}"
            for lang in LANGUAGES:
                f1, support, _ = scores[lang]
                row += f"{f1.get(intent, float('nan')):>9.3f}{support.get(intent, 0):>5}"
            print(row)

    confusions = Counter((t, p) for v in by_lang.values() for t, p in v if t != p)
    if confusions:
        print("\nmost frequent confusions (target -> predicted: count):")
        for (t, p), c in confusions.most_common(8):
            print(f"  {t} -> {p}: {c}")


if __name__ == "__main__":
    main()
