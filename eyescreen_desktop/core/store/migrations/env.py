"""Alembic's environment for the clinic database, run by ``store.migrate`` on the
store's own connection (``config.attributes["connection"]``): no alembic.ini,
no URL of its own. To write a new revision in a checkout:
``alembic -c /dev/null -x ... revision`` is not needed; copy the newest file in
``versions/``, give it the next number and set ``down_revision``."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite",
                  transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
