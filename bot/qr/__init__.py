"""Printable store QR codes: what each code encodes, its PNG/SVG rendering, its HTTP route and a CLI.

Scanning a store's code attributes the conversation (and a signup) to the
store. With WeChat configured (app id and secret) the code is a permanent
WeChat parametric QR code whose scene string is the store code; WeChat allows
only 100,000 permanent codes per account, so each store's code is created once
and kept in a JSON file under ``var/qr/`` (tickets). Without WeChat the code
links to the web chat with ``?store=<code>`` (codes).

- codes: what a store's code encodes (WeChat ticket URL or web chat link);
- tickets: the permanent WeChat tickets, created once per store;
- render: PNG and SVG posters with the store's name under the code;
- routes: ``GET /webhooks/qr/<code>.png|svg``, mounted as a channel in credentials.yml;
- cli: ``python -m bot.qr --all --out posters/``.
"""


class QrError(Exception):
    """A store QR code could not be made; the message says why, for people."""
