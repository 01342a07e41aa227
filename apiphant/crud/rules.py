"""Who may do what with a table's rows: its ``access`` per generated action,
its row ``rules`` in the where language, and its ``owner`` column.

A rule is a where whose values may name the caller: ``"$auth.id"``,
``"$auth.roles"``, ``"$auth.kind"`` and ``"$auth.claims.NAME"`` (dotted).
Per request they are replaced by the caller's values, converted to the kind
of the column they are compared with. Rules fail closed: a rule that names a
value the caller does not have (an anonymous caller's id, a claim its token
lacks, an id that is not the column's kind) matches no row.

Which rule holds where:

- the ``list`` rule (the owner's, ``{owner: "$auth.id"}``, when the table
  has an owner and no list rule) holds for every action of the
  table: list, group, stats, sample, read, update and delete; a row a
  caller may not list is absent for them everywhere (a 404, never a 403);
- ``read``, ``update``, ``delete`` rules hold for that action besides;
- the ``create`` rule is checked on the row as it would be stored (a 400).

Rules hold while a request is served (``apiphant.context``), for the
table's generated actions and for its methods called from the product's own
code; code that runs outside a request (a background task) is not a caller
and sees every row. A caller with a ``bypass`` role (``admin`` by default)
is not held by rules nor by the owner.
"""
import sqlalchemy as sa

from apiphant.auth.access import declared
from apiphant.current import context
from apiphant.errors import Invalid
from apiphant.crud import query

__all__ = ['Rules', 'RULED']

RULED = ('list', 'read', 'update', 'delete', 'create')
_CACHE_SIZE = 1000
_LIMITS = query.Limits()  # rules are the product's code: the default bounds, not the table's


class _Unfit(Exception):
    """A rule's $auth value the caller does not have, or of another kind."""


class Rules:
    """The rules of one table; ``columns`` maps every column (hidden ones
    too) and ``id`` to ``(sql column, Column)``, as scopes see them."""

    def __init__(self, table, actions, columns, *, access=None, rules=None, owner=None, bypass=('admin',)):
        self.table = table
        self.columns = columns
        self.access = self._access(access, actions)
        rules = dict(rules or {})
        unknown = set(rules) - set(RULED)
        if unknown:
            raise ValueError(f'{table}: rules are for {", ".join(RULED)}, not {", ".join(sorted(unknown))}')
        self.owner = owner
        if owner is not None:
            found = columns.get(owner)
            if found is None or owner == 'id':
                raise ValueError(f'{table}: owner {owner!r} should name a column')
            if found[1].writable:
                raise ValueError(f'{table}: the owner column {owner!r} should be Column(..., writable=False): '
                                 f'it is stamped from the caller, never given by a client')
        if isinstance(bypass, str) or not all(isinstance(name, str) and name for name in bypass):
            raise ValueError(f'{table}: bypass should be a list of role names, not {bypass!r}')
        self.bypass = frozenset(bypass)
        self.rules = {}
        for action, where in rules.items():
            try:  # a rule that does not compile is the product's bug: say so at import
                query.compile_where(self._bind(where, _PROBE), columns, _LIMITS)
            except (Invalid, _Unfit, ValueError) as error:
                raise ValueError(f'{table}: the {action} rule {where!r} is not a where: '
                                 f'{getattr(error, "explain", error)}') from None
            self.rules[action] = where
        if owner is not None and 'list' not in self.rules:  # a list rule of the product's own says it all
            self.rules['list'] = {owner: '$auth.id'}
        self.active = bool(self.rules)
        self._known = {}  # (action, id, roles, kind): clause, for rules that name no claim
        self._cached = '$auth.claims' not in repr(self.rules)

    def _access(self, access, actions):
        if access is None:
            return {}
        if not isinstance(access, dict):
            access = {action: access for action in actions}
        unknown = set(access) - set(actions)
        if unknown:
            raise ValueError(f'{self.table}: access names {", ".join(sorted(unknown))}, not among its actions '
                             f'{", ".join(actions)}')
        return {action: declared(value, f'{self.table}.access[{action!r}]') for action, value in access.items()}

    def caller(self):
        """The caller whose rules hold now, or None when none do (outside a
        request, or a caller with a bypass role)."""
        if not self.active or not context:
            return None
        auth = context.auth
        if auth.roles and not self.bypass.isdisjoint(auth.roles):
            return None
        return auth

    def condition(self, action):
        """The clause the current caller's rows must match for ``action``
        (``list`` for group, stats and sample too), or None."""
        auth = self.caller()
        if auth is None:
            return None
        key = (action, auth.id, auth.roles, auth.kind)
        clause = self._known.get(key) if self._cached else None
        if clause is None:
            parts = [self._clause(self.rules[name], auth) for name in
                     (('list', action) if action != 'list' else ('list',)) if name in self.rules]
            if not parts:
                return None
            clause = parts[0] if len(parts) == 1 else sa.and_(*parts)
            if self._cached:
                if len(self._known) >= _CACHE_SIZE:
                    self._known.clear()
                self._known[key] = clause
        return clause

    def listing(self):
        """The ``list`` rule with the current caller's values in it (for a
        watch's events, which ``query.compile_match`` judges), None when
        none holds, False when no row passes (a value the caller does not
        have)."""
        auth = self.caller()
        if auth is None or 'list' not in self.rules:
            return None
        try:
            return self._bind(self.rules['list'], auth)
        except _Unfit:
            return False

    def creating(self):
        """The clause a created row must match, or None."""
        auth = self.caller()
        if auth is None or 'create' not in self.rules:
            return None
        return self._clause(self.rules['create'], auth)

    def stamp(self, values):
        """Set the owner column of a row about to be created to the caller."""
        if self.owner is None or not context:
            return
        auth = context.auth
        if not auth:
            values[self.owner] = None
            return
        try:
            values[self.owner] = _fit(auth.id, self.columns[self.owner][1])
        except _Unfit:
            raise Invalid(self.owner, f'the caller\'s id {auth.id!r} does not fit this column') from None

    def _clause(self, where, auth):
        try:
            return query.compile_where(self._bind(where, auth), self.columns, _LIMITS)
        except _Unfit:
            return sa.false()

    def _bind(self, node, auth):
        """The where ``node`` with the caller's values in place of ``$auth.*``."""
        bound = {}
        for key, value in node.items():
            if key in ('$and', '$or'):
                bound[key] = [self._bind(item, auth) for item in value] if isinstance(value, list) else value
            elif key == '$not':
                bound[key] = self._bind(value, auth) if isinstance(value, dict) else value
            else:
                column = self.columns.get(key)
                bound[key] = _values(value, auth, column[1] if column else None)
        return bound


