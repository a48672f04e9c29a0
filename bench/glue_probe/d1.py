"""D1 for bench/glue_probe: statements batches as JSON lines on stdin, D1-shaped results on stdout (sqlite3)."""

import json
import sqlite3
import sys
from pathlib import Path

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA synchronous=OFF")
for migration in sorted(Path(sys.argv[2]).glob("*.sql")):
    conn.executescript("BEGIN;\n" + migration.read_text() + "\nCOMMIT;")


def run(batch: list[list]) -> object:
    out = []
    conn.execute("BEGIN")
    try:
        for sql, params in batch:
            before = conn.total_changes
            cur = conn.execute(sql, params)
            rows = cur.fetchall()
            cols = [d[0] for d in cur.description] if cur.description else []
            out.append({"results": [dict(zip(cols, r, strict=True)) for r in rows], "success": True,
                        "meta": {"changes": conn.total_changes - before, "duration": 0}})
        conn.execute("COMMIT")
    except Exception as exc:
        conn.execute("ROLLBACK")
        return {"error": f"D1_ERROR: {exc}"}
    return out


for line in sys.stdin:
    sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
    sys.stdout.flush()
