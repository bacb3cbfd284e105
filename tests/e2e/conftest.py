"""The running assistant (Rasa + action server) on a fresh, lightly seeded SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty import db, migrate
from loyalty.catalogue.models import Store
from loyalty.coupons import service as coupons
from tests.support.stack import Stack, require_model, start_stack


def seed_minimal(url: str) -> None:
    """Two stores and the campaigns the conversations use."""
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    db.configure(engine)

    def fill(s):  # type: ignore[no-untyped-def]
        s.add_all([
            Store(code="SH001", name_zh="上海静安店", name_en="Shanghai Jing'an", city="上海"),
            Store(code="BJ001", name_zh="北京三里屯店", name_en="Beijing Sanlitun", city="北京"),
        ])
        coupons.create_campaign(s, code="WELCOME", name_zh="新人礼 满50减10", name_en="Welcome: 10 off 50",
                                kind="threshold", threshold_fen=5000, discount_fen=1000, valid_days=30,
                                audience="welcome", per_member_limit=1)
        coupons.create_campaign(s, code="SAVE20", name_zh="满100减20", name_en="20 off 100",
                                kind="threshold", threshold_fen=10000, discount_fen=2000, valid_days=30,
                                total_stock=100, per_member_limit=1)
        coupons.create_campaign(s, code="PCT15", name_zh="全场85折", name_en="15% off everything",
                                kind="percent", percent_off=15, valid_days=14, total_stock=1, per_member_limit=1)
        coupons.create_campaign(s, code="TOTE", name_zh="积分换购帆布袋", name_en="Tote bag for points",
                                kind="gift", gift_sku="GIFT-TOTE", valid_days=60, points_cost=100,
                                total_stock=50, per_member_limit=2)

    db.run(fill)


@pytest.fixture(scope="session")
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_model()
    work: Path = tmp_path_factory.mktemp("stack")
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    # WeChat and Rasa's REST channel too: the input limits are checked on every way in.
    s = start_stack(work, url, wechat=True, rest=True)
    yield s
    s.stop()


@pytest.fixture
def stack(_stack: Stack) -> Iterator[Stack]:
    """The shared running assistant, with this process's core pointed at its database again
    (other e2e modules start stacks of their own on other databases)."""
    engine = db.make_engine(_stack.database_url)
    db.configure(engine)
    yield _stack
    engine.dispose()
