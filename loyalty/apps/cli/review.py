"""The review list: messages the assistant did not understand well (masked), and their export as NLU examples."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loyalty import db
from loyalty.apps.cli.common import EXIT_OK, UsageError, command_group, int_in, table, text_of
from loyalty.nlu_review import service as review


def _domain_intents(folder: Path) -> set[str]:
    """Every intent named in the domain files of a folder (empty if there is none)."""
    import yaml  # type: ignore[import-untyped]

    names: set[str] = set()
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or []:
            names.add(str(next(iter(entry)) if isinstance(entry, dict) else entry))
    return names


def _held_out(folder: Path) -> set[str]:
    """Normalised texts of the held-out evaluation set (tests/nlu_eval), never to be trained on."""
    import yaml  # type: ignore[import-untyped]

    texts: set[str] = set()
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
        for lines in (doc.get("capabilities") or {}).values():
            texts.update(review.normalise(str(t)) for t in lines)
    return texts


def _known_examples(data: Path, skip: Path) -> dict[str, str]:
    """Normalised text -> intent of every NLU example under data/ except the file ``skip``."""
    known: dict[str, str] = {}
    for path in sorted(data.rglob("*.yml")):
        if path.resolve() == skip.resolve():
            continue
        for intent, lines in review.parse_examples(path.read_text(encoding="utf-8")).items():
            for line in lines:
                known.setdefault(review.normalise(review.example_text(line)), intent)
    return known


def cmd_review_list(a: argparse.Namespace) -> int:
    status = None if a.status == "all" else a.status
    items = db.run(review.messages, status=status, language=a.lang, limit=a.limit, readonly=True)
    if not items:
        print("nothing to review" if status == "new" else "no messages")
        return EXIT_OK
    table(("id", "seen", "lang", "reason", "guess", "runner-up", "status", "text"), [
        (i.id, i.seen, i.language or "?", i.reason, f"{i.intent} {i.confidence:.2f}",
         f"{i.second_intent} {i.second_confidence:.2f}" if i.second_intent and i.second_confidence is not None
         else "", i.reviewed_intent or i.status, i.text)
        for i in items])
    return EXIT_OK


def cmd_review_mark(a: argparse.Namespace) -> int:
    known = _domain_intents(a.domain)
    if known and a.intent not in known:
        raise UsageError(f"{a.intent!r} is no intent of {a.domain}/ (e.g. {', '.join(sorted(known)[:5])}, ...)")
    item = db.run(review.review, a.id, a.intent, by=a.by, language=a.lang)
    print(f"{item.id}: {item.text!r} -> {item.reviewed_intent} ({item.language or 'zh'})")
    return EXIT_OK


def cmd_review_dismiss(a: argparse.Namespace) -> int:
    item = db.run(review.dismiss, a.id, by=a.by)
    print(f"{item.id}: dismissed")
    return EXIT_OK


def cmd_review_export(a: argparse.Namespace) -> int:
    items = db.run(review.reviewed, readonly=True)
    if not items:
        print("no reviewed messages to export")
        return EXIT_OK
    held = _held_out(a.held_out)
    done: list[int] = []
    for lang in review.LANGUAGES:
        mine = [i for i in items if (i.language or "zh") == lang]
        if not mine:
            continue
        target = a.data / lang / "review.yml"
        current = target.read_text(encoding="utf-8") if target.exists() else None
        merge = review.merge_reviewed(current, mine, known=_known_examples(a.data, target), held_out=held)
        for message_id, why in merge.skipped:
            print(f"  {message_id}: left out, {why}")
        print(f"{target}: {len(merge.added)} of {len(mine)} reviewed messages")
        if not a.dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(merge.text, encoding="utf-8")
            done += merge.added
    if not a.dry_run:
        n = db.run(review.mark_exported, done)
        print(f"{n} messages marked exported; retrain the model (make train) to learn them")
    return EXIT_OK


def add_review(sub: Any) -> None:
    rg = command_group(sub, "review", "messages the assistant did not understand well (masked) and their export")
    rl = rg.add_parser("list", help="list messages to review, most often seen first")
    rl.add_argument("--status", choices=(*review.STATUSES, "all"), default="new")
    rl.add_argument("--lang", choices=review.LANGUAGES)
    rl.add_argument("--limit", type=int_in(1, 10_000), default=50)
    rl.set_defaults(func=cmd_review_list)
    rm = rg.add_parser("mark", help="mark a message with the intent it should have had")
    rm.add_argument("id", type=int_in(1, 2**62))
    rm.add_argument("intent", type=text_of(64))
    rm.add_argument("--lang", choices=review.LANGUAGES, help="its language, if the detector could not tell")
    rm.add_argument("--domain", type=Path, default=Path("domain"), help="domain folder to check the intent against")
    rd = rg.add_parser("dismiss", help="leave a message out of the training data")
    rd.add_argument("id", type=int_in(1, 2**62))
    for sp in (rm, rd):
        sp.add_argument("--by", type=text_of(64), default="cli", help="who reviews")
    rm.set_defaults(func=cmd_review_mark)
    rd.set_defaults(func=cmd_review_dismiss)
    rx = rg.add_parser("export", help="write reviewed messages into data/nlu/<lang>/review.yml (deduplicated)")
    rx.add_argument("--data", type=Path, default=Path("data/nlu"), help="the NLU data folder (default data/nlu)")
    rx.add_argument("--held-out", type=Path, default=Path("tests/nlu_eval"),
                    help="evaluation set whose messages are never exported (default tests/nlu_eval)")
    rx.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    rx.set_defaults(func=cmd_review_export)
