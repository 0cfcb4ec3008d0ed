"""A job store file as an earlier version of the code left it, for the upgrade tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from classifier_common.store import sqlite as sqlite_module


def schema_v3_file(path: Path, *rows: str) -> Path:
    """A SQLite job store at schema v3 (before listing, the queue index, batches and uploads),
    with ``rows`` (INSERT statements) in it."""
    with sqlite3.connect(path) as conn:
        for script in (sqlite_module._SCHEMA, sqlite_module._MIGRATIONS[2], sqlite_module._MIGRATIONS[3]):
            conn.executescript(script)
        for row in rows:
            conn.execute(row)
        conn.execute("PRAGMA user_version = 3")
    return path
