"""Held-out NLU evaluation: does each shopper message lead to the right behaviour?

The messages in tests/nlu_eval/<language>.yml were written apart from the
training data (never copy them into data/) and are labelled by a capability,
what the bot should do, not by an intent name. A parse (intent, confidence,
ranking, entities) is turned into the behaviour the assistant would show by
:func:`behaviour`, which follows the rules in data/rules/ and the actions:

- several intents share a behaviour (``greet`` and ``help`` show the menu;
  ``human`` and ``complain`` hand over to a person);
- ``claim_coupon`` without a named coupon lists what can be claimed, as
  ``action_claim_coupon`` does, so it counts as ``coupons_available``;
- ``nlu_fallback`` (low confidence, a close call, or a gate of
  bot/nlu/gate.py) asks instead of acting: ``clarify`` when the two-button
  question of actions/clarify.py would be asked, ``fallback`` otherwise.

Asking is never counted as right (the accuracy is strict), but it is not a
harmful mistake either; the report shows both.

Run by hand (``make nlu-eval`` trains an NLU model on data/ first)::

    .venv/bin/python -m bench.nlu_eval --model models/loyalty.tar.gz
    .venv/bin/python -m bench.nlu_eval --train          # trains on data/ into results/nlu_eval/
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(ROOT))

from bot.rasa_run import ENVIRONMENT  # noqa: E402

EVAL_DIR = ROOT / "tests" / "nlu_eval"
LANGUAGES = ("zh", "en", "mixed")
OUT = ROOT / "results" / "nlu_eval"

# Intent -> the behaviour it leads to (when no gate stops it).
BEHAVIOUR_OF_INTENT = {
    "greet": "menu",
    "help": "menu",
    "goodbye": "goodbye",
    "thank": "thank",
    "affirm": "yes",
    "deny": "no",
    # "取消"/"cancel": every yes/no question takes it as a no (data/rules/).
    "stop": "no",
    "out_of_scope": "out_of_scope",
    "ask_points": "points",
    "points_history": "points_history",
    "ask_tier": "tier",
    "list_coupons": "coupons_available",
    "my_coupons": "my_coupons",
    "exchange_coupon": "exchange",
    "recommend": "recommend",
    "join": "join",
    "member_card": "member_card",
    # The scannable code for the till (action_member_code); the card (action_member_card) shows
    # name, masked phone, tier, points and referral code but nothing a till can scan.
    "member_code": "member_code",
    "referral_info": "referral",
    "opt_out": "opt_out",
    "close_account": "close_account",
    "human": "handoff",
    "complain": "handoff",
}
# Besides its own behaviour, a capability may accept these (a polite "I can't" for out of scope).
ALSO_RIGHT = {"out_of_scope": {"fallback", "clarify"}}
# Behaviours that cost something when wrong: a person's time, an irreversible write, a lost shopper.
COSTLY = {"handoff", "close_account", "opt_out", "exchange", "claim"}
ASKING = {"fallback", "clarify"}


@dataclass(frozen=True)
class Case:
    language: str
    capability: str
    text: str


@dataclass
class Outcome:
    language: str
    capability: str
    text: str
    intent: str
    confidence: float
    behaviour: str
    offered: list[str]
    seconds: float

    @property
    def right(self) -> bool:
        return self.behaviour == self.capability or self.behaviour in ALSO_RIGHT.get(self.capability, set())

    @property
    def asked(self) -> bool:
        return not self.right and self.behaviour in ASKING

    @property
    def costly(self) -> bool:
        return not self.right and self.behaviour in COSTLY


def load_cases(folder: Path = EVAL_DIR, languages: Iterable[str] = LANGUAGES) -> list[Case]:
    """Every message of the evaluation set, in file order."""
    import yaml

    cases: list[Case] = []
    for lang in languages:
        path = folder / f"{lang}.yml"
        # BaseLoader: every scalar stays a string ("no", "ok", "88" included).
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        for capability, texts in doc["capabilities"].items():
            cases.extend(Case(lang, capability, str(t)) for t in texts)
    return cases


def normalise(text: str) -> str:
    """Compare texts without case, width, spaces and punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s\W_]+", "", text)


