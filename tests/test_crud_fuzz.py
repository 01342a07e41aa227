"""The where language fuzzed on both databases: a fixed seed and a bounded
count of random wheres (hostile values of every kind, operators on the wrong
kinds, nesting past the limits) through list, group, stats and sample. Every
answer is a 200 or a 400 on a field, never a 500; and a where and its
``$not`` split the rows of the batch between them."""
import random

import requests

from test_crud import backend, ok  # noqa: F401 (backend: the module's server on each database)

SEED, COUNT = 20261129, 1500
FIELDS = ['id', 'batch', 'name', 'count', 'price', 'is_active', 'color', 'order', 'day', 'seen_at',
          'secret', 'nothing', '$where', '']
OPERATORS = ['$eq', '$ne', '$lt', '$le', '$gt', '$ge', '$in', '$nin', '$exists', '$like', '$ilike',
             '$contains', '$icontains', '$not', '$regex']
STRINGS = ['', 'a', 'apple', '%', '_', '\\', 'x\\', '\\\\', '%\\', '\\%', '50\\%\\_%', "'", '"', "x'; --",
           '\x00', 'é', 'É', 'ß', '😀', '\u2028', ' ', '\n', 'null', 'NaN', 'Infinity', '1e308', 'red',
           '%a' * 9, '%' * 8, 'a' * 1001, 'b' * 200, '2026-01-01', '0001-01-01', '9999-12-31',
           '2026-02-29', '2026-01-01T00:00:00Z', '0001-01-01T00:00:00+14:00',
           '9999-12-31T23:59:59-14:00', '2026-11-22T03:04:05.123456+02:00', '2026-13-01']
NUMBERS = [0, 1, -1, 2 ** 31, 2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 0.5, -0.0, 5e-324,
           1e308, -1e308, 1.7976931348623157e308, 2.2250738585072014e-308, 1e-300]
OTHERS = [True, False, None, [], [1], ['a', None], {}, {'a': 1}]
ROWS = [
    {'name': 'C:\\', 'price': 1e308, 'count': 2 ** 63 - 1, 'color': 'red', 'day': '0001-01-01'},
    {'name': '%_\\', 'price': 1e308, 'count': -2 ** 63, 'order': 0, 'seen_at': '9999-12-31T23:59:59Z'},
    {'name': 'ÉCOLE', 'price': -1.7e308, 'is_active': False, 'day': '9999-12-31'},
    {'name': '😀', 'price': 5e-324, 'seen_at': '0001-01-01T00:00:00Z'},
    {'price': -0.0, 'color': 'blue'},
]


TEXTS = [text for text in STRINGS if '\x00' not in text and len(text) <= 200]
# Values of each field's kind, hostile within it: most wheres get past the checks.
KIND_VALUES = {
    'id': [0, 1, 2 ** 63 - 1, -2 ** 63], 'count': [0, -1, 2 ** 63 - 1, -2 ** 63, 7], 'order': [0, 1, -2 ** 63],
    'price': [-0.0, 5e-324, 1e308, -1e308, 1.7976931348623157e308, 0.1, 2 ** 63 - 1],
    'is_active': [True, False], 'day': ['0001-01-01', '9999-12-31', '2024-02-29'],
    'seen_at': ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '0001-01-01T00:00:00-14:00',
                '2026-11-22T03:04:05.123456+02:00'],
    'batch': TEXTS, 'name': TEXTS, 'color': ['red', 'green', 'blue', 'purple', '%'],
}
KIND_FIELDS = list(KIND_VALUES)


def value(rng, field=None):
    if field in KIND_VALUES and rng.random() < 0.85:
        return rng.choice(KIND_VALUES[field] + [None])
    return rng.choice(rng.choice((STRINGS, NUMBERS, OTHERS)))


def argument(rng, operator, field):
    if operator in ('$in', '$nin'):
        size = rng.choice((0, 1, 3, 3, 101)) if rng.random() < 0.9 else None
        return value(rng, field) if size is None else [value(rng, field) for _ in range(size)]
    if operator == '$not':
        inner = rng.choice(OPERATORS[:-2])
        return {inner: argument(rng, inner, field)}
    if operator == '$exists' and rng.random() < 0.9:
        return rng.choice((True, False))
    return value(rng, field)


def field_of(rng):
    return rng.choice(KIND_FIELDS) if rng.random() < 0.9 else rng.choice(FIELDS)


def where(rng, depth=0):
    node = {}
    for _ in range(rng.choice((1, 1, 2, 3))):
        roll = rng.random()
        if roll < 0.12 and depth < 8:
            node[rng.choice(('$and', '$or'))] = [where(rng, depth + 1) for _ in range(rng.choice((1, 2, 3)))]
        elif roll < 0.22 and depth < 8:
            node['$not'] = where(rng, depth + 1)
        elif roll < 0.45:
            field = field_of(rng)
            node[field] = value(rng, field)
        else:
            field = field_of(rng)
            node[field] = {operator: argument(rng, operator, field)
                           for operator in rng.sample(OPERATORS[:-1] if rng.random() < 0.95 else OPERATORS,
                                                      rng.choice((1, 1, 2)))}
    return node


def request_of(rng, batch):
    action = rng.choice(('list', 'list', 'group', 'stats', 'sample'))
    data = {'where': {'$and': [{'batch': batch}, where(rng)]}}
    if action == 'list' and rng.random() < 0.3:
        data['sort_by'] = rng.choice((['-price', 'name'], 'seen_at', '-day', 'order'))
    if action == 'group':
        data['field'] = rng.choice(('name', 'color', 'price', 'day', 'seen_at', 'is_active'))
    if action == 'stats':
        data['fields'] = rng.choice((['price'], ['count', 'price'], ['order']))
    return action, data


def test_the_where_language_never_answers_500(backend):  # noqa: F811
    server, _ = backend
    rng = random.Random(SEED)
    batch = f'fuzz{rng.randrange(10 ** 8)}'
    for row in ROWS:
        ok(server, 'items/create', {'batch': batch, **row})
    session = requests.Session()

    def post(action, data):
        return session.post(f'{server.url}/api/v0/items/{action}', json=data, timeout=30)

    failures, answered = [], {200: 0, 400: 0}
    for _ in range(COUNT):
        action, data = request_of(rng, batch)
        response = post(action, data)
        if response.status_code == 400 and set(response.json()['error']) >= {'field', 'state'}:
            answered[400] += 1
            continue
        if response.status_code != 200:
            failures.append((response.status_code, action, data, response.text[:200]))
            continue
        answered[200] += 1
        if action == 'list':  # a where and its complement split the batch
            condition = data['where']['$and'][1]
            split = [post('list', {'where': {'$and': [{'batch': batch}, part]}, 'page_size': 1, 'total': True})
                     for part in (condition, {'$not': condition})]
            totals = [response.json()['meta']['total_objects'] for response in split]
            if sum(totals) != len(ROWS):
                failures.append(('split', condition, totals))
    assert not failures, failures[:5]
    assert min(answered.values()) >= COUNT // 10, answered  # both kinds of answer were exercised
