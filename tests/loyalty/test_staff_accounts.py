"""Staff accounts: created by the CLI, a store manager with a known store, logins through the agents' throttle."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from loyalty import db
from tests.loyalty.test_reports import _stores


def test_the_cli_creates_staff_accounts_a_manager_with_a_known_store(
    engine: Engine, monkeypatch: Any, capsys: Any
) -> None:
    import io

    from loyalty.apps import cli
    from loyalty.staff import service as staff

    _stores()
    pw = "correct horse battery"
    monkeypatch.setattr("sys.stdin", io.StringIO(pw + "\n"))
    assert cli.main(["staff", "create", "Wang", "--role", "store_manager", "--store", "ra1", "--password-stdin"]) == 0
    assert "store_manager 'wang' of store RA1 created" in capsys.readouterr().out
    result = staff.login("wang", pw, address="203.0.113.9")
    assert result.agent is not None and result.agent.store_id is not None
    assert staff.login("wang", "wrong password!", address="203.0.113.9").error == "bad_credentials"
    for args, code in ((["--role", "store_manager"], "store_needed"),
                       (["--role", "store_manager", "--store", "NOPE"], "unknown_store"),
                       (["--role", "marketing", "--store", "RA1"], "store_not_allowed")):
        monkeypatch.setattr("sys.stdin", io.StringIO(pw + "\n"))
        assert cli.main(["staff", "create", "lilei", *args, "--password-stdin"]) != 0
        assert code in capsys.readouterr().err
    assert [v.username for v in db.run(staff.accounts, readonly=True)] == ["wang"]
