"""Everything the conversation needs around Rasa: channels, web chat, console, NLU parts."""

import os

if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    # Before any library logs or warns: `python -m bot.action_server` and `python -m bot.rasa_run` import this first.
    from bot import logs

    logs.configure()
