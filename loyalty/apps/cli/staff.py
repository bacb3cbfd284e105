"""Accounts of the staff web app (marketing, store managers, supervisors)."""

from __future__ import annotations

import argparse
from typing import Any

from loyalty import db
from loyalty.apps.cli.access import new_password
from loyalty.apps.cli.common import EXIT_OK, command_group, table, text_of
from loyalty.staff import service as staff


def cmd_staff_create(a: argparse.Namespace) -> int:
    view = db.run(staff.create_staff, a.username, new_password(a), role=a.role, store=a.store,
                  display_name=a.name, actor=a.actor)
    where = f" of store {view.store_code}" if view.store_code else ""
    print(f"{view.role} {view.username!r}{where} created; they log in at /staff/ on the staff app")
    return EXIT_OK


def cmd_staff_password(a: argparse.Namespace) -> int:
    view = db.run(staff.set_password, a.username, new_password(a), actor=a.actor)
    print(f"password of {view.username!r} reset; their open sessions ended")
    return EXIT_OK


def cmd_staff_list(a: argparse.Namespace) -> int:
    rows = [(v.username, v.display_name, v.role, v.store_code or "all", "active" if v.active else "deactivated")
            for v in db.run(staff.accounts, readonly=True)]
    if not rows:
        print("no staff accounts yet: python -m loyalty staff create NAME --role supervisor")
    else:
        table(("username", "name", "role", "store", "state"), rows)
    return EXIT_OK


def add_staff(sub: Any) -> None:
    g = command_group(sub, "staff", "staff web app accounts (dashboard, campaigns, QR sheets, review)")
    c = g.add_parser("create", help="create a staff account (password asked, never on the command line)")
    c.add_argument("username", type=text_of(32))
    c.add_argument("--role", choices=("marketing", "store_manager", "supervisor"), required=True)
    c.add_argument("--store", type=text_of(32), help="the store code of a store manager")
    c.add_argument("--name", type=text_of(50), help="name shown in the app (default the username)")
    c.set_defaults(func=cmd_staff_create)
    p = g.add_parser("password", help="reset a staff member's password and end their sessions")
    p.add_argument("username", type=text_of(32))
    p.set_defaults(func=cmd_staff_password)
    for sp in (c, p):
        sp.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
        sp.add_argument("--actor", type=text_of(64), default="cli", help="who does it, for the audit log")
    g.add_parser("list", help="list the staff accounts").set_defaults(func=cmd_staff_list)
