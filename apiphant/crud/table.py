"""``Table``: a declared table and the actions generated for it.

A target module that declares a table gets its actions (routing calls
``apiphant_actions()`` at start-up); a function the module defines itself
under an action's name replaces the generated one and can call the table's
method, ``tasks.create(request)``, to extend it.

Every row has ``id`` (assigned, never reused) and ``version`` (1 on create,
one more on each update): an update or delete that names a ``version``
applies only to that version, else it is a 409.
"""
import logging
import re
import sys
import weakref

import sqlalchemy as sa

from apiphant.errors import Conflict, Invalid, Missing, NotFound, ServiceUnavailable
from apiphant.request import Request
from apiphant.routing import provided, raw_environ
from apiphant.crud import aggregates, changes, fields, query, schema, storage, watch
from apiphant.crud.budget import Budget
from apiphant.crud.integrity import violations
from apiphant.crud.rules import Rules
from apiphant.crud.columns import ON_DELETE, Column, constraint_name

__all__ = ['Table', 'ACTIONS', 'OPTIONAL_ACTIONS']

log = logging.getLogger('apiphant.crud')

ACTIONS = ('create', 'read', 'update', 'delete', 'list')
OPTIONAL_ACTIONS = ('group', 'stats', 'sample')
WATCH = 'watch'  # opted in alone: each write of the table then records its change
HOOKS = ('before_create', 'after_create', 'before_update', 'after_update', 'before_delete',
         'after_delete')
_NAME = re.compile(r'[a-z][a-z0-9_]{0,62}\Z')
_OPTIONS = {'actions': ACTIONS, 'query_fields': None, 'sort_fields': None, 'group_fields': None,
            'stats_fields': None, 'page_size': 20, 'max_page_size': 100, 'sort_by': 'id',
            'limits': query.Limits(), 'max_answer_text': 8 * 2 ** 20, 'unique': (), 'indexes': (),
            'access': None, 'rules': None, 'owner': None, 'bypass': ('admin',), 'total': False}

MAX_EXPAND_DEPTH = 2  # 'project.owner': a reference of a referenced row, no deeper
_TABLES = {}  # product: the tables declared in it, for references by name

_SCOPE_LIMITS = query.Limits()  # a scope is the product's code: the default bounds, not the table's

_DOCS = {
    'create': 'Create a row of {table}: {{fields}} -> the stored row, with its id and version.',
    'read': 'Read a row of {table}: {{"id", "expand"?}} -> the row; 404 when there is none.',
    'update': 'Update fields of a row of {table}: {{"id", "version"?, fields}} -> the updated row; '
              '409 when the version is stale.',
    'delete': 'Delete a row of {table}: {{"id", "version"?}} -> {{}}; 404 when there is none.',
    'list': 'List rows of {table}: {{"where", "sort_by", "page" or "after", "page_size", "total"?, "expand"?}} -> '
            '{{"meta": {{"page"?, "page_size", "has_more", "next", "total_objects"?}}, "data": [rows]}}; '
            'the next page: {{"after": meta.next}}.',
    'group': 'Count rows of {table} by the values of a field: {{"field", "where"}} -> '
             '{{"data": [{{"value", "count"}}]}}, most frequent first.',
    'stats': 'Minimum, maximum and average of fields of {table}: {{"fields", "where"}} -> '
             '{{field: {{"min", "max", "avg"}}}}.',
    'sample': 'Random rows of {table}: {{"page_size", "where"}} -> {{"data": [rows]}}.',
    'watch': 'Watch rows of {table}: {{"where"}} (or GET ?where=JSON) -> a text/event-stream: an event per '
             'change of a row that matches (create, update, delete), with Last-Event-ID to resume.',
}


