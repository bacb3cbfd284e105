"""Files with shoppers' data or secrets are their owner's alone.

The databases (loyalty and tracker SQLite files with their -wal/-shm/-journal
companions) and the generated secrets live in ``var/``. The launcher calls
:func:`private_files` before it starts anything: a umask of 077 makes every
file the processes create owner-only, whichever library creates it (Rasa's
tracker store opens its SQLite file itself), and files and the folder left
readable by an older version are tightened.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".secret")


def _tighten(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(mode)
    except OSError as exc:  # not ours to change: say so rather than stop the start
        log.warning("cannot restrict %s to its owner: %s", path, exc.strerror)


def secure_var(var_dir: Path) -> None:
    """Create ``var_dir`` 0700 and restrict the databases and secrets already in it to 0600."""
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(var_dir, 0o700)
    for path in var_dir.iterdir():
        if path.is_file() and path.name.endswith(PRIVATE_SUFFIXES):
            _tighten(path, 0o600)


def private_files(var_dir: Path) -> None:
    """From now on this process and its children create files for their owner only."""
    os.umask(0o077)
    secure_var(var_dir)