def training_texts(nlu_dir: Path = ROOT / "data" / "nlu") -> set[str]:
    """Normalised text of every training example (entity markup removed)."""
    out: set[str] = set()
    for path in nlu_dir.rglob("*.yml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s+- (.*)$", line)
            if not m:
                continue
            text = re.sub(r"\[([^\]]*)\](\([^)]*\)|\{[^}]*\})", r"\1", m.group(1))
            out.add(normalise(text))
    return out


def leaked(cases: list[Case], nlu_dir: Path = ROOT / "data" / "nlu") -> list[Case]:
    """Evaluation messages that also occur (normalised) among the training examples."""
    train = training_texts(nlu_dir)
    return [c for c in cases if normalise(c.text) in train]


def behaviour(parse: Mapping[str, Any], *, clarify: bool = True) -> tuple[str, list[str]]:
    """What the assistant does with a parse, and the intents a clarifying question would offer.

    ``clarify=False`` measures an assistant without actions/clarify.py (every miss asks to rephrase).
    """
    from actions.clarify import choices

    intent = (parse.get("intent") or {}).get("name") or "None"
    if intent == "nlu_fallback":
        offered = choices(parse.get("intent_ranking") or []) if clarify else ()
        return ("clarify" if offered else "fallback"), list(offered)
    if intent == "claim_coupon":
        named = any(e.get("entity") == "coupon_choice" for e in parse.get("entities") or [])
        return ("claim" if named else "coupons_available"), []
    return BEHAVIOUR_OF_INTENT.get(intent, intent), []


