"""Keep what the assistant did not understand well, masked, and turn reviewed messages into NLU examples.

The bot's event broker (bot/nlu_review.py) calls :func:`record` for each
shopper message that fell to the fallback, was stopped by a confidence gate,
or was answered with low confidence. The text is masked first (phone numbers,
e-mail addresses, codes and other digit runs), and the conversation is kept
only as a hash. Staff list the messages, mark each with the intent it should
have had (or dismiss it), and export the reviewed ones as Rasa NLU examples
(``python -m loyalty review ...``; the YAML is made by :func:`render_nlu`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.db import add_first, utcnow
from loyalty.errors import InvalidInput, NotFound
from loyalty.nlu_review.models import REASONS, STATUSES, ReviewMessage

MAX_TEXT = 500
LANGUAGES = ("zh", "en")
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Order matters: e-mail addresses and phone numbers before the digit runs inside them.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Mainland mobiles: 1[3-9] and 9 more digits, with spaces or dashes between, optionally +86 / 0086 / 86.
_PHONE = re.compile(r"(?<!\d)(?:(?:\+|00)?\s*86[\s-]*)?1[3-9]\d(?:[\s-]*\d){8}(?!\d)")
# Any other run of 4 or more digits: SMS and member codes (4–8), ID, card and order numbers (longer).
_DIGITS = re.compile(r"(?<!\d)\d{4,}(?!\d)")
# Letters and digits mixed, 5 or more: referral, member and coupon codes (K7M2QX, SH001A).
_CODE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{5,}(?![A-Za-z0-9])")


def _stars(m: re.Match[str]) -> str:
    return "*" * len(re.sub(r"\s", "", m.group(0)))


def mask(text: str) -> str:
    """The text with phone numbers, e-mail addresses, codes and long numbers replaced by asterisks."""
    text = _EMAIL.sub("***@***", text)
    text = _PHONE.sub(lambda m: "*" * 11, text)
    text = _DIGITS.sub(_stars, text)
    return _CODE.sub(_stars, text)


def normalise(text: str) -> str:
    """For comparing texts: NFKC, lower case, no spaces or punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s\W_]+", "", text)


def text_key(masked: str) -> str:
    return hashlib.sha256(normalise(masked).encode("utf-8")).hexdigest()


