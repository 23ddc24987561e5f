"""A read-only database for a whole dispatch stack, switched by a file.

Put this directory on PYTHONPATH and DISPATCH_TEST_READONLY_FLAG in the
environment: while the flag file exists, every INSERT, UPDATE or DELETE in
any dispatch process fails as SQLite fails on a read-only or full database
(Django's OperationalError), and reads keep working. A chmod of the file
would not do: SQLite keeps the descriptors it opened read-write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FLAG = os.environ.get("DISPATCH_TEST_READONLY_FLAG")
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

if FLAG:
    from django.db.backends.signals import connection_created
    from django.db.utils import OperationalError

    def refuse_writes(
        execute: Any, sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if Path(str(FLAG)).exists() and sql.lstrip().upper().startswith(WRITES):
            raise OperationalError("attempt to write a readonly database")
        return execute(sql, params, many, context)

    def install(sender: Any, connection: Any, **kwargs: Any) -> None:
        if refuse_writes not in connection.execute_wrappers:
            connection.execute_wrappers.append(refuse_writes)

    connection_created.connect(install, weak=False)
