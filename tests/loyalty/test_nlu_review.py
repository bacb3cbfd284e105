"""The review list: masking, recording once per text, reviewing, and exporting valid, deduplicated NLU YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from loyalty import db
from loyalty.apps import cli
from loyalty.errors import InvalidInput
from loyalty.nlu_review import service as review
from loyalty.nlu_review.models import ReviewMessage


@pytest.mark.parametrize("text, masked", [
    ("我的手机号13812345678", "我的手机号***********"),
    ("手机 138 1234 5678 谢谢", "手机 *********** 谢谢"),
    ("call +86 139-1234-5678 please", "call *********** please"),
    ("0086 15012345678", "***********"),
    ("8613712345678", "***********"),
    ("验证码是 482913", "验证码是 ******"),
    ("code 4829", "code ****"),
    ("会员码 80012345，邀请码K7M2QX", "会员码 ********，邀请码******"),
    ("身份证110101199003071234", "身份证******************"),
    ("mail me at li.lei@example.com.cn", "mail me at ***@***"),
    ("生日1990-05-12", "生日****-05-12"),
])
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert review.mask(text) == masked


@pytest.mark.parametrize("text", ["满100减20那张", "我要领第2张", "积分500能换啥", "8折券", "claim coupon 3"])
def test_ordinary_words_and_small_numbers_stay(text: str) -> None:
    assert review.mask(text) == text


def _record(text: str, sender: str = "wx-openid-abc", **kw: Any) -> int | None:
    args: dict[str, Any] = {"channel": "wechat", "reason": "fallback", "intent": "complain", "confidence": 0.4,
                            "second_intent": "points_history", "second_confidence": 0.3, "language": "zh"}
    args.update(kw)
    return db.run(review.record, text=text, sender_id=sender, **args)


def test_a_message_is_kept_masked_once_and_counted(sqlite_engine: Any) -> None:
    first = _record("积分没到账 13812345678")
    again = _record("积分没到账  13912340000", sender="wx-other")  # same text once masked
    assert first == again
    rows = db.run(lambda s: s.execute(select(ReviewMessage)).scalars().all(), readonly=True)
    assert len(rows) == 1
    row = rows[0]
    assert row.text == "积分没到账 ***********" and row.seen == 2
    assert "1381234" not in row.text and "wx-" not in row.conversation and len(row.conversation) == 16
    assert (row.intent, row.second_intent, row.status) == ("complain", "points_history", "new")


def test_nothing_but_a_code_is_not_kept(sqlite_engine: Any) -> None:
    assert _record("482913") is None
    assert _record("13812345678") is None
    assert db.run(review.messages, readonly=True) == []


def test_bad_input_is_refused(sqlite_engine: Any) -> None:
    with pytest.raises(InvalidInput):
        _record("hm", reason="whatever")
    mid = _record("嗯哼哈")
    assert mid is not None
    with pytest.raises(InvalidInput):
        db.run(review.review, mid, "Not An Intent", by="amy")


NLU = """version: "3.1"
nlu:
- intent: ask_points
  examples: |
    - 我的积分
    - [积分](thing)余额
- intent: points_history
  examples: |
    - 积分明细
"""


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    data = tmp_path / "data" / "nlu"
    (data / "zh").mkdir(parents=True)
    (data / "en").mkdir()
    (data / "zh" / "points.yml").write_text(NLU, encoding="utf-8")
    held = tmp_path / "nlu_eval"
    held.mkdir()
    (held / "zh.yml").write_text("language: zh\ncapabilities:\n  points:\n    - 积分到底还有几分\n", encoding="utf-8")
    domain = tmp_path / "domain"
    domain.mkdir()
    (domain / "points.yml").write_text("intents:\n  - ask_points\n  - points_history\n  - complain\n",
                                       encoding="utf-8")
    return data, held, domain


def test_list_mark_dismiss_and_export_through_the_cli(
    sqlite_engine: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, held, domain = _files(tmp_path)
    ids = {t: _record(t, language=lang) for t, lang in [
        ("昨天那单积分到了没 13812345678", "zh"), ("积分余额", "zh"), ("积分到底还有几分", "zh"),
        ("积分明细", "zh"), ("did my points [arrive]", "en"), ("啊啊啊", "zh")]}

    assert cli.main(["review", "list"]) == 0
    out = capsys.readouterr().out
    assert "昨天那单积分到了没 ***********" in out and "13812345678" not in out

    assert cli.main(["review", "mark", str(ids["积分余额"]), "nonsense_intent", "--domain", str(domain)]) == 2
    for text, intent in [("昨天那单积分到了没 13812345678", "points_history"), ("积分余额", "ask_points"),
                         ("积分到底还有几分", "ask_points"), ("积分明细", "ask_points"),
                         ("did my points [arrive]", "points_history")]:
        assert cli.main(["review", "mark", str(ids[text]), intent, "--domain", str(domain), "--by", "amy"]) == 0
    assert cli.main(["review", "dismiss", str(ids["啊啊啊"])]) == 0
    capsys.readouterr()

    assert cli.main(["review", "export", "--data", str(data), "--held-out", str(held)]) == 0
    out = capsys.readouterr().out
    assert "left out, in the held-out evaluation set" in out
    assert "left out, already an example of points_history" in out

    zh = review.parse_examples((data / "zh" / "review.yml").read_text(encoding="utf-8"))
    # Masked, once, under the reviewer's intent; "积分余额" is already an example of ask_points.
    assert zh == {"points_history": ["昨天那单积分到了没 ***********"]}
    en = review.parse_examples((data / "en" / "review.yml").read_text(encoding="utf-8"))
    assert en == {"points_history": ["did my points ［arrive］"]}
    exported = {i.text for i in db.run(review.messages, status="exported", readonly=True)}
    assert exported == {"昨天那单积分到了没 ***********", "积分余额", "did my points [arrive]"}
    left = {i.text for i in db.run(review.messages, status="reviewed", readonly=True)}
    assert left == {"积分到底还有几分", "积分明细"}

    # A second export adds nothing twice.
    _record("积分咋还没到", language="zh")
    new = db.run(review.messages, readonly=True)[0]
    db.run(review.review, new.id, "points_history", by="amy")
    assert cli.main(["review", "export", "--data", str(data), "--held-out", str(held)]) == 0
    zh = review.parse_examples((data / "zh" / "review.yml").read_text(encoding="utf-8"))
    assert zh == {"points_history": ["昨天那单积分到了没 ***********", "积分咋还没到"]}


def test_the_export_is_rasa_nlu_yaml(tmp_path: Path) -> None:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    item = review.ReviewItem(1, "积分到了吗 ***", "zh", "wechat", "fallback", "complain", 0.5, None, None, 1,
                             db.utcnow(), "reviewed", "points_history", "amy")
    merge = review.merge_reviewed(None, [item], known={})
    td = RasaYAMLReader().reads(merge.text)
    assert [(m.get("text"), m.get("intent")) for m in td.intent_examples] == [("积分到了吗 ***", "points_history")]
