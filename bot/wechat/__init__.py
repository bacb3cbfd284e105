"""WeChat official-account plumbing used by :mod:`bot.channels.wechat`.

Small modules, each with one job: request security, callback parsing, reply XML,
the API client and its access token, retry dedup, per-shopper state, and the
local fake WeChat API server used by tests and development.
"""
