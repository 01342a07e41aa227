"""A declared table made real: created when missing, a declared column,
constraint or index added when the table lacks it, and start-up stopped,
with what to do, when the database holds what the declaration would lose or
rows that break a new rule.

An added column with a default gets it in the existing rows (a callable
default, such as ``'now'``, its value at that moment, as PostgreSQL's
``DEFAULT now()`` would). NOT NULL (a required column, or one with a
default) and the CHECK of ``choices`` are added to a table that lacks them,
in PostgreSQL by ``ALTER TABLE``, in SQLite, which cannot alter a column, by
copying the table into a new one in the same transaction (ids and the
``AUTOINCREMENT`` counter kept). Rows that hold NULL or a value outside the
choices stop start-up with the statement that finds or fixes them.

Indexes (``unique`` too) missing from a table that already exists are
built, in PostgreSQL, by ``CREATE INDEX CONCURRENTLY`` after the
transaction, so that a big table keeps taking writes while its index is
built (a unique one that finds duplicates is dropped again, and start-up
stops naming the statement that lists them).

A column the database has but the declaration lacks, or whose type differs,
is never dropped or converted here: that is the product owner's decision,
made by hand. The check runs in one transaction, under SQLite's write lock
or a PostgreSQL advisory lock, so that processes starting together agree.
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
    outer = database.in_transaction()
    with database.transaction(timeout=None) as connection:  # a table's first column may take long
        if connection.dialect.name == 'postgresql':
            connection.execute(sa.text('SELECT pg_advisory_xact_lock(' + _KEY + ')'), {'name': sql.name})
        inspector = sa.inspect(connection)
        if not inspector.has_table(sql.name):
            sql.create(connection)
            log.info('created table %s in %s', sql.name, database)
            return
        columns = {column['name']: column for column in inspector.get_columns(sql.name)}
        added, problems = differences(table, {name: column['type'] for name, column in columns.items()})
        if problems:
            raise SchemaError(f'table {sql.name} in {database} differs from its declaration in '
                              f'{table.module}: ' + '; '.join(problems))
        rows = connection.execute(sa.select(sa.func.count()).select_from(sql)).scalar_one()
        for column in added:
            _add_column(connection, table, column, rows, database)
        loose = [column for column in table.columns.values() if not column.nullable
                 and (column in added or columns[column.name]['nullable'])]
        checks = {check['name'] for check in inspector.get_check_constraints(sql.name)}
        unchecked = [constraint for constraint in sql.constraints
                     if isinstance(constraint, sa.CheckConstraint) and constraint.name not in checks]
        _no_nulls(connection, table, loose, database)
        if loose or unchecked:
            _tighten(connection, table, loose, unchecked, database)
        present = {index['name'] for index in sa.inspect(connection).get_indexes(sql.name)}
        missing = [index for index in sql.indexes if index.name not in present]
        if connection.dialect.name == 'sqlite' or not rows or outer:
            for index in missing:
                _create_index(connection, table, index, database, concurrently=False)
            missing = []
    for index in missing:  # outside the transaction: CONCURRENTLY cannot run in one
        with database.connect(timeout=None) as connection:
            key = {'name': f'{sql.name}.{index.name}'}
            connection.execute(sa.text('SELECT pg_advisory_lock(' + _KEY + ')'), key)
            try:
                _create_index(connection, table, index, database, concurrently=True)
            finally:
                connection.execute(sa.text('SELECT pg_advisory_unlock(' + _KEY + ')'), key)


_KEY = "hashtextextended(current_schema() || '.apiphant.crud.' || :name, 0)"


def _add_column(connection, table, column, rows, database):
    sql = table.sql
    if column.required and rows:
        raise SchemaError(
            f'column {column.name} of {sql.name} in {database} is declared required, and the table has '
            f'{rows} rows that would hold NULL: declare it with a default (the rows get it), or add it '
            f'yourself and start again: ALTER TABLE {sql.name} ADD COLUMN {column.name} '
            f'{_type(connection, sql.c[column.name])}; UPDATE {sql.name} SET {column.name} = ... '
            f'WHERE {column.name} IS NULL')
    preparer = connection.dialect.identifier_preparer
    connection.exec_driver_sql(
        f'ALTER TABLE {preparer.format_table(sql)} ADD COLUMN '
        f'{preparer.format_column(sql.c[column.name])} {_type(connection, sql.c[column.name])}')
    if column.default is not None and rows:
        connection.execute(sa.update(sql).values({column.name: column.initial()}))
    log.info('added column %s to table %s in %s', column.name, sql.name, database)


def _no_nulls(connection, table, columns, database):
    """SchemaError, with the statement to run, when rows hold NULL in a
    column about to be NOT NULL."""
    sql = table.sql
    for column in columns:
        nulls = connection.execute(sa.select(sa.func.count()).select_from(sql)
                                   .where(sql.c[column.name].is_(None))).scalar_one()
        if nulls:
            value = '...' if column.constant_default is None else _literal(connection, sql.c[column.name],
                                                                           column.constant_default)
            raise SchemaError(
                f'column {column.name} of {sql.name} in {database} is declared '
                f'{"required" if column.required else "with a default"}, so it is NOT NULL, but {nulls} rows '
                f'hold NULL there: give them a value and start again: '
                f'UPDATE {sql.name} SET {column.name} = {value} WHERE {column.name} IS NULL')


def _tighten(connection, table, loose, unchecked, database):
    """Add NOT NULL to ``loose`` columns and the ``unchecked`` CHECKs."""
    sql = table.sql
    preparer = connection.dialect.identifier_preparer
    try:
        if connection.dialect.name == 'sqlite':
            _copy(connection, table)
        else:
            for column in loose:
                connection.exec_driver_sql(f'ALTER TABLE {preparer.format_table(sql)} ALTER COLUMN '
                                           f'{preparer.format_column(sql.c[column.name])} SET NOT NULL')
            for constraint in unchecked:
                connection.execute(sa.schema.AddConstraint(constraint))
    except sa.exc.IntegrityError:
        raise SchemaError(
            f'rows of {sql.name} in {database} hold values outside the choices now declared; change '
            f'them and start again; they are: ' + '; '.join(
                f'SELECT * FROM {sql.name} WHERE NOT ({_check_text(connection, constraint)})'
                for constraint in unchecked)) from None
    log.info('table %s in %s: NOT NULL on %s, checks %s', sql.name, database,
             ', '.join(c.name for c in loose) or 'nothing new', ', '.join(c.name for c in unchecked) or 'none new')


def _copy(connection, table):
    """SQLite: the table copied into one made from the declaration, which
    then takes its name (SQLite cannot add NOT NULL or CHECK to a table)."""
    sql = table.sql
    preparer = connection.dialect.identifier_preparer
    copy = sql.to_metadata(sa.MetaData(), name=f'{sql.name}__apiphant_copy')
    for index in list(copy.indexes):
        copy.indexes.discard(index)
    copy.create(connection)
    names = ', '.join(preparer.format_column(column) for column in sql.c)
    counter = connection.execute(sa.text('SELECT seq FROM sqlite_sequence WHERE name = :name'),
                                 {'name': sql.name}).scalar()
    connection.exec_driver_sql(f'INSERT INTO {preparer.format_table(copy)} ({names}) '
                               f'SELECT {names} FROM {preparer.format_table(sql)}')
    connection.exec_driver_sql(f'DROP TABLE {preparer.format_table(sql)}')
    connection.exec_driver_sql(f'ALTER TABLE {preparer.format_table(copy)} RENAME TO {preparer.format_table(sql)}')
    if counter is not None:  # ids of rows deleted before are never given again
        connection.execute(sa.text('UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :name'),
                           {'seq': counter, 'name': sql.name})


def _create_index(connection, table, index, database, *, concurrently):
    sql = table.sql
    text = str(sa.schema.CreateIndex(index, if_not_exists=True).compile(dialect=connection.dialect))
    if concurrently:
        text = text.replace('CREATE UNIQUE INDEX', 'CREATE UNIQUE INDEX CONCURRENTLY', 1).replace(
            'CREATE INDEX', 'CREATE INDEX CONCURRENTLY', 1)
    try:
        connection.exec_driver_sql(text)
    except sa.exc.IntegrityError:
        if concurrently:  # the failed build leaves an invalid index behind
            connection.exec_driver_sql(f'DROP INDEX IF EXISTS {_quoted(connection, index.name)}')
        names = ', '.join(column.name for column in index.columns)
        raise SchemaError(
            f'{sql.name} in {database}: rows share values of ({names}), declared unique; find them, '
            f'change them and start again: SELECT {names}, count(*) FROM {sql.name} GROUP BY {names} '
            f'HAVING count(*) > 1') from None
    log.info('%s index %s on %s in %s', 'built' + (' concurrently' if concurrently else ''),
             index.name, sql.name, database)


def _quoted(connection, name):
    return connection.dialect.identifier_preparer.quote(name)


def _type(connection, sql_column):
    return sql_column.type.compile(dialect=connection.dialect)


def _literal(connection, sql_column, value):
    return str(sa.literal(value, sql_column.type).compile(dialect=connection.dialect,
                                                          compile_kwargs={'literal_binds': True}))


def _check_text(connection, constraint):
    return str(constraint.sqltext.compile(dialect=connection.dialect, compile_kwargs={'literal_binds': True}))


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
