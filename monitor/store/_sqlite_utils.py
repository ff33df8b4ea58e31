"""sqlite-utils imported without numpy and pandas.

sqlite-utils imports numpy and pandas whenever they are installed (another
package may bring them), only to map their scalar types to column types when
it creates tables from values. The monitor's tables come from its migrations and
it never hands sqlite-utils an array value, so those ~40 ms (numpy; pandas
costs more) are kept off every command that opens the database.
"""

from __future__ import annotations

import sys


def _import_without_arrays() -> None:
    if "sqlite_utils.db" in sys.modules:
        return
    blocked = {name: sys.modules.get(name) for name in ("numpy", "pandas")
               if name not in sys.modules}
    # None in sys.modules makes the import raise ImportError, which sqlite-utils expects.
    sys.modules.update(dict.fromkeys(blocked))  # type: ignore[arg-type]
    try:
        import sqlite_utils.db  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]  # importable again for whoever needs it


_import_without_arrays()
