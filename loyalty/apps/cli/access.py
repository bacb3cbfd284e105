"""Who may use the system: the tills' API keys and the agent console's accounts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loyalty import db
from loyalty.apps.cli.common import (
    EXIT_OK,
    UsageError,
    command_group,
    local_time,
    optional_module,
    parse_source,
    table,
    text_of,
)


def cmd_apikey_create(a: argparse.Namespace) -> int:
    apikeys = optional_module("loyalty.apikeys.service", "apikey")
    key = db.run(apikeys.create_api_client, a.source, actor=a.actor)
    print(key)
    print(f"API key for {a.source!r} created. It is shown this once: put it in that system's configuration "
          "now (header Authorization: Bearer <key>).", file=sys.stderr)
    return EXIT_OK


def cmd_apikey_rotate(a: argparse.Namespace) -> int:
    apikeys = optional_module("loyalty.apikeys.service", "apikey")
    key = db.run(apikeys.rotate_key, a.source, actor=a.actor)
    print(key)
    print(f"New API key for {a.source!r}; the old one stopped working. It is shown this once.", file=sys.stderr)
    return EXIT_OK


def cmd_apikey_revoke(a: argparse.Namespace) -> int:
    apikeys = optional_module("loyalty.apikeys.service", "apikey")
    was_active = db.run(apikeys.deactivate, a.source, actor=a.actor)
    print(f"API key of {a.source!r} revoked" if was_active else f"API key of {a.source!r} was already revoked")
    return EXIT_OK


def cmd_apikey_list(a: argparse.Namespace) -> int:
    apikeys = optional_module("loyalty.apikeys.service", "apikey")
    rows = [(c.source, "active" if c.active else "revoked", local_time(c.created_at))
            for c in db.run(apikeys.clients, readonly=True)]
    if not rows:
        print("no API keys yet: python -m loyalty apikey create pos")
    else:
        table(("source", "state", "created"), rows)
    return EXIT_OK


def new_password(a: argparse.Namespace) -> str:
    """The password from stdin (--password-stdin) or typed twice at a prompt; never from argv."""
    if a.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask the password on: pipe it with --password-stdin")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    return password


def cmd_agent_create(a: argparse.Namespace) -> int:
    auth = optional_module("loyalty.handoff.auth", "agent")
    password = new_password(a)
    view = db.run(auth.create_agent, a.username, password, role=a.role, display_name=a.name, actor=a.actor)
    print(f"{view.role} {view.username!r} created; they log in at /webhooks/console/")
    return EXIT_OK


def cmd_agent_password(a: argparse.Namespace) -> int:
    auth = optional_module("loyalty.handoff.auth", "agent")
    view = db.run(auth.set_password, a.username, new_password(a), actor=a.actor)
    print(f"password of {view.username!r} reset; their open sessions ended")
    return EXIT_OK


def cmd_agent_deactivate(a: argparse.Namespace) -> int:
    auth = optional_module("loyalty.handoff.auth", "agent")
    view = db.run(auth.set_active, a.username, False, actor=a.actor)
    print(f"{view.username!r} can no longer log in")
    return EXIT_OK


def cmd_agent_list(a: argparse.Namespace) -> int:
    auth = optional_module("loyalty.handoff.auth", "agent")
    rows = [(v.username, v.display_name, v.role, "active" if v.active else "deactivated")
            for v in db.run(auth.agents, active_only=False, readonly=True)]
    if not rows:
        print("no agents yet: python -m loyalty agent create NAME --role supervisor")
    else:
        table(("username", "name", "role", "state"), rows)
    return EXIT_OK


def add_apikey(sub: Any) -> None:
    kg = command_group(sub, "apikey", "API keys of tills and web shops")
    for name, fn, text in (("create", cmd_apikey_create, "create a key (printed once)"),
                           ("rotate", cmd_apikey_rotate, "replace a key (printed once)"),
                           ("revoke", cmd_apikey_revoke, "stop a key from working")):
        k = kg.add_parser(name, help=text)
        k.add_argument("source", type=parse_source)
        k.add_argument("--actor", type=text_of(64), default="cli", help="who does it, for the audit log")
        k.set_defaults(func=fn)
    kg.add_parser("list", help="list the API clients").set_defaults(func=cmd_apikey_list)


def add_agent(sub: Any) -> None:
    ag = command_group(sub, "agent", "agent console accounts (human takeover)")
    ac = ag.add_parser("create", help="create an agent or supervisor (password asked, never on the command line)")
    ac.add_argument("username", type=text_of(32))
    ac.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    ac.add_argument("--name", type=text_of(50), help="name shown to shoppers and colleagues (default the username)")
    ac.set_defaults(func=cmd_agent_create)
    ap = ag.add_parser("password", help="reset an agent's password and end their sessions")
    ap.add_argument("username", type=text_of(32))
    ap.set_defaults(func=cmd_agent_password)
    for sp in (ac, ap):
        sp.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    ad = ag.add_parser("deactivate", help="stop an agent from logging in")
    ad.add_argument("username", type=text_of(32))
    ad.set_defaults(func=cmd_agent_deactivate)
    for sp in (ac, ap, ad):
        sp.add_argument("--actor", type=text_of(64), default="cli", help="who does it, for the audit log")
    ag.add_parser("list", help="list the agents").set_defaults(func=cmd_agent_list)
