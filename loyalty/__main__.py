"""``python -m loyalty``: the staff command line (see :mod:`loyalty.cli`)."""

from loyalty.cli import main

raise SystemExit(main())
