"""Migrations under lock_timeout and statement_timeout (docs/release.md#migrations).

An ALTER TABLE queued behind one long transaction holds every later query on that table behind it: the
site waits for the migration, which waits for the transaction. Each transaction a migration opens on
PostgreSQL starts with `SET LOCAL lock_timeout` and `SET LOCAL statement_timeout`: the migration gives up,
rolls back (Django runs PostgreSQL migrations in a transaction each) and fails the deploy instead.

`SET LOCAL` ends with its transaction, so it holds on the server connection the statements run on even
through PgBouncer in transaction mode (the chart's), and leaks to no other client; session settings and
startup parameters do neither. (django-pg-zero-downtime-migrations sets session timeouts and runs
migrations outside transactions, which is why it is not used here.) Statements outside a transaction
(a migration with `atomic = False`, e.g. `CREATE INDEX CONCURRENTLY`) run without them."""

from __future__ import annotations

from contextlib import contextmanager


class TimeoutsPerTransaction:
    """A Django execute wrapper: the timeouts first in every transaction of an atomic block."""

    def __init__(self, lock_timeout: int, statement_timeout: int):
        self.setup = (f"SET LOCAL lock_timeout = '{int(lock_timeout)}s'",
                      f"SET LOCAL statement_timeout = '{int(statement_timeout)}s'")

    def __call__(self, execute, sql, params, many, context):
        connection = context["connection"]
        if connection.in_atomic_block and not self.in_transaction(connection):
            for statement in self.setup:
                execute(statement, None, False, context)
        return execute(sql, params, many, context)

    @staticmethod
    def in_transaction(connection) -> bool:
        """Whether the server side already has a transaction open (its timeouts were set at its start)."""
        raw = connection.connection
        # IDLE is 0 in both drivers: psycopg's pq.TransactionStatus, psycopg2's TRANSACTION_STATUS_IDLE.
        status = raw.info.transaction_status if hasattr(raw, "info") else raw.get_transaction_status()
        return status != 0


@contextmanager
def timeouts(connection, lock_timeout: int, statement_timeout: int):
    if connection.vendor != "postgresql":
        yield
        return
    with connection.execute_wrapper(TimeoutsPerTransaction(lock_timeout, statement_timeout)):
        yield