class Table:
    """``Table('tasks', title=Column(str, required=True), ...)``.

    Keyword arguments that are ``Column`` objects are the columns (any name
    but ``id`` and ``version``, even an option's); the others are options:

    - ``actions``: the generated actions, ``ACTIONS`` by default; add
      ``'group'``, ``'stats'``, ``'sample'``, ``'watch'`` to opt in (a
      watched table records each change in the database's change log, in
      the write's transaction: see ``apiphant.crud.watch``).
    - ``query_fields``, ``sort_fields``, ``group_fields``: the fields a
      client may name there (default: ``id`` and the columns that are not
      hidden; ``id`` is not a group field); ``stats_fields`` (default: the
      int and float columns).
    - ``page_size`` (20), ``max_page_size`` (100), ``sort_by`` (``'id'``).
    - ``total`` (False): True answers ``meta.total_objects`` on every list
      unless the request says ``"total": false`` (lists counted every time
      before cursors came).
    - ``limits``: a ``query.Limits`` for the where language.
    - ``max_answer_text`` (8 Mi): characters of text one answer of list,
      group or sample may hold; past it, a 400 on ``page_size`` says how
      many rows fit (see ``budget``).
    - ``unique``: sets of columns no two rows share, ``[('owner',
      'name')]`` (one column: ``Column(unique=True)``); ``indexes``: sets
      of columns to index together, ``[('project', 'due')]``.

    A column that ``references`` a table (see ``Column``) can be named in
    the ``expand`` of read and list: ``{"id": 3, "expand": ["project",
    "project.owner"]}`` answers the referenced row (its visible columns,
    within the target table's scopes; null when outside them) in place of
    its id, at most ``MAX_EXPAND_DEPTH`` levels deep, with one query per
    named field for the whole page.

    Inside ``transaction()``, the rows ``read``, ``list`` and ``sample``
    answer are locked until it ends (``SELECT ... FOR UPDATE`` in
    PostgreSQL; SQLite has one writer at a time): reading a row and then
    updating it from what was read loses no concurrent update.

    Besides its options, a table has these attributes, for reading:
    ``name``, ``columns`` (``{name: Column}``, as declared), ``sql`` (the
    SQLAlchemy ``Table``, for a product's own statements) and ``visible``
    (its SQLAlchemy columns that a client sees: ``id``, ``version`` and the
    columns that are not hidden); ``where(request)`` is the condition of a
    request's ``where``.
    """

    def __init__(self, name, /, **declarations):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f'table name {name!r} should match {_NAME.pattern} (lowercase, digits, _)')
        self.module = sys._getframe(1).f_globals.get('__name__', '')
        self.product = self.module.partition('.')[0]
        self.columns, options = {}, dict(_OPTIONS)
        for key, value in declarations.items():
            if not isinstance(value, Column):
                if key not in _OPTIONS:
                    raise TypeError(f'{name}.{key} should be a Column, or {key} an option '
                                    f'({", ".join(_OPTIONS)}), not {value!r}')
                options[key] = value
            elif key in ('id', 'version') or not _NAME.match(key):
                raise ValueError(f'{name}: column name {key!r} should match {_NAME.pattern} '
                                 f'and not be id or version')
            elif value.name is not None:
                raise ValueError(f'{name}.{key}: this Column is already {value.name}')
            else:
                value.name = key
                self.columns[key] = value
        actions, limits = options['actions'], options['limits']
        page_size, max_page_size = options['page_size'], options['max_page_size']
        max_answer_text = options['max_answer_text']
        if type(max_answer_text) is not int or max_answer_text < 1:
            raise ValueError(f'{name}: max_answer_text should be a positive int')
        unknown = set(actions) - set(ACTIONS) - set(OPTIONAL_ACTIONS) - {WATCH}
        if unknown or isinstance(actions, str):
            raise ValueError(f'{name}: actions are among {ACTIONS + OPTIONAL_ACTIONS + (WATCH,)}, not {actions!r}')
        if not (type(max_page_size) is int and type(page_size) is int and 1 <= page_size <= max_page_size):
            raise ValueError(f'{name}: page sizes should be ints with 1 <= page_size <= max_page_size')
        self.name, self.actions, self.limits = name, tuple(actions), limits
        self.page_size, self.max_page_size = page_size, max_page_size
        self.max_answer_text = max_answer_text
        if type(options['total']) is not bool:
            raise ValueError(f'{name}: total should be True or False')
        self.total = options['total']
        self.uniques = self._column_sets('unique', options['unique'], 'unique')
        index_sets = self._column_sets('indexes', options['indexes'], 'index')
        self.sql = sa.Table(
            name, sa.MetaData(),
            sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True),
            sa.Column('version', sa.BigInteger(), nullable=False),
            *(column.sql_column() for column in self.columns.values()),
            sqlite_autoincrement=True)  # ids of deleted rows are never given again
        for column in self.columns.values():
            check = column.sql_check(self.sql)
            if check is not None:
                self.sql.append_constraint(check)
        for names, unique in [(names, True) for names in self.uniques] + [(names, False) for names in index_sets]:
            # NULLS FIRST in PostgreSQL (whose default is last): the index then
            # serves list's orders, where null is the smallest value, as in SQLite.
            sa.Index(constraint_name('uq' if unique else 'ix', name, names), *(self.sql.c[n] for n in names),
                     unique=unique, postgresql_ops={n: 'NULLS FIRST' for n in names})
        # What a database's report of a violation names (a constraint, or SQLite's
        # columns), back to the fields: integrity's answer on the field.
        self.constraint_fields = {constraint_name('uq', name, names): names for names in self.uniques}
        self.constraint_fields.update({tuple(f'{name}.{n}' for n in names): names for names in self.uniques})
        self.constraint_fields.update({constraint_name('ck', name, (n,)): (n,) for n, column in self.columns.items()
                                       if column.choices is not None})
        # References: resolved (by name, across the product) when the table is first prepared.
        self.references = {n: column for n, column in self.columns.items() if column.references is not None}
        self.constraint_fields.update({constraint_name('fk', name, (n,)): (n,) for n in self.references})
        self._referrers = []  # (table, column) that reference this table, once linked
        self._linked = not self.references
        _TABLES.setdefault(self.product, weakref.WeakSet()).add(self)
        visible = [n for n, column in self.columns.items() if not column.hidden]
        numbers = [n for n in visible if self.columns[n].kind.name in ('int', 'float')]
        self.query_fields = self._allowed('query_fields', options['query_fields'], ['id', *visible])
        self.sort_fields = self._allowed('sort_fields', options['sort_fields'], ['id', *visible])
        self.group_fields = self._allowed('group_fields', options['group_fields'], visible)
        self.stats_fields = self._allowed('stats_fields', options['stats_fields'], numbers,
                                          kinds=('int', 'float'))
        c = self.sql.c
        self.visible = (c.id, c.version, *(c[n] for n in visible))
        self.visible_names = [column.name for column in self.visible]  # the keys of a row answered, in order
        self._hidden = [n for n, column in self.columns.items() if column.hidden]
        texts = [n for n in visible if self.columns[n].kind.name == 'str']
        self.text_places = tuple(self.visible_names.index(n) for n in texts)
        self.budget = Budget(max_answer_text, [(c[n], self.columns[n]) for n in texts], max_page_size)
        self.group_budgets = {n: Budget(max_answer_text, [(c[n], self.columns[n])], max_page_size)
                              for n in self.group_fields if n in texts}
        # {name: (SQL column, kind)} a client's where compiles against (query_fields) ...
        self.query_columns = {n: (c[n], fields.ROW_KEY if n == 'id' else self.columns[n])
                              for n in self.query_fields}
        # ... and a scope's or a rule's (id and every column, hidden ones too)
        self.scope_columns = {'id': (c.id, fields.ROW_KEY), **{n: (c[n], column) for n, column in self.columns.items()}}
        self._sort_columns = {n: c[n] for n in self.sort_fields}
        self._sort_kinds = {'id': fields.ROW_KEY, **self.columns}  # a cursor's values are parsed as a where's
        try:
            self._default_keys = query.sort_keys(options['sort_by'], self._sort_columns, c.id, limits)
        except Invalid as error:
            raise ValueError(f'{name}: sort_by {options["sort_by"]!r}: {error.explain}') from None
        # Built once: SQLAlchemy then reuses their cache keys and compiled forms.
        # An update or a delete is a pair: (any version, the given version).
        key, version = sa.bindparam('_key'), sa.bindparam('_version')
        self._sql_read = sa.select(*self.visible).where(c.id == key)
        self._sql_expand = sa.select(*self.visible).where(c.id.in_(sa.bindparam('_keys', expanding=True)))
        self._sql_exists = sa.select(c.id).where(c.id.in_(sa.bindparam('_keys', expanding=True)))
        self._sql_read_locked = self._sql_read.with_for_update()
        self._sql_current = sa.select(*c).where(c.id == key)
        self._sql_locked = self._sql_current.with_for_update()
        self._sql_insert = sa.insert(self.sql).returning(*c)
        update = sa.update(self.sql).values(version=c.version + 1).returning(*c)
        delete = sa.delete(self.sql).returning(*c)
        self._sql_update = (update.where(c.id == key), update.where(c.id == key, c.version == version))
        self._sql_delete = (delete.where(c.id == key), delete.where(c.id == key, c.version == version))
        self._hooks = {hook: [] for hook in HOOKS}
        self.scopes = []  # the functions given to @scope, in order
        self.rules = Rules(name, self.actions, self.scope_columns, access=options['access'],
                           rules=options['rules'], owner=options['owner'], bypass=options['bypass'])
        self.watched = WATCH in self.actions
        self._recorded = changes.created(name, self.sql.c.keys()) if self.watched else None  # SQLite's group commit
        self._prepared = storage.Once(lambda: schema.prepare(self.database, self))
        self._database = None

    def __repr__(self):
        return f'Table({self.name!r})'

    def _column_sets(self, option, sets, flag):
        """The sets of column names of the option ``unique`` or ``indexes``,
        after the single columns that say ``unique=True`` or ``index=True``."""
        if isinstance(sets, str) or not all(isinstance(names, (tuple, list)) and names for names in sets):
            raise ValueError(f'{self.name}: {option} should be a list of tuples of column names, not {sets!r}')
        found = [(n,) for n, column in self.columns.items() if getattr(column, flag)]
        for names in sets:
            unknown = [n for n in names if n not in self.columns]
            if unknown:
                raise ValueError(f'{self.name}: {option} names {", ".join(map(repr, unknown))}, not a column')
            if tuple(names) not in found:
                found.append(tuple(names))
        return tuple(found)

    def _allowed(self, option, names, default, kinds=None):
        names = default if names is None else list(names)
        for field in names:
            column = self.columns.get(field)
            if field == 'id' and option != 'group_fields' and kinds is None:
                continue
            if column is None or column.hidden or kinds and column.kind.name not in kinds:
                raise ValueError(f'{self.name}: {option} should name columns that are not hidden'
                                 + (f', of kinds {", ".join(kinds)}' if kinds else '')
                                 + f'; {field!r} is not one')
        return tuple(names)

    # Hooks: @tasks.before_create def f(values): ...; they run in the write
    # transaction, in the order they were declared.

    def _hook(self, name, function):
        self._hooks[name].append(function)
        return function

    def before_create(self, function):
        """``function(values)``: may change the values about to be stored, or raise an ApiError."""
        return self._hook('before_create', function)

    def after_create(self, function):
        """``function(row)``: the stored row; changes to it change the answer only."""
        return self._hook('after_create', function)

    def before_update(self, function):
        """``function(changes, row)``: may change the changes; ``row`` is the row as stored."""
        return self._hook('before_update', function)

    def after_update(self, function):
        """``function(row)``: the updated row; changes to it change the answer only."""
        return self._hook('after_update', function)

    def before_delete(self, function):
        """``function(row)``: the row about to be deleted; raise an ApiError to keep it."""
        return self._hook('before_delete', function)

    def after_delete(self, function):
        """``function(row)``: the row just deleted, in the same transaction."""
        return self._hook('after_delete', function)

    def scope(self, function):
        """``@tasks.scope`` ``def mine(request): return {'owner': ...}``:
        ``function(request)`` returns a where (the where language, on any
        column, hidden ones too) or None for all rows. Every read, list,
        group, stats and sample sees only the rows it matches, and an update
        or delete of another row is a 404, whether a client or the product's
        own code calls the table's method; several scopes all hold. The
        request is the one the method got (``apiphant.context`` tells who
        sent it)."""
        self.scopes.append(function)
        return function

    def scoped(self, request, action='list'):
        """The condition of the rules (for ``action``: list, read, update,
        delete) and of the scopes for ``request``, or None."""
        rule = self.rules.condition(action) if self.rules.active else None
        clauses = [] if rule is None else [rule]
        for function in self.scopes:
            where = function(request)
            if where is None:
                continue
            try:
                clauses.append(query.compile_where(where, self.scope_columns, _SCOPE_LIMITS))
            except Invalid as error:  # the product's bug, not the client's
                raise ValueError(f'the scope {function.__qualname__} of {self.name} returned {where!r}, '
                                 f'which is not a where: {error.explain}') from None
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else sa.and_(*clauses)

    def _run_hooks(self, name, *args):
        for hook in self._hooks[name]:
            hook(*args)

    # Storage

    @property
    def database(self):
        """The product's ``Database``, which the settings name once per process."""
        if self._database is None:
            self._database = storage.database(self.product)
        return self._database

    def prepare(self):
        """Create the table, or add its new columns, once per process; returns the database."""
        if not self._prepared.done:
            link(self.product)
            for column in self.references.values():  # PostgreSQL refers only to a table that exists
                if column.target is not self:
                    if column.target.database is not self.database:
                        raise schema.SchemaError(f'{self.name}.{column.name} references {column.target.name}, '
                                                 f'which is in another database')
                    column.target.prepare()
            self._prepared(self.database.wait)
            if self.watched:
                changes.prepare(self._database)
                watch.live(self._database).know(self)
        return self._database

    def _link(self):
        """Resolve the tables the references name, and give the SQL table its foreign keys."""
        named = {}
        for table in list(_TABLES.get(self.product, ())):
            named.setdefault(table.name, set()).add(table)
        for name, column in self.references.items():
            target = column.references
            if isinstance(target, str):
                found = {self} if target == self.name else named.get(target, set())
                if len(found) != 1:
                    raise schema.SchemaError(
                        f'{self.name}.{name} references {target!r}, but the product {self.product} declares '
                        + ('no table of that name' if not found else f'{len(found)} tables of that name; '
                           f'give the Table itself: references=<the table>'))
                target, = found
            elif not isinstance(target, Table):
                raise schema.SchemaError(f'{self.name}.{name} references {target!r}, which is not a Table')
            column.target = target
            self.sql.append_constraint(sa.ForeignKeyConstraint(
                [self.sql.c[name]], [target.sql.c.id], name=constraint_name('fk', self.name, (name,)),
                ondelete=ON_DELETE[column.on_delete]))
            target._referrers.append((self, column))
        self._linked = True

    def expandable(self, depth=MAX_EXPAND_DEPTH):
        """The paths ``expand`` may name: visible references, and theirs, to ``depth`` levels."""
        paths = []
        for name, column in self.references.items():
            if not column.hidden:
                paths.append(name)
                if depth > 1:
                    paths += [f'{name}.{path}' for path in column.target.expandable(depth - 1)]
        return tuple(paths)

    def apiphant_actions(self):
        """``{name: function}`` of the generated actions, for routing."""
        return {name: self._action(name) for name in self.actions}

    def apiphant_start(self):
        """Prepare the table when the server starts (not for a route listing),
        or on first use when the database cannot be reached yet; a database
        that refuses the product for good stops start-up (a ProductError)."""
        try:
            self.database.check()
            self.prepare()
            if self.watched:
                watch.live(self.database).serve()
        except ServiceUnavailable:
            log.warning('%s: the database is unavailable at start-up; the table will be prepared '
                        'on first use', self.name)

    def _action(self, name):
        method = watch.action(self) if name == WATCH else getattr(self, name)
        function = provided(method, name, _DOCS[name].format(table=self.name), module=self.module,
                            access=self.rules.access.get(name))
        return raw_environ(function, methods=('GET', 'POST')) if name == WATCH else function

    # The actions, callable from a product's own code too

    def create(self, request):
        values = Request(self._changes(request, ()))
        for name, column in self.columns.items():
            if name not in values:
                if column.required:
                    raise Missing(name)
                values[name] = column.initial()
        self.rules.stamp(values)
        creating = self.rules.creating()
        if creating is None and self._plain_create():  # the common create: compiled once, straight through the driver
            return self._answer(self._insert(values))
        with violations(self, values), self.prepare().transaction() as connection:
            self._run_hooks('before_create', values)
            checked = self._checked(values)
            self._check_targets(connection, checked, request)
            stored = connection.execute(self._sql_insert, {**checked, 'version': 1}).one()
            row = self._row(stored)
            if self.watched:
                changes.record(connection, self.name, 'create', row.id, None, row)
            if creating is not None and connection.execute(
                    self._sql_exists.where(creating), {'_keys': [row.id]}).first() is None:
                raise Invalid('rules', f'the row does not match the create rule of {self.name}')  # rolls back
            self._run_hooks('after_create', row)
        return self._answer(row)

    def read(self, request):
        fields.only(request, ('id', 'expand'))
        key = fields.row_id(request)
        scoped = self.scoped(request, 'read')
        if scoped is None and request.get('expand') is None:  # the common read: compiled once, through the driver
            return self._read_key(key)
        expand = self._expansion(request)
        with self.prepare().connect() as connection:
            statement = self._sql_read_locked if storage.locks_rows(connection) else self._sql_read
            if scoped is not None:
                statement = statement.where(scoped)
            stored = connection.execute(statement, {'_key': key}).first()
            if stored is None:
                raise NotFound()
            row = self._row(stored)
            if expand:
                self._expand(connection, [row], expand, request)
        return row

    def update(self, request):
        key = fields.row_id(request)
        version = fields.row_version(request)
        values = Request(self._changes(request, ('id', 'version')))
        scoped = self.scoped(request, 'update')
        with violations(self, values), self.prepare().transaction() as connection:
            current = None
            if self._hooks['before_update'] or not values or self.watched:
                current = self._current(connection, key, version, scoped)
                self._run_hooks('before_update', values, current)
            if values:
                checked = self._checked(values)
                self._check_targets(connection, checked, request)
                row = self._change(connection, self._sql_update, key, version, {'_key': key, **checked}, scoped)
                if self.watched:
                    changes.record(connection, self.name, 'update', key, current, row)
            else:
                row = current
            self._run_hooks('after_update', row)
        return self._answer(row)

    def delete(self, request):
        fields.only(request, ('id', 'version'))
        key = fields.row_id(request)
        version = fields.row_version(request)
        scoped = self.scoped(request, 'delete')
        try:
            with self.prepare().transaction() as connection:
                if self._hooks['before_delete']:
                    self._run_hooks('before_delete', self._current(connection, key, version, scoped))
                self._unrefer(connection, key)
                row = self._change(connection, self._sql_delete, key, version, {'_key': key}, scoped)
                if self.watched:
                    changes.record(connection, self.name, 'delete', key, row, None)
                self._run_hooks('after_delete', row)
        except sa.exc.IntegrityError as error:  # rows refer to it (on_delete restrict)
            raise self._referred(key, error.orig) from None
        return {}

    def _change(self, connection, statements, key, version, parameters, scoped):
        """The row an UPDATE or DELETE ... RETURNING changed; when none, 404 or 409."""
        if version is not None:
            parameters['_version'] = version
        any_version, this_version = statements
        statement = any_version if version is None else this_version
        if scoped is not None:
            statement = statement.where(scoped)
        stored = connection.execute(statement, parameters).first()
        if stored is None:
            self._current(connection, key, version, scoped)  # says which: missing, or stale
            raise Conflict()  # changed between the two statements: versions only grow
        return self._row(stored)

    def list(self, request):
        """A page of rows: by ``page`` (an offset) or ``after`` (a cursor,
        ``meta.next`` of the page before: the rows after its last one, read
        from where it stands, as fast at page 400 as at page 1);
        ``has_more`` from one row more than the page; the exact
        ``total_objects`` (a count of every matching row) only when the
        request says ``"total": true``, or the table ``total=True``."""
        fields.only(request, ('where', 'sort_by', 'page', 'page_size', 'after', 'total', 'expand'))
        where = self.where(request)
        expand = self._expansion(request)
        keys = (self._default_keys if request.get('sort_by') is None else
                query.sort_keys(request['sort_by'], self._sort_columns, self.sql.c.id, self.limits))
        page, page_size = query.paging(request, self.page_size, self.max_page_size)
        counted = request.get('total', self.total)
        if type(counted) is not bool:
            raise Invalid('total', 'true for the exact number of matching rows, in meta.total_objects')
        segments, offset = [None], (page - 1) * page_size
        if request.get('after') is not None:
            if 'page' in request:
                raise Invalid('after', 'give page or after, not both')
            values = query.cursor_values(request['after'], keys, self._sort_kinds)
            segments, page, offset = query.after(keys, values), None, 0
        statement = sa.select(*self.visible).order_by(*(key.clause() for key in keys))
        if where is not None:
            statement = statement.where(where)
        with self.prepare().connect() as connection, fields.refused('where'):
            if self.budget.unbounded:  # the page's rows, their lengths only
                sizes = statement.with_only_columns(self.budget.size, maintain_column_froms=True)
                sizes = self._fetch(connection, sizes, segments, offset, page_size + 1)
                self.budget.check(size for size, in sizes[:page_size])
            if storage.locks_rows(connection):
                statement = statement.with_for_update()
            rows = self._fetch(connection, statement, segments, offset, page_size + 1)
            has_more = len(rows) > page_size
            rows = rows[:page_size]
            self.budget.check_rows(rows, self.text_places)
            meta = {} if page is None else {'page': page}
            meta.update(page_size=page_size, has_more=has_more, next=None)
            if has_more:
                meta['next'] = query.cursor(keys, [rows[-1][place] for place in self._sort_places(keys)])
            if counted:
                count = sa.select(sa.func.count()).select_from(self.sql)
                meta['total_objects'] = connection.execute(count if where is None else count.where(where)).scalar_one()
            names = self.visible_names
            rows = [Request(zip(names, row)) for row in rows]
            if expand and rows:
                self._expand(connection, rows, expand, request)
        return Request(meta=Request(meta), data=rows)

    @staticmethod
    def _fetch(connection, statement, segments, offset, limit):
        """Up to ``limit`` rows of ``statement``: past ``offset``, or those of
        each condition of ``segments`` in turn (a cursor's, ``query.after``)."""
        rows = []
        for segment in segments:
            part = statement if segment is None else statement.where(segment)
            part = part.limit(limit - len(rows))
            rows += storage.rows(connection, part.offset(offset) if offset else part)
            if len(rows) >= limit:
                break
        return rows

    def _sort_places(self, keys):
        return [self.visible_names.index(key.name) for key in keys]

    def update_statement(self):
        """``UPDATE`` of this table that adds one to the ``version`` of each
        row it changes, for a bulk change of the product's own:
        ``tasks.update_statement().where(...).values(done=True)``, executed in
        ``database().transaction()``. A client's update with the version it
        read is then a 409, as after a change through ``update``."""
        return sa.update(self.sql).values(version=self.sql.c.version + 1)

    def where(self, request):
        """The condition of ``request['where']`` on this table's
        ``query_fields`` and of the table's scopes, or None when there is
        none; Invalid when the request's does not compile."""
        condition = query.compile_where(request.get('where'), self.query_columns, self.limits)
        scoped = self.scoped(request)
        if scoped is None or condition is None:
            return scoped if condition is None else condition
        return sa.and_(condition, scoped)

    # References

    def _check_targets(self, connection, values, request):
        """Invalid on a reference whose row the target table's scopes hide
        from this request (the database's foreign key refuses an id with no
        row at all, race-free)."""
        for name, column in self.references.items():
            value = values.get(name)
            scoped = column.target.scoped(request) if value is not None else None
            if scoped is not None and connection.execute(column.target._sql_exists.where(scoped),
                                                          {'_keys': [value]}).first() is None:
                raise Invalid(name, f'no row of {column.target.name} has this id')

    def dangling_references(self, values):
        """The references among ``values`` whose id has no row: what a
        failed foreign key was about, which SQLite's report does not say."""
        dangling = []
        with self.database.connect() as connection:
            for name, column in self.references.items():
                value = values.get(name)
                if type(value) is int and connection.execute(column.target._sql_exists,
                                                              {'_keys': [value]}).first() is None:
                    dangling.append(name)
        return tuple(dangling)

    def _unrefer(self, connection, key, seen=None):
        """Before the row ``key`` is deleted: null the references of
        ``on_delete='set null'`` to it, as a change of those rows (their
        version grows), which the database's own SET NULL would not be; and
        note in the change log what the delete does to watched tables: the
        rows nulled, and the rows the database deletes by ``cascade`` (with
        what its own SET NULL then does to the rows referring to those)."""
        ours = seen is None
        seen = set() if seen is None else seen
        for table, column in self._referrers:
            c = table.sql.c
            referring = c[column.name] == key
            if column.on_delete == 'set null' and ours:
                statement = sa.update(table.sql).where(referring).values({column.name: None, 'version': c.version + 1})
                if not table.watched:
                    connection.execute(statement)
                    continue
                for stored in connection.execute(statement.returning(*c)).all():
                    row = table._row(stored)
                    changes.record(connection, table.name, 'update', row.id,
                                   {**row, column.name: key, 'version': row.version - 1}, row)
            elif column.on_delete == 'set null' and table.watched:
                for stored in connection.execute(sa.select(*c).where(referring)).all():
                    row = table._row(stored)
                    changes.record(connection, table.name, 'update', row.id, row, {**row, column.name: None})
            elif column.on_delete == 'cascade' and table._watched_below():
                for stored in connection.execute(sa.select(*c).where(referring)).all():
                    row = table._row(stored)
                    if (table, row.id) in seen:
                        continue
                    seen.add((table, row.id))
                    table._unrefer(connection, row.id, seen)
                    if table.watched:
                        changes.record(connection, table.name, 'delete', row.id, row, None)

    def _watched_below(self, path=()):
        """Whether this table, or one that a delete of its rows reaches
        (cascade, set null), is watched."""
        return self.watched or any(table._watched_below((*path, self)) for table, column in self._referrers
                                   if column.on_delete != 'restrict' and table not in path and table is not self)

    def _referred(self, key, error):
        """The 409 of a delete that foreign keys refuse, naming what refers to the row."""
        constraint = getattr(getattr(error, 'diag', None), 'constraint_name', None)
        candidates = [(table, column) for tables in list(_TABLES.values()) for table in list(tables)
                      for column in table.references.values() if column.on_delete == 'restrict']
        found = None
        if constraint is not None:  # PostgreSQL names it
            found = next(((table, column) for table, column in candidates
                          if constraint_name('fk', table.name, (column.name,)) == constraint), None)
        else:  # SQLite does not: a row that refers to this one directly, if any
            with self.database.connect() as connection:
                for table, column in self._referrers:
                    if column.on_delete == 'restrict' and connection.execute(
                            sa.select(table.sql.c.id).where(table.sql.c[column.name] == key).limit(1)).first():
                        found = table, column
                        break
        if found is None:
            explain = 'rows of other tables refer to this row, or to a row its deletion would delete'
        else:
            table, column = found
            explain = (f'rows of {table.name} refer to this row by their {column.name}'
                       if column.target is self else
                       f'rows of {table.name} refer by their {column.name} to a row of {column.target.name} '
                       f'that deleting this row would delete')
            explain += f' (on_delete restrict): delete them, or change their {column.name}, first'
        return Conflict(Request(field='id', state='referred', explain=explain))

    def _expansion(self, request):
        """The ``expand`` of a read or list as a tree, ``{'project': {'owner': {}}}``."""
        paths = request.get('expand')
        if paths is None:
            return {}
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            raise Invalid('expand', 'should be a list of the names of references, e.g. ["project"]')
        allowed = self.__dict__.get('_expand_paths')
        if allowed is None:  # once: the references are linked for good
            link(self.product)
            allowed = self._expand_paths = self.expandable()
        tree = {}
        for path in paths:
            if path not in allowed:
                raise Invalid('expand', f'{path[:100]!r} is not a reference of {self.name} that expand may name; '
                                        + (f'these are: {", ".join(allowed)}' if allowed else 'it has none'))
            node = tree
            for part in path.split('.'):
                node = node.setdefault(part, {})
        return tree

    def _expand(self, connection, rows, tree, request):
        """Put in ``rows``, in place of each id ``tree`` names, the row it
        refers to (null when the target's scopes hide it): one query per
        field for all the rows."""
        for name, subtree in tree.items():
            target = self.columns[name].target
            keys = sorted({row[name] for row in rows if row[name] is not None})
            found = {}
            if keys:
                statement = target._sql_expand
                scoped = target.scoped(request)
                if scoped is not None:
                    statement = statement.where(scoped)
                stored = connection.execute(statement, {'_keys': keys}).all()
                target.budget.check_rows(stored, target.text_places)
                found = {row[0]: Request(zip(target.visible_names, row)) for row in stored}
                if subtree and found:
                    target._expand(connection, list(found.values()), subtree, request)
            for row in rows:
                if row[name] is not None:
                    row[name] = found.get(row[name])

    # Opt-in actions, in their own module

    def group(self, request):
        return aggregates.group(self, request)

    def stats(self, request):
        return aggregates.stats(self, request)

    def sample(self, request):
        return aggregates.sample(self, request)

    def watch(self, request):
        """A ``Stream`` of the changes of the rows that match
        ``request['where']`` and that the caller may list (see
        ``apiphant.crud.watch``)."""
        return watch.watch(self, request)

    # Parsing and shaping

    def _changes(self, request, skip):
        """The column values of a create or update request, checked; the
        fields named in ``skip`` (an update's id and version) are not values."""
        changes = {}
        for name, value in request.items():
            if name in skip:
                continue
            column = self.columns.get(name)
            if column is None and name not in ('id', 'version'):
                raise Invalid(name, f'not a field of {self.name}')
            if column is None or not column.writable:
                raise Invalid(name, 'not writable')
            try:
                changes[name] = column.check(value)
            except ValueError as error:
                raise Invalid(name, str(error)) from None
        return changes

    def _checked(self, values):
        """Values after the hooks: still columns, still of their kinds."""
        checked = {}
        for name, value in values.items():
            column = self.columns.get(name)
            if column is None:
                raise TypeError(f'a hook of {self.name} set {name!r}, which is not a column')
            checked[name] = column.check(value)
        return checked

    def _current(self, connection, key, version, scoped):
        statement = self._sql_locked if storage.locks_rows(connection) else self._sql_current
        if scoped is not None:
            statement = statement.where(scoped)
        stored = connection.execute(statement, {'_key': key}).first()
        if stored is None:
            raise NotFound()
        current = self._row(stored)
        if version is not None and current.version != version:
            raise Conflict(Request(field='version', state='stale',
                                   explain=f'the row is at version {current.version}; read it again'))
        return current

    @staticmethod
    def _row(stored):
        return Request(stored._mapping)

    def _answer(self, row):
        for name in self._hidden:
            row.pop(name, None)
        return row

    # The hot paths of read and create (storage.read_key, storage.insert)

    def _read_key(self, key):
        database = self.prepare()
        locked = database.dialect != 'sqlite' and database.in_transaction()
        stored = database.read_key(self._sql_read_locked if locked else self._sql_read, {'_key': key})
        if stored is None:
            raise NotFound()
        return Request(zip(self.visible_names, stored))

    def _plain_create(self):
        """A create with no hook and no reference to check, outside a
        transaction; in PostgreSQL, with no change to record (SQLite's group
        commit records it)."""
        database = self.prepare()
        return not (self._hooks['before_create'] or self._hooks['after_create'] or getattr(self, 'references', None)
                    or database.in_transaction() or self.watched and database.dialect != 'sqlite')

    def _insert(self, values):
        with violations(self):
            stored = self.database.insert(self._sql_insert, {**self._checked(values), 'version': 1}, self._recorded)
        return Request(zip(self.sql.c.keys(), stored))


def link(product):
    """Resolve the references of the tables of ``product`` (each once);
    SchemaError when a name finds no table, or references form a cycle (a
    table may refer to itself)."""
    tables = list(_TABLES.get(product, ()))
    for table in tables:
        if not table._linked:
            table._link()
    for table in tables:
        _acyclic(table, ())


def _acyclic(table, path):
    for column in table.references.values():
        target = column.target
        if target is table:
            continue
        if target in path:
            raise schema.SchemaError('references form a cycle: ' + ' -> '.join(
                t.name for t in (*path, table, target)) + '; only a table may refer to itself')
        if not target._linked:
            target._link()
        _acyclic(target, (*path, table))