def _values(value, auth, column):
    if isinstance(value, dict):
        return {key: _values(argument, auth, column) for key, argument in value.items()}
    if isinstance(value, list):
        found = []
        for item in value:
            item = _values(item, auth, column)
            found.extend(item if isinstance(item, list) else [item])
        return found
    if isinstance(value, str) and value.startswith('$auth.'):
        return _resolve(value, auth, column)
    return value


def _resolve(name, auth, column):
    path = name.split('.')[1:]
    if not (path in (['id'], ['roles'], ['kind']) or path[0] == 'claims' and len(path) > 1 and all(path)):
        raise ValueError(f'{name} is not a value of the caller: $auth.id, $auth.roles, $auth.kind, $auth.claims.NAME')
    if auth is _PROBE:
        return _probe(column) if path != ['roles'] else [_probe(column)]
    if path == ['id']:
        value = auth.id
    elif path == ['roles']:
        return [_fit(role, column) for role in sorted(auth.roles)] or _nothing()
    elif path == ['kind']:
        value = auth.kind
    else:
        value = auth.claims
        for step in path[1:]:
            value = value.get(step) if isinstance(value, dict) else None
    if isinstance(value, list):
        return [_fit(item, column) for item in value] or _nothing()
    return _fit(value, column)


def _nothing():
    raise _Unfit('an empty list of the caller\'s values')


def _fit(value, column):
    """``value`` as a value of ``column``'s kind: the id 42 is '42' for a text
    column and '42' is 42 for an int one; what does not fit is _Unfit."""
    if value is None or isinstance(value, (dict, list)):
        raise _Unfit('the caller has no such value')
    kind = column.kind.name if column is not None else None
    if kind == 'str' and not isinstance(value, str):
        return str(value)
    if kind == 'int' and isinstance(value, str):
        if value.isdigit():
            return int(value)
        raise _Unfit(f'{value!r} is not an integer')
    return value


class _Probe:
    """Stands for any caller while a rule is checked at declaration."""


_PROBE = _Probe()


def _probe(column):
    kind = column.kind.name if column is not None else None
    return {'int': 1, 'float': 1.0, 'bool': True}.get(kind, '1') if kind not in ('datetime', 'date') else None
