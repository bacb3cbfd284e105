"""The WeChat official-account channel.

channel: the Rasa input channel; small modules each with one job: request
security, callback parsing, reply XML, the API client and its access token,
retry dedup, per-shopper state, delivery and its rules for agents (rules);
dev/: the local fake WeChat API and the callback player (development only).
"""