def conversation_key(sender_id: str) -> str:
    """A short hash of the conversation id: repeats group, the shopper is not named."""
    return hashlib.sha256(f"review:{sender_id}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ReviewItem:
    """One message of the review list, as staff see it."""

    id: int
    text: str
    language: str | None
    channel: str
    reason: str
    intent: str | None
    confidence: float
    second_intent: str | None
    second_confidence: float | None
    seen: int
    last_seen_at: datetime
    status: str
    reviewed_intent: str | None
    reviewed_by: str | None


def _item(r: ReviewMessage) -> ReviewItem:
    return ReviewItem(r.id, r.text, r.language, r.channel, r.reason, r.intent, r.confidence, r.second_intent,
                      r.second_confidence, r.seen, r.last_seen_at, r.status, r.reviewed_intent, r.reviewed_by)


def record(
    s: Session,
    *,
    text: str,
    sender_id: str,
    channel: str,
    reason: str,
    intent: str | None,
    confidence: float,
    second_intent: str | None = None,
    second_confidence: float | None = None,
    language: str | None = None,
    now: datetime | None = None,
) -> int | None:
    """Keep one message (masked) for review; a text seen before is counted, not added. Its id, or None."""
    if reason not in REASONS:
        raise InvalidInput("bad_reason", f"reason must be one of {', '.join(REASONS)}")
    masked = mask(" ".join(text.split()))[:MAX_TEXT]
    if not normalise(masked).strip("*"):
        return None  # nothing left to learn from (only a code, digits or punctuation)
    key = text_key(masked)
    now = now or utcnow()
    row = s.execute(select(ReviewMessage).where(ReviewMessage.text_key == key)).scalar_one_or_none()
    if row is None:
        row = ReviewMessage(
            text_key=key, text=masked, language=language if language in LANGUAGES else None, channel=channel[:20],
            conversation=conversation_key(sender_id), reason=reason, intent=intent, confidence=float(confidence),
            second_intent=second_intent, second_confidence=second_confidence, seen=1, first_seen_at=now,
            last_seen_at=now, status="new",
        )
        if add_first(s, row):
            return row.id
        # The same text recorded at the same moment by another process.
        row = s.execute(select(ReviewMessage).where(ReviewMessage.text_key == key)).scalar_one()
    row.seen += 1
    row.last_seen_at = now
    row.conversation = conversation_key(sender_id)
    row.intent, row.confidence = intent, float(confidence)
    row.second_intent, row.second_confidence = second_intent, second_confidence
    return row.id


def messages(
    s: Session, *, status: str | None = "new", language: str | None = None, limit: int = 50
) -> list[ReviewItem]:
    """The review list, most often seen first, then the most recent."""
    if status is not None and status not in STATUSES:
        raise InvalidInput("bad_status", f"status must be one of {', '.join(STATUSES)}")
    q = select(ReviewMessage)
    if status is not None:
        q = q.where(ReviewMessage.status == status)
    if language is not None:
        q = q.where(ReviewMessage.language == language)
    q = q.order_by(ReviewMessage.seen.desc(), ReviewMessage.last_seen_at.desc(), ReviewMessage.id.desc())
    return [_item(r) for r in s.execute(q.limit(limit)).scalars()]


def _get(s: Session, message_id: int) -> ReviewMessage:
    row = s.get(ReviewMessage, message_id)
    if row is None:
        raise NotFound("review_message_not_found", f"no review message {message_id}")
    return row


def review(
    s: Session, message_id: int, intent: str, *, by: str, language: str | None = None, now: datetime | None = None
) -> ReviewItem:
    """Mark a message with the intent it should have had (and its language, if the detector could not tell)."""
    if not INTENT_NAME.match(intent):
        raise InvalidInput("bad_intent", "an intent name is lower-case letters, digits and _")
    if language is not None and language not in LANGUAGES:
        raise InvalidInput("bad_language", f"language must be one of {', '.join(LANGUAGES)}")
    row = _get(s, message_id)
    row.reviewed_intent, row.reviewed_by, row.reviewed_at = intent, by, now or utcnow()
    if language is not None:
        row.language = language
    row.status = "reviewed"
    return _item(row)


def dismiss(s: Session, message_id: int, *, by: str, now: datetime | None = None) -> ReviewItem:
    """Leave a message out of the training data (noise, or nothing the bot should learn)."""
    row = _get(s, message_id)
    row.status, row.reviewed_intent, row.reviewed_by, row.reviewed_at = "dismissed", None, by, now or utcnow()
    return _item(row)


def reviewed(s: Session) -> list[ReviewItem]:
    """Every message marked with an intent and not yet exported, oldest review first."""
    q = select(ReviewMessage).where(ReviewMessage.status == "reviewed").order_by(ReviewMessage.reviewed_at,
                                                                                 ReviewMessage.id)
    return [_item(r) for r in s.execute(q).scalars()]


def mark_exported(s: Session, ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Record that these reviewed messages are now NLU examples; how many changed."""
    when, n = now or utcnow(), 0
    for message_id in ids:
        row = _get(s, message_id)
        if row.status == "reviewed":
            row.status, row.exported_at, n = "exported", when, n + 1
    return n


# --- Rasa NLU YAML, without importing Rasa -------------------------------------------------------

_MARKUP = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
HEADER = (
    'version: "3.1"\n'
    "# Shopper messages reviewed by staff and exported by `python -m loyalty review export`\n"
    "# (masked: asterisks stand for phone numbers and codes). Edit or move them freely.\n"
    "nlu:\n"
)


def example_text(line: str) -> str:
    """The plain text of an NLU example line (entity markup removed)."""
    return _MARKUP.sub(r"\1", line)


def parse_examples(yaml_text: str) -> dict[str, list[str]]:
    """Intent -> example lines of a Rasa NLU YAML file (plain intents only; synonyms and lookups skipped)."""
    import yaml  # type: ignore[import-untyped]

    doc = yaml.safe_load(yaml_text) or {}
    out: dict[str, list[str]] = {}
    for block in doc.get("nlu") or []:
        if not isinstance(block, dict) or "intent" not in block:
            continue
        lines = [ln.strip()[2:].strip() for ln in str(block.get("examples") or "").splitlines()
                 if ln.strip().startswith("- ")]
        out.setdefault(str(block["intent"]), []).extend(lines)
    return out


def _safe_line(text: str) -> str:
    # One line; square brackets would read as entity markup.
    return " ".join(text.split()).replace("[", "［").replace("]", "］")


def render_nlu(examples: Mapping[str, Iterable[str]]) -> str:
    """A Rasa NLU YAML file with these examples per intent (intents sorted, examples as given)."""
    parts = [HEADER]
    for intent in sorted(examples):
        lines = list(examples[intent])
        if not lines:
            continue
        parts.append(f"- intent: {intent}\n  examples: |\n")
        parts.extend(f"    - {line}\n" for line in lines)
        parts.append("\n")
    return "".join(parts).rstrip("\n") + "\n"


@dataclass(frozen=True)
class Merge:
    """What an export adds to one language's review file."""

    text: str  # the whole new file
    added: list[int]  # ids of the messages written
    skipped: list[tuple[int, str]]  # (id, why) of those left out


def merge_reviewed(
    current: str | None,
    items: Iterable[ReviewItem],
    *,
    known: Mapping[str, str],
    held_out: Iterable[str] = (),
) -> Merge:
    """The review file with the reviewed messages added, deduplicated.

    ``known`` maps the normalised text of every training example of the language
    (this file included) to its intent: a message already there is not added
    again, and one labelled otherwise is left out (Rasa refuses an example under
    two intents). ``held_out`` are normalised texts of the evaluation set, which
    must never become training data.
    """
    examples = parse_examples(current) if current else {}
    seen = dict(known)
    for intent, lines in examples.items():
        for line in lines:
            seen.setdefault(normalise(example_text(line)), intent)
    held = set(held_out)
    added: list[int] = []
    skipped: list[tuple[int, str]] = []
    for item in items:
        label = item.reviewed_intent
        if not label:
            continue
        line = _safe_line(item.text)
        key = normalise(line)
        if key in held:
            skipped.append((item.id, "in the held-out evaluation set"))
            continue
        if key in seen:
            if seen[key] != label:
                skipped.append((item.id, f"already an example of {seen[key]}"))
            else:
                added.append(item.id)  # nothing to write, but done
            continue
        examples.setdefault(label, []).append(line)
        seen[key] = label
        added.append(item.id)
    return Merge(render_nlu(examples), added, skipped)
