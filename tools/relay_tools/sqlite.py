"""The D1 stand-in: the same migrations and the same SQL, on a SQLite file."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relay.core.errors import LedgerError
from relay.core.ports import QueryResult
from relay_tools.edges import private_dir

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def private_file(path: Path) -> None:
    """The database file, readable by this user only: it holds unhashed IP addresses and user agents.

    Created 0600 in a folder created 0700 (relay_tools.edges.private_dir); SQLite gives its -wal and
    -shm files the database file's mode. A file an older version left readable to others is tightened.
    """
    private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    elif path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o600)


class SqliteDatabase:
    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            private_file(Path(path))
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")

    def migrate(self, folder: Path = MIGRATIONS) -> list[str]:
        """Apply ``migrations/*.sql`` not applied yet, tracked like wrangler's ``d1_migrations`` table."""
        if not folder.is_dir():
            raise LedgerError(f"migrations folder {folder} not found; run relay from a checkout of the project")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, "
            "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)")
        done = {r["name"] for r in self.conn.execute("SELECT name FROM d1_migrations")}
        applied = []
        for file in sorted(folder.glob("*.sql")):
            if file.name in done:
                continue
            self.conn.executescript("BEGIN;\n" + file.read_text() + "\nCOMMIT;")
            self.conn.execute("INSERT INTO d1_migrations (name) VALUES (?)", (file.name,))
            applied.append(file.name)
        return applied

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        try:
            cursor = self.conn.execute(sql, tuple(params))
            rows = [dict(r) for r in cursor.fetchall()]
            return QueryResult(rows, cursor.rowcount if cursor.rowcount > 0 else 0)
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger statement failed ({exc}); check that migrations are applied") from exc

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        results = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                cursor = self.conn.execute(sql, tuple(params))
                results.append(QueryResult([dict(r) for r in cursor.fetchall()], max(cursor.rowcount, 0)))
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            raise LedgerError(f"ledger batch failed ({exc}); nothing was written") from exc
        return results

    def close(self) -> None:
        self.conn.close()
