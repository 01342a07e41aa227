"""A declared table made real: created when missing, a declared column added
when the table lacks it, and start-up stopped, with what to do, when the
database holds what the declaration would lose.

Added columns are nullable; one with a default gets it in the existing rows
(a callable default, such as ``'now'``, leaves them null). A column the
database has but the declaration lacks, or whose type differs, is never
dropped or converted here: that is the product owner's decision, made by hand.
The whole check runs in one transaction, under SQLite's write lock or a
PostgreSQL advisory lock, so that processes starting together agree.
"""
import logging

import sqlalchemy as sa

from apiphant.product import ProductError

__all__ = ['SchemaError', 'prepare', 'differences']

log = logging.getLogger('apiphant.crud')


class SchemaError(ProductError):
    """The table in the database and its declaration differ in a way that
    would lose data; the message says what and how to resolve it."""


def prepare(database, table):
    """Create or extend ``table`` (a ``Table``) in ``database``."""
    sql = table.sql
    with database.transaction(timeout=None) as connection:  # a table's first column may take long
        if connection.dialect.name == 'postgresql':
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended("
                                       "current_schema() || '.apiphant.crud.' || :name, 0))"),
                               {'name': sql.name})
        inspector = sa.inspect(connection)
        if not inspector.has_table(sql.name):
            sql.create(connection)
            log.info('created table %s in %s', sql.name, database)
            return
        existing = {column['name']: column['type'] for column in inspector.get_columns(sql.name)}
        added, problems = differences(table, existing)
        if problems:
            raise SchemaError(f'table {sql.name} in {database} differs from its declaration in '
                              f'{table.module}: ' + '; '.join(problems))
        preparer = connection.dialect.identifier_preparer
        for column in added:
            sql_column = sql.c[column.name]
            connection.exec_driver_sql(
                f'ALTER TABLE {preparer.format_table(sql)} ADD COLUMN '
                f'{preparer.format_column(sql_column)} {sql_column.type.compile(dialect=connection.dialect)}')
            if column.constant_default is not None:
                connection.execute(sa.update(sql).values({column.name: column.constant_default}))
            log.info('added column %s to table %s in %s', column.name, sql.name, database)


def differences(table, existing):
    """``(columns to add, problems)`` of a declaration against ``existing``
    (``{name: SQLAlchemy type}``, as reflected)."""
    problems = []
    for name in ('id', 'version'):
        if name not in existing:
            problems.append(f'it has no column {name}, so apiphant did not make it; '
                            f'declare the table under another name')
    added = []
    for name, column in table.columns.items():
        if name not in existing:
            added.append(column)
        elif _python_type(existing[name]) is not column.kind.python_type:
            problems.append(f'column {name} is {existing[name]} in the database but declared '
                            f'{column.kind.name}; converting it could lose data: convert it yourself '
                            f'(ALTER TABLE), or declare a new column under another name')
    for name, sql_type in existing.items():
        if name not in table.columns and name not in ('id', 'version'):
            problems.append(f'column {name} ({sql_type}) is no longer declared; dropping it would '
                            f'lose its data: declare it again (hidden=True keeps it out of the API), '
                            f'or drop it yourself: ALTER TABLE {table.sql.name} DROP COLUMN {name}')
    return added, problems


def _python_type(sql_type):
    try:
        return sql_type.python_type
    except NotImplementedError:
        return None
