"""``python -m bot.rasa_run run …``: Rasa's command line, with our logging set up before Rasa is imported.

Rasa, TensorFlow and their dependencies log and warn while they are imported,
before any of our code would otherwise run; importing ``bot`` first
(``LOG_FORMAT=json``, see ``bot/__init__.py``) turns those lines into JSON and
masks personal data in them too. The launcher starts Rasa this way.
"""

from __future__ import annotations

import sys

from bot import logs

if __name__ == "__main__":
    logs.configure()
    from rasa.__main__ import main

    sys.argv[0] = "rasa"
    main()
