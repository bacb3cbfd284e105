"""The agent console for human takeover (转人工), served inside the Rasa server.

channel: the Rasa input channel mounting it; api: routes; broker: the Rasa
event broker that feeds it; conversation: tracker operations; live: pushes
to open consoles; static/: the single-page app.
"""