def train_nlu(out: Path) -> tuple[Path, float]:
    """Train an NLU-only model on data/ with config.yml; its path and the seconds it took."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "rasa"), "train", "nlu", "--config", "config.yml", "--nlu", "data/nlu",
         "--domain", "domain", "--out", str(out), "--fixed-model-name", "nlu-eval"],
        cwd=ROOT, check=True, env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )
    return out / "nlu-eval.tar.gz", time.perf_counter() - started


def run(model: Path, cases: list[Case], *, clarify: bool = True) -> list[Outcome]:
    """Parse every case with the model and classify the behaviour."""
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    from bot import model_loading

    configure_structlog(logging.WARNING)  # no debug line per parsed message
    model_loading.install()  # as the server loads it: the same weights, no training step traced
    agent = Agent.load(str(model))
    outcomes: list[Outcome] = []

    async def parse_all() -> None:
        await agent.parse_message("warm up")
        for c in cases:
            t0 = time.perf_counter()
            parse = await agent.parse_message(c.text)
            seconds = time.perf_counter() - t0
            b, offered = behaviour(parse, clarify=clarify)
            intent = parse.get("intent") or {}
            outcomes.append(Outcome(c.language, c.capability, c.text, str(intent.get("name")),
                                    float(intent.get("confidence") or 0.0), b, offered, seconds))

    asyncio.run(parse_all())
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per-language figures, per-capability accuracy, confusions and costly mistakes."""
    by_lang: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_lang[o.language].append(o)
    report: dict[str, Any] = {"languages": {}, "capabilities": {}, "confusions": [], "costly": []}
    for lang, rows in [*by_lang.items(), ("all", outcomes)]:
        n = len(rows)
        right = sum(o.right for o in rows)
        asked = sum(o.asked for o in rows)
        offered_right = sum(o.asked and o.capability in {BEHAVIOUR_OF_INTENT.get(i) for i in o.offered} for o in rows)
        report["languages"][lang] = {
            "n": n, "right": right, "accuracy": right / n if n else 0.0, "asked": asked,
            "asked_offering_right": offered_right, "wrong": n - right - asked,
            "costly_wrong": sum(o.costly for o in rows),
        }
    caps: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        caps[(o.capability, o.language)].append(o)
    for (cap, lang), rows in sorted(caps.items()):
        report["capabilities"].setdefault(cap, {})[lang] = sum(o.right for o in rows) / len(rows)
    pairs = Counter((o.capability, o.behaviour) for o in outcomes if not o.right)
    report["confusions"] = [{"capability": c, "behaviour": b, "count": k} for (c, b), k in pairs.most_common()]
    report["costly"] = [asdict(o) for o in outcomes if o.costly]
    times = sorted(o.seconds for o in outcomes)
    if times:
        report["parse_ms"] = {"mean": 1000 * sum(times) / len(times), "p50": 1000 * times[len(times) // 2],
                              "p95": 1000 * times[int(len(times) * 0.95)]}
    return report


def print_report(report: dict[str, Any], top: int = 15) -> None:
    print(f"{'language':10}{'n':>6}{'right':>7}{'accuracy':>10}{'asked':>7}{'(right offered)':>16}"
          f"{'wrong':>7}{'costly':>8}")
    for lang, r in report["languages"].items():
        print(f"{lang:10}{r['n']:>6}{r['right']:>7}{r['accuracy']:>10.3f}{r['asked']:>7}"
              f"{r['asked_offering_right']:>16}{r['wrong']:>7}{r['costly_wrong']:>8}")
    langs = [lang for lang in report["languages"] if lang != "all"]
    print("\naccuracy per capability")
    print(f"{'capability':20}" + "".join(f"{lang:>8}" for lang in langs))
    for cap, per in report["capabilities"].items():
        print(f"{cap:20}" + "".join(f"{per.get(lang, float('nan')):>8.3f}" for lang in langs))
    print("\nconfusion table, worst pairs first (capability -> behaviour: count)")
    for row in report["confusions"][:top]:
        print(f"  {row['capability']:18} -> {row['behaviour']:18} {row['count']}")
    print(f"\ncostly mistakes (a handoff, closure, opt-out, exchange or claim that was not asked for): "
          f"{len(report['costly'])}")
    counts = Counter((c["capability"], c["behaviour"]) for c in report["costly"])
    for (cap, b), k in counts.most_common():
        print(f"  {cap:18} -> {b:18} {k}")
    if "parse_ms" in report:
        p = report["parse_ms"]
        print(f"\nparse time per message: mean {p['mean']:.1f} ms, median {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms")


def main(argv: list[str] | None = None) -> None:
    """Evaluate a model (or train one on data/) on the held-out set and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="a trained model (.tar.gz); default: train one on data/")
    ap.add_argument("--train", action="store_true", help="train an NLU model on data/ first (make nlu-eval)")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the model, report.json and outcomes.jsonl")
    ap.add_argument("--languages", nargs="*", default=list(LANGUAGES))
    ap.add_argument("--no-clarify", action="store_true", help="every miss asks to rephrase (before actions/clarify)")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    # As the launcher runs Rasa (bot/rasa_run.py), before anything loads OpenMP: idle OpenMP
    # threads that spin made one parse of a short message take up to 1.7 s on 2 busy cores.
    os.environ.setdefault("OMP_WAIT_POLICY", ENVIRONMENT["OMP_WAIT_POLICY"])

    cases = load_cases(languages=args.languages)
    dup = leaked(cases)
    print(f"evaluation messages: {len(cases)}; also among the training examples: {len(dup)}")
    for c in dup:
        print(f"  leaked ({c.language}/{c.capability}): {c.text}")
    model = args.model
    if model is None or args.train:
        model, seconds = train_nlu(args.out)
        print(f"trained {model} in {seconds:.0f} s")
    print(f"model: {model} ({model.stat().st_size / 1e6:.1f} MB)")
    outcomes = run(model, cases, clarify=not args.no_clarify)
    report = summarise(outcomes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    with (args.out / "outcomes.jsonl").open("w", encoding="utf-8") as f:
        for o in outcomes:
            f.write(json.dumps(asdict(o), ensure_ascii=False) + "\n")
    print_report(report)


if __name__ == "__main__":
    main()
