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

A reference (``Column(int, references=...)``) is a foreign key. Its table
is prepared after the table it refers to. Added to a table that exists,
its rows are first checked to refer to rows that exist (else start-up
stops with the statement that lists them); then, in PostgreSQL, the
constraint is added ``NOT VALID`` in the transaction and validated after
it (validation does not lock writes out); in SQLite a new column that may
be null takes its ``REFERENCES`` with ``ADD COLUMN``, and any other new or
changed foreign key needs the copy. A copy in SQLite drops the old table,
which, foreign keys being on, would delete or null the rows of other tables
that refer to its rows (or refuse): when any row refers to the table,
start-up stops instead, giving the script to run by hand with foreign keys
off.

A column the database has but the declaration lacks, or whose type differs,
is never dropped or converted here: that is the product owner's decision,
made by hand. The check runs in one transaction, under SQLite's write lock
or a PostgreSQL advisory lock, so that processes starting together agree.
"""
import logging

import sqlalchemy as sa

from apiphant.crud.columns import ON_DELETE, constraint_name
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
        keys, stale = _missing_keys(connection, table)
        if rows:
            _no_dangling(connection, table, keys, database)
        if connection.dialect.name == 'sqlite':
            if loose or unchecked or keys:
                _tighten(connection, table, loose, unchecked, database)
        else:
            if loose or unchecked:
                _tighten(connection, table, loose, unchecked, database)
            unvalidated = _add_keys(connection, table, keys, stale, valid=not rows or outer)
        present = {index['name'] for index in sa.inspect(connection).get_indexes(sql.name)}
        missing = [index for index in sql.indexes if index.name not in present]
        if connection.dialect.name == 'sqlite' or not rows or outer:
            for index in missing:
                _create_index(connection, table, index, database, concurrently=False)
            missing = []
        if connection.dialect.name == 'sqlite':
            unvalidated = []
    for name in unvalidated:  # in a transaction of its own, which takes no lock that stops writes
        with database.transaction(timeout=None) as connection:
            connection.exec_driver_sql(f'ALTER TABLE {_quoted(connection, sql.name)} '
                                       f'VALIDATE CONSTRAINT {_quoted(connection, name)}')
        log.info('validated foreign key %s of %s in %s', name, sql.name, database)
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
    references = ''
    if column.target is not None and connection.dialect.name == 'sqlite' and column.nullable:
        # SQLite adds a foreign key only with its column, one that may be null
        references = (f' CONSTRAINT {_quoted(connection, constraint_name("fk", sql.name, (column.name,)))} '
                      f'REFERENCES {_quoted(connection, column.target.name)} (id) '
                      f'ON DELETE {ON_DELETE[column.on_delete]}')
    connection.exec_driver_sql(
        f'ALTER TABLE {preparer.format_table(sql)} ADD COLUMN '
        f'{preparer.format_column(sql.c[column.name])} {_type(connection, sql.c[column.name])}{references}')
    if column.default is not None and rows:
        connection.execute(sa.update(sql).values({column.name: column.initial()}))
    log.info('added column %s to table %s in %s', column.name, sql.name, database)


def _missing_keys(connection, table):
    """``(declared foreign keys the table lacks, names of those it has
    on the same columns that differ)``."""
    sql = table.sql
    present = {tuple(key['constrained_columns']): key for key in sa.inspect(connection).get_foreign_keys(sql.name)}
    missing, stale = [], []
    for key in sql.foreign_key_constraints:
        found = present.get(tuple(column.name for column in key.columns))
        if found is not None and found['referred_table'] == key.referred_table.name \
                and (found.get('options', {}).get('ondelete') or 'NO ACTION').upper() == key.ondelete:
            continue
        missing.append(key)
        if found is not None and found.get('name'):
            stale.append(found['name'])
    return missing, stale


def _dangling(connection, sql, key):
    """The condition of rows of ``sql`` whose reference ``key`` names no row."""
    column, = key.columns
    target = key.referred_table
    return sa.and_(column.isnot(None), ~sa.exists().where(target.c.id == column))


def _no_dangling(connection, table, keys, database):
    """SchemaError, with the statements, when rows refer to rows that do not exist."""
    sql = table.sql
    for key in keys:
        count = connection.execute(sa.select(sa.func.count()).select_from(sql)
                                   .where(_dangling(connection, sql, key))).scalar_one()
        if count:
            column, = key.columns
            target = key.referred_table.name
            where = f'{column.name} IS NOT NULL AND {column.name} NOT IN (SELECT id FROM {target})'
            raise SchemaError(
                f'column {column.name} of {sql.name} in {database} now references {target}, but {count} rows '
                f'hold ids that no row of {target} has; change them and start again: they are '
                f'SELECT * FROM {sql.name} WHERE {where}; e.g. UPDATE {sql.name} SET {column.name} = NULL '
                f'WHERE {where}')


def _add_keys(connection, table, keys, stale, *, valid):
    """PostgreSQL: drop the ``stale`` foreign keys, add ``keys``; unless
    ``valid``, ``NOT VALID``: the names of those to validate after the
    transaction."""
    quoted = _quoted(connection, table.sql.name)
    for name in stale:
        connection.exec_driver_sql(f'ALTER TABLE {quoted} DROP CONSTRAINT {_quoted(connection, name)}')
    for key in keys:
        text = str(sa.schema.AddConstraint(key).compile(dialect=connection.dialect))
        connection.exec_driver_sql(text if valid else text + ' NOT VALID')
        log.info('added foreign key %s to %s', key.name, table.sql.name)
    return [] if valid else [key.name for key in keys]


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
            _copy(connection, table, database)
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


def _copy(connection, table, database):
    """SQLite: the table copied into one made from the declaration, which
    then takes its name (SQLite cannot add NOT NULL, CHECK or a foreign key
    to a table)."""
    sql = table.sql
    preparer = connection.dialect.identifier_preparer
    metadata = sa.MetaData()
    for key in sql.foreign_key_constraints:  # what the copy's foreign keys name
        if key.referred_table.name not in metadata.tables:
            key.referred_table.to_metadata(metadata)
    copy = sql.to_metadata(metadata, name=f'{sql.name}__apiphant_copy')
    for index in list(copy.indexes):
        copy.indexes.discard(index)
    names = ', '.join(preparer.format_column(column) for column in sql.c)
    counter = connection.execute(sa.text('SELECT seq FROM sqlite_sequence WHERE name = :name'),
                                 {'name': sql.name}).scalar()
    statements = [
        str(sa.schema.CreateTable(copy).compile(dialect=connection.dialect)).strip(),
        f'INSERT INTO {preparer.format_table(copy)} ({names}) SELECT {names} FROM {preparer.format_table(sql)}',
        f'DROP TABLE {preparer.format_table(sql)}',
        f'ALTER TABLE {preparer.format_table(copy)} RENAME TO {preparer.format_table(sql)}']
    if counter is not None:  # ids of rows deleted before are never given again
        statements.append(f"UPDATE sqlite_sequence SET seq = max(seq, {int(counter)}) WHERE name = '{sql.name}'")
    referring = _referring(connection, sql.name)
    for key in sql.foreign_key_constraints:  # the copy's own references to the table it replaces
        column, = key.columns
        if key.referred_table is sql:
            rows = connection.execute(sa.select(sa.func.count()).select_from(sql).where(column.isnot(None))).scalar()
            if rows and (sql.name, column.name, rows) not in referring:
                referring.append((sql.name, column.name, rows))
    if referring:
        raise SchemaError(
            f'table {sql.name} in {database} needs a rule that SQLite adds only by copying the table, and '
            + ', '.join(f'{rows} rows of {other} refer to it by {column}' for other, column, rows in referring)
            + ': dropping the old table would delete or change them, foreign keys being on. Stop every '
            'process that uses the database, run this with the sqlite3 shell, and start again: '
            + '; '.join(['PRAGMA foreign_keys = OFF', 'BEGIN', *(' '.join(text.split()) for text in statements),
                         'PRAGMA foreign_key_check', 'COMMIT']) + ';')
    for text in statements:
        connection.exec_driver_sql(text)


def _referring(connection, name):
    """``(table, column, rows)`` of the rows that refer to SQLite's table ``name`` by a foreign key."""
    found = []
    tables = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
    for other in tables:
        for key in connection.exec_driver_sql(f'PRAGMA foreign_key_list({_quoted(connection, other)})').all():
            if key[2] == name:  # id, seq, table, from, to, on_update, on_delete, match
                rows = connection.exec_driver_sql(f'SELECT count(*) FROM {_quoted(connection, other)} '
                                                  f'WHERE {_quoted(connection, key[3])} IS NOT NULL').scalar()
                if rows:
                    found.append((other, key[3], rows))
    return found


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
