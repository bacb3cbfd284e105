"""``python -m loyalty``: the staff command line (see :mod:`loyalty.apps.cli`)."""

from loyalty.apps.cli import main

raise SystemExit(main())
