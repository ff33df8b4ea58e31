"""Every SQL statement on the monitor database lives in monitor/store/ (or the
migrations): the rest of the package calls Store's named methods. match/ and
query.py are the exceptions by design: their in-memory SQLite (the percolator,
the query validator) never sees the archive."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"
ALLOWED = {"migrations.py", "query.py"}
SQL_CALL = re.compile(r"\.(query|execute|executemany)\(|\bdb\.table\(|\bstore\.(conn|db)\b")


def test_no_sql_outside_the_store() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "store" or str(rel) in ALLOWED or rel.parts[0] == "match":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SQL_CALL.search(line):
                found.append(f"monitor/{rel}:{n}: {line.strip()}")
    assert found == []


def test_store_is_a_package_of_table_families() -> None:
    from monitor.store import Store

    families = {cls.__module__ for cls in Store.__mro__ if cls.__module__.startswith("monitor.")}
    assert {"monitor.store.db", "monitor.store.feeds", "monitor.store.items",
            "monitor.store.topics", "monitor.store.search", "monitor.store.reports",
            "monitor.store.maintenance", "monitor.store.jobs"} <= families
