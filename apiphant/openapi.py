"""The OpenAPI 3.1 description of a product, made once at start-up from the
records that route requests: the ``Route`` table, ``declared_fields()`` of
each action and the columns of each generated table. Nothing is declared
twice, and nothing here runs per request.

Rules, each pinned by tests/test_openapi.py against a real server:

- Every route is an operation. An action is a ``POST`` with a JSON object
  body (``requestBody`` not required when ``{}`` would do); a raw action is
  described with opaque bodies, under its own methods.
- A status is documented only where the server can answer it: 400, 415 and
  413 where a body is read, 429 where a rate applies, 503 where the process
  caps requests in flight or a table waits for its database (``/health``'s
  too: where the product has tables), and the
  statuses an action's own source raises (``raise NotFound()``). An action
  raising a status it computes gets a ``default`` error response.
- Every error body is ``{"error": ...}``: a message, or a ``FieldError``.
- A custom action's request schema comes from its ``field()`` calls; its
  answer from a ``TypedDict`` return annotation when it has one
  (``def read(request) -> Task``), else any JSON object.
- Values a client may send are those the codec takes (``Value``):
  integers within 64 bits, finite numbers.

Security schemes and per-operation access wait for identities (issue 13):
they belong in ``_operation`` beside the statuses.
"""
import ast
import builtins
import datetime
import inspect
import sys
import types
import typing

import orjson

from apiphant.validation import ApiError, BadRequest, declared_fields

__all__ = ['document', 'encode', 'OPENAPI']

OPENAPI = '3.1.0'
INT64 = (-2 ** 63, 2 ** 63 - 1)
_REF = '#/components/schemas/'
# The codec refuses an integer literal beyond 64 bits anywhere (1e30 written as a float passes).
_NOT_HUGE = {'not': {'type': 'integer', 'not': {'minimum': INT64[0], 'maximum': 2 ** 64 - 1}}}
_NO = object()  # a value that has no JSON form

# A built-in route's answer: its media type.
_BUILT_IN_MEDIA = {'/metrics': 'text/plain', '/docs': 'text/html', '/api/openapi.json': 'application/json',
                   '/api/client.js': 'text/javascript'}

_HEADERS = {'Retry-After': 'seconds to wait',
            'WWW-Authenticate': 'Bearer realm="api", and error="invalid_token" when a token was sent and refused'}
_HEADER_SCHEMAS = {'Retry-After': {'type': 'integer', 'minimum': 0}, 'WWW-Authenticate': {'type': 'string'}}
_RESPONSES = {  # status: (component name, description, headers)
    400: ('BadRequest', 'The body is not a JSON object within the limits, or a field is missing or invalid '
                        '(a FieldError says which).', ()),
    401: ('Unauthorized', 'No bearer token where one is needed, or a token that is not valid (WWW-Authenticate '
                          'says which).', ('WWW-Authenticate',)),
    403: ('Forbidden', 'The caller does not have a role the action needs.', ()),
    404: ('NotFound', 'Not found.', ()),
    409: ('Conflict', 'Conflict: for a row, its version is stale.', ()),
    413: ('PayloadTooLarge', 'The body is larger than max_body_size.', ()),
    415: ('UnsupportedMediaType', 'The body is not said to be JSON: send Content-Type: application/json.', ()),
    429: ('TooManyRequests', 'Past the client\'s rate; Retry-After says when to try again.', ('Retry-After',)),
    503: ('ServiceUnavailable', 'Too many requests in flight, or the database is unavailable or too slow; '
                                'Retry-After says when to try again.', ('Retry-After',)),
}


def document(application, package):
    """The OpenAPI document (a dict) of ``application`` (a dispatch.Application)
    serving ``package``."""
    return _Builder(application, package).build()


def encode(description, indent=False):
    return orjson.dumps(description, option=orjson.OPT_INDENT_2 if indent else 0)


class _Builder:
    def __init__(self, application, package):
        self.application, self.package = application, package
        self.schemas = _base_schemas()
        self.responses = {}
        self.tags = {}
        self.table_names = {}  # id(table): component prefix

    def build(self):
        module = sys.modules.get(self.package)
        paths = {}
        for route in sorted(self.application.routes.values(), key=lambda r: (r.version == '', r.path)):
            paths[route.path] = {method.lower(): self.operation(route, method) for method in route.methods}
        return {
            'openapi': OPENAPI,
            'info': {'title': self.package, 'version': str(getattr(module, '__version__', '0')),
                     'description': inspect.getdoc(module) or f'The JSON API of {self.package}.'},
            'tags': [{'name': name, 'description': text} for name, text in self.tags.items()],
            'paths': paths,
            'components': {'schemas': self.schemas, 'responses': self.responses, **self.security_schemes()},
        }

    def security_schemes(self):
        gate = self.application.gate
        if gate is None:
            return {}
        sources = ', '.join(type(source).__name__ for source in gate.sources)
        return {'securitySchemes': {'bearer': {
            'type': 'http', 'scheme': 'bearer',
            'description': f'Authorization: Bearer TOKEN, a token of {sources} (apiphant.auth).'}}}

    # One operation

    def operation(self, route, method):
        tag = f'{route.version}/{route.target}' if route.version else 'apiphant'
        if tag not in self.tags:
            self.tags[tag] = _first_paragraph(sys.modules.get(route.module)) if route.version else \
                'What apiphant serves beside the product\'s actions.'
        name = f'{route.version}.{route.target.replace("/", ".")}.{route.action}' if route.version \
            else route.action
        operation = {'operationId': name + (f'.{method.lower()}' if len(route.methods) > 1 else ''),
                     'tags': [tag], 'summary': route.doc.split('\n', 1)[0] or route.action}
        if route.doc and route.doc != operation['summary']:
            operation['description'] = route.doc
        table = _table_of(route)
        if table is not None and route.action == 'watch':
            request, answer, raised = self.watch(route, table, method, operation)
        elif route.raw_environ or route.raw_response:
            request, answer, raised = self.raw(route, method)
        elif table is not None:
            request, answer, raised = self.table_action(route, table)
        else:
            request, answer, raised = self.custom(route)
        if request is not None:
            operation['requestBody'] = request
        responses = {'200': answer}
        for status in sorted(self.statuses(route, method, raised)):
            responses[str(status)] = self.error_response(status)
        if None in raised:  # a status the action computes
            responses['default'] = {'description': 'An error the action raises.',
                                    'content': _json({'$ref': _REF + 'Error'})}
        operation['responses'] = responses
        if self.application.gate is not None and route.version:
            access = route.access
            operation['security'] = [{'bearer': []}] if access.authenticated else [{}, {'bearer': []}]
            operation['x-apiphant-access'] = str(access)
            operation['description'] = (operation.get('description', operation['summary']) + f'\n\nAccess: {access}.')
        return operation

    def statuses(self, route, method, raised):
        statuses = {status for status in raised if status is not None}
        reads_body = method != 'GET'
        if reads_body:
            statuses.add(413)
        if reads_body and not route.raw_environ:
            statuses.add(400)
            if self.application.require_json:
                statuses.add(415)
        if route.version and self.application.gate is not None:
            statuses.add(401)  # a bad token is refused wherever it is sent
            if route.access.roles is not None:
                statuses.add(403)
        if route.version:  # /health, /metrics ... are never held back
            if self.application.max_in_flight != float('inf'):
                statuses.add(503)
            limits = self.application.rate_limits
            if limits is not None and (route.rate_limit or limits.default):
                statuses.add(429)
        return statuses

    def error_response(self, status):
        known = _RESPONSES.get(status)
        name, text, headers = known or (f'Status{status}', f'{status}: an error the action raises.', ())
        if name not in self.responses:
            self.responses[name] = {'description': text, 'content': _json({'$ref': _REF + 'Error'})}
            if headers:
                self.responses[name]['headers'] = {
                    header: {'description': _HEADERS[header], 'schema': _HEADER_SCHEMAS[header]} for header in headers}
        return {'$ref': f'#/components/responses/{name}'}

    def raw(self, route, method):
        media = _BUILT_IN_MEDIA.get(route.path, '*/*') if not route.version else '*/*'
        request = None if method == 'GET' else {'description': 'Read by the action as it likes.',
                                                'content': {'*/*': {'schema': {}}}}
        if route.raw_response:
            answer = {'description': 'The action\'s own answer.', 'content': {media: {'schema': {}}}}
        else:
            answer = {'description': 'A JSON object.', 'content': _json({'type': 'object'})}
        raised = _raised(route.function)
        if route.path == '/health' and 'apiphant.crud.storage' not in sys.modules:
            raised.discard(503)  # what a 503 waits for, a database, this product has none
        return request, answer, raised

    def custom(self, route):
        function = route.function
        extended = _extended_table(route)
        if extended is not None:
            request, answer, raised = self.table_action(route, extended)
            return request, answer, raised | _raised(function)
        body = _fields_schema(declared_fields(function))
        returned = _return_schema(function, self.schemas)
        answer = {'description': 'The action\'s answer.', 'content': _json(returned)}
        return _request_body(body, self.schemas), answer, _raised(function)

    def watch(self, route, table, method, operation):
        """A table's ``watch``: the where in the body (POST) or the query
        (GET), Last-Event-ID, a stream of events (apiphant.crud.watch)."""
        request, _, raised = self.table_action(route, table)
        where = {'$ref': _REF + f'{self.table_names[id(table)]}.Where'}
        operation['parameters'] = [{'name': 'Last-Event-ID', 'in': 'header', 'required': False, 'schema': {
            'type': 'string', 'pattern': '^[0-9]{1,18}$'}, 'description': 'The id of the last event received: '
            'the changes after it come first, or a reset event when they are no longer all kept.'}]
        if method == 'GET':
            operation['parameters'].append({
                'name': 'where', 'in': 'query', 'required': False, 'content': _json(where),
                'description': 'The where, as JSON (for EventSource, which sends no body).'})
            request = None
        answer = {'description': 'A stream of server-sent events: ready, then create, update and delete of the '
                                 'rows the where matches (data: the row, or {"id"} for a delete), each with its id; '
                                 'reset when the changes since Last-Event-ID are no longer kept.',
                  'content': {'text/event-stream': {'schema': {'type': 'string'}}}}
        return request, answer, raised | {400, 429}

    def table_action(self, route, table):
        prefix = self.table_names.get(id(table))
        if prefix is None:
            prefix = table.name if table.name not in self.table_names.values() else \
                f'{route.version}.{route.target.replace("/", ".")}.{table.name}'
            self.table_names[id(table)] = prefix
            self.schemas.update(_table_schemas(table, prefix))
        request = {'$ref': _REF + f'{prefix}.{route.action.capitalize()}'}
        answer = _TABLE_ANSWERS[route.action](prefix)
        raised = {503} | _TABLE_RAISES.get(route.action, set())
        return (_request_body(request, self.schemas),
                {'description': 'The answer.', 'content': _json(answer)}, raised)


def _first_paragraph(module):
    text = inspect.getdoc(module) if module is not None else ''
    return (text or '').split('\n\n', 1)[0]


def _json(schema):
    return {'application/json': {'schema': schema}}


def _request_body(schema, schemas):
    """A JSON requestBody, required when ``{}`` would be refused, with an example
    Swagger UI's "Try it out" starts from."""
    resolved = _resolve(schema, schemas)
    body = {'required': bool(resolved.get('required')), 'content': _json(schema)}
    example = _example(schema, schemas)
    if example is not _NO:
        body['content']['application/json']['example'] = example
    return body


# What an action raises, read from its source as declared_fields() reads field()

def _raised(function):
    """The statuses ``raise SomeError(...)`` in ``function`` names: a status
    class's ``status``, ``ApiError(409, ...)``'s literal; None for a status
    the code computes."""
    function = inspect.unwrap(function)  # @strict's wrapper: the action's own source and globals
    try:
        source = inspect.getsource(function)
        tree = ast.parse('if 1:\n' + source if source[:1].isspace() else source)
    except (OSError, TypeError, SyntaxError):
        return set()
    namespace = {**vars(builtins), **getattr(function, '__globals__', {})}
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        call = node.exc if isinstance(node.exc, ast.Call) else None
        error = _resolve_name(call.func if call is not None else node.exc, namespace)
        if not (isinstance(error, type) and issubclass(error, ApiError)):
            continue
        status = 400 if issubclass(error, BadRequest) else getattr(error, 'status', None)
        if not isinstance(status, int):  # ApiError(409, ...): its literal, if it has one
            literal = call.args[0] if call is not None and call.args else None
            status = literal.value if isinstance(literal, ast.Constant) and type(literal.value) is int else None
        found.add(status)
    return found


def _resolve_name(node, namespace):
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve_name(node.value, namespace)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


# Custom actions: field() records and return annotations

_TYPES = {int: {'type': 'integer', 'format': 'int64', 'minimum': INT64[0], 'maximum': INT64[1]},
          float: {'type': 'number'}, str: {'type': 'string'}, bool: {'type': 'boolean'},
          dict: {'type': 'object'}, list: {'type': 'array'}, tuple: {'type': 'array'},
          type(None): {'type': 'null'}}


def _type_schema(valid_type):
    """The schema of ``valid_type`` (a type or a tuple of them), as _is_type
    judges: an int is a float, a boolean is never a number."""
    kinds = valid_type if isinstance(valid_type, tuple) else (valid_type,)
    if float in kinds:
        kinds = tuple(kind for kind in kinds if kind is not int)
    schemas = [_TYPES.get(kind) for kind in kinds]
    if not schemas or None in schemas:
        return None
    return dict(schemas[0]) if len(schemas) == 1 else {'anyOf': [dict(schema) for schema in schemas]}


def _field_schema(record):
    """The schema of one field() record; its ``required`` is its parent's."""
    schema = _type_schema(record.valid_type) if record.valid_type is not None else None
    schema = schema or {}
    if record.valid_value is not None and _value(record.valid_value) is not _NO:
        schema['const'] = _value(record.valid_value)
    if record.valid_values is not None:
        choices = [_value(choice) for choice in record.valid_values]
        if _NO not in choices:
            schema['enum'] = choices
    lengths = {}
    if record.valid_length is not None:
        lengths['min'] = lengths['max'] = record.valid_length
    if record.min_length is not None:
        lengths['min'] = max(record.min_length, lengths.get('min', 0))
    if record.max_length is not None:
        lengths['max'] = min(record.max_length, lengths.get('max', record.max_length))
    if lengths:
        if 'type' not in schema and 'anyOf' not in schema:
            schema['type'] = ['string', 'array', 'object']  # what len() takes
        kinds = {schema.get('type')} if isinstance(schema.get('type'), str) else set(schema.get('type', ()))
        kinds |= {option.get('type') for option in schema.get('anyOf', ())}
        for kind, noun in (('string', 'Length'), ('array', 'Items'), ('object', 'Properties')):
            if kind in kinds:
                for word in lengths:
                    schema[word + noun] = lengths[word]
    for word, keyword in (('min_value', 'minimum'), ('max_value', 'maximum')):
        bound = getattr(record, word)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool):
            schema[keyword] = bound
            if 'type' not in schema and 'anyOf' not in schema:
                schema['type'] = 'number'
    if record.pattern is not None:
        schema['pattern'] = f'^(?:{record.pattern})$'
        schema.setdefault('type', 'string')
    if record.default_value is not None and _value(record.default_value) is not _NO:
        schema['default'] = _value(record.default_value)
    notes = [text for text in (record.explain if isinstance(record.explain, str) else None,
                               f'checked by {getattr(record.validator, "__name__", "a validator")}'
                               if record.validator is not None else None) if text]
    if notes:
        schema['description'] = '; '.join(notes)
    if not schema or set(schema) <= {'description', 'default'}:
        schema['$ref'] = _REF + 'Value'
    return schema


def _fields_schema(records):
    """The request object of an action's field() calls, subfields (``field(request.item, ...)``)
    as objects within it; any other key is any value."""
    body = {'type': 'object', 'properties': {}, 'additionalProperties': {'$ref': _REF + 'Value'}}
    for record in records:
        parent = body
        for name in (record.parent.split('.') if record.parent else ()):
            holder = parent['properties'].setdefault(name, {})
            holder.pop('$ref', None)
            holder.setdefault('type', 'object')
            holder.setdefault('properties', {})
            holder.setdefault('additionalProperties', {'$ref': _REF + 'Value'})
            parent.setdefault('required', [])
            if name not in parent['required']:  # request.item.name fails without item
                parent['required'].append(name)
            parent = holder
        schema = _field_schema(record)
        known = parent['properties'].get(record.name)
        if known and 'properties' in known:  # read as a field and as a parent of subfields
            schema = {**schema, 'properties': known['properties'], 'required': known.get('required', [])}
            schema.pop('$ref', None)
        parent['properties'][record.name] = schema
        if record.is_required and record.name not in parent.setdefault('required', []):
            parent['required'].append(record.name)
    strict = getattr(records, 'strict', False)  # @strict: no key but the declared ones
    for holder in _objects(body):
        if not holder.get('required'):
            holder.pop('required', None)
        if strict:
            holder['additionalProperties'] = False
    return body


def _objects(schema):
    yield schema
    for child in schema.get('properties', {}).values():
        if 'properties' in child:
            yield from _objects(child)


def _return_schema(function, schemas):
    """The schema of a ``TypedDict`` (or ``None``) return annotation; any object otherwise."""
    try:
        hint = typing.get_type_hints(function).get('return', _NO)
    except Exception:  # an annotation that does not evaluate says nothing
        hint = _NO
    if hint is type(None):
        return {'type': 'object', 'maxProperties': 0}
    if hint is not _NO and typing.is_typeddict(hint):
        return _hint_schema(hint, schemas)
    return {'type': 'object'}


def _hint_schema(hint, schemas):
    if hint is typing.Any:
        return {}
    if typing.is_typeddict(hint):
        name = f'{hint.__module__}.{hint.__qualname__}'.replace('<', '').replace('>', '')
        if name not in schemas:
            schemas[name] = {}  # recursion stops here
            fields = typing.get_type_hints(hint)
            schemas[name] = {'type': 'object',
                             'properties': {key: _hint_schema(value, schemas) for key, value in fields.items()},
                             'required': sorted(hint.__required_keys__)}
            if not schemas[name]['required']:
                del schemas[name]['required']
        return {'$ref': _REF + name}
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {'anyOf': [_hint_schema(argument, schemas) for argument in arguments]}
    if origin is typing.Literal:
        return {'enum': [_value(argument) for argument in arguments]}
    if origin in (typing.Required, typing.NotRequired):
        return _hint_schema(arguments[0], schemas)
    if origin in (list, tuple, set, frozenset):
        return {'type': 'array', **({'items': _hint_schema(arguments[0], schemas)} if arguments else {})}
    if origin is dict:
        return {'type': 'object',
                **({'additionalProperties': _hint_schema(arguments[1], schemas)} if arguments else {})}
    if hint is datetime.datetime:
        return {'type': 'string', 'format': 'date-time'}
    if hint is datetime.date:
        return {'type': 'string', 'format': 'date'}
    return dict(_TYPES.get(hint, {}))


def _value(value):
    """``value`` as JSON, or _NO."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        items = [_value(item) for item in value]
        return _NO if _NO in items else items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        items = {key: _value(item) for key, item in value.items()}
        return _NO if _NO in items.values() else items
    return _NO


# Generated tables

def _table_of(route):
    """The Table that provides ``route``'s action, when one does."""
    crud = sys.modules.get('apiphant.crud.table')
    if crud is not None and isinstance(route.provider, crud.Table) and route.action in _TABLE_ANSWERS:
        return route.provider
    return None


def _extended_table(route):
    """The Table whose generated action a module's own function of the same name
    calls (``def create(request): row = notes.create(request) ...``)."""
    crud = sys.modules.get('apiphant.crud.table')
    module = sys.modules.get(route.module)
    if crud is None or module is None or route.action not in _TABLE_ANSWERS:
        return None
    code = getattr(route.function, '__code__', None)
    for name, value in vars(module).items():
        if isinstance(value, crud.Table) and route.action in value.actions and code is not None \
                and name in code.co_names and route.action in code.co_names:
            return value
    return None


def _kind_schema(column, limits=None):
    """The schema of a column's values: as stored, or (``limits`` given) as a
    where compares with them, where text is bounded by ``max_text`` alone."""
    kind = column.kind.name
    schema = {'int': {'type': 'integer', 'format': 'int64', 'minimum': INT64[0], 'maximum': INT64[1]},
              'float': {'type': 'number', 'format': 'double', **_NOT_HUGE},
              'bool': {'type': 'boolean'},
              'str': {'type': 'string', 'pattern': '^[^\\x00]*$'},
              'datetime': {'type': 'string', 'format': 'date-time', 'maxLength': 64},
              'date': {'type': 'string', 'format': 'date', 'maxLength': 64}}[kind]
    if kind == 'str':
        length = column.max_length if limits is None else limits.max_text
        if length is not None:
            schema['maxLength'] = length
    return schema


def _column_schema(column, *, answered=False):
    schema = _kind_schema(column)
    if column.choices is not None:
        schema['enum'] = [_value(choice) for choice in column.choices]
    # Rows stored before a column with a callable default was added hold null (crud/schema.py).
    nullable = column.nullable or answered and callable(column.default)
    if nullable:
        schema = {'anyOf': [schema, {'type': 'null'}]}
    if column.constant_default is not None and not answered:
        schema['default'] = _value(column.constant_default)
    if not column.writable and answered:
        schema['readOnly'] = True
    if column.hidden:
        schema['writeOnly'] = True
    return schema


def _table_schemas(table, prefix):
    from apiphant.crud import OPERATORS
    from apiphant.crud.query import INT64_MAX
    key = {'type': 'integer', 'format': 'int64', 'minimum': INT64[0], 'maximum': INT64[1]}
    visible = {name: column for name, column in table.columns.items() if not column.hidden}
    writable = {name: column for name, column in table.columns.items() if column.writable}
    row = {'type': 'object', 'description': f'A row of {table.name}.',
           'properties': {'id': {**key, 'minimum': 1, 'readOnly': True},
                          'version': {**key, 'minimum': 1, 'readOnly': True},
                          **{name: _column_schema(column, answered=True) for name, column in visible.items()}},
           'required': ['id', 'version', *visible]}
    from apiphant.crud.table import link
    link(table.product)
    expandable = table.expandable()
    for name, column in table.references.items():
        if not column.hidden:  # expand answers the row in place of its id
            schema = row['properties'][name]
            row['properties'][name] = {'anyOf': [*schema.get('anyOf', [schema]), {
                'type': 'object', 'description': f'the row of {column.target.name} it refers to, when expand '
                                                 f'names {name} (null when the caller may not see it)'}]}
    values = {name: _column_schema(column) for name, column in writable.items()}
    required = [name for name, column in writable.items() if column.required]
    limits, page_size = table.limits, {'type': 'integer', 'minimum': 1, 'maximum': table.max_page_size}
    where = f'{prefix}.Where'
    where_ref = {'anyOf': [{'$ref': _REF + where}, {'type': 'null'}]}  # null: no condition
    schemas = {
        f'{prefix}.Row': row,
        f'{prefix}.Create': _closed(values, required),
        f'{prefix}.Read': _closed({'id': key, **_expand_schema(expandable)}, ['id']),
        f'{prefix}.Update': _closed({'id': key, 'version': key, **values}, ['id']),
        f'{prefix}.Delete': _closed({'id': key, 'version': key}, ['id']),
        f'{prefix}.Watch': _closed({'where': where_ref}, []),
        f'{prefix}.List': _closed({
            'where': where_ref,
            'sort_by': _sort_schema(table),
            'page': {'type': 'integer', 'minimum': 1, 'maximum': INT64_MAX // (2 * table.max_page_size)},
            'after': {'type': ['string', 'null'], 'description': 'meta.next of the page before, with the same '
                      'sort_by: the rows after its last one (not with page); null: the first page'},
            'total': {'type': 'boolean', 'description': 'true: meta.total_objects, the number of matching rows '
                      '(a count of them all)' + (' (the default for this table)' if table.total else '')},
            'page_size': page_size, **_expand_schema(expandable)}, []),
        where: _where_schema(table, prefix, OPERATORS),
    }
    # With no field to name, the action answers every call 400: no value is valid.
    group_field = {'enum': list(table.group_fields)} if table.group_fields else False
    stats_field = {'enum': list(table.stats_fields)} if table.stats_fields else False
    schemas[f'{prefix}.Group'] = _closed({'field': group_field, 'where': where_ref,
                                          'page_size': page_size}, ['field'])
    schemas[f'{prefix}.Stats'] = _closed({
        'fields': {'type': 'array', 'items': stats_field, 'minItems': 1, 'uniqueItems': True},
        'where': where_ref}, ['fields'])
    schemas[f'{prefix}.Sample'] = _closed({'where': where_ref, 'page_size': page_size}, [])
    for field_name in table.query_fields:
        column = _query_column(table, field_name)
        schemas[f'{where}.{field_name}'] = _operators_schema(column, f'{where}.{field_name}', limits, OPERATORS)
    return schemas


def _expand_schema(paths):
    if not paths:
        return {}
    return {'expand': {'type': 'array', 'items': {'enum': list(paths)}, 'maxItems': len(paths),
                       'description': 'references to answer as the rows they refer to, in place of their ids; '
                                      'field.field for a reference of that row'}}


def _closed(properties, required):
    schema = {'type': 'object', 'properties': properties, 'additionalProperties': False}
    if required:
        schema['required'] = required
    return schema


def _query_column(table, name):
    if name == 'id':
        from apiphant.crud.fields import ROW_KEY
        return ROW_KEY
    return table.columns[name]


def _sort_schema(table):
    variants = {name: [sign + name + nulls for sign in ('', '-') for nulls in ('', ' nulls first', ' nulls last')]
                for name in table.sort_fields}
    key = {'enum': [variant for names in variants.values() for variant in names]}
    once = [{'not': {'contains': {'enum': names}, 'minContains': 2}}
            for names in variants.values()]  # each field once, whichever way
    return {'anyOf': [key, {'type': 'array', 'items': key, 'minItems': 1, 'maxItems': table.limits.max_sort_keys,
                            'uniqueItems': True, 'allOf': once}, {'type': 'null'}],
            'description': 'a field, -field for descending, or a list of them, each field once; null: the default. '
                           'Null is the smallest value (first ascending, last descending) unless the key ends '
                           'with " nulls first" or " nulls last"'}


def _where_schema(table, prefix, operators):
    where = {'$ref': _REF + f'{prefix}.Where'}
    properties = {}
    for name in table.query_fields:
        column = _query_column(table, name)
        value = _kind_schema(column, table.limits)
        properties[name] = {'anyOf': [value, {'type': 'null'}, {'$ref': _REF + f'{prefix}.Where.{name}'}]}
    properties['$and'] = properties['$or'] = {'type': 'array', 'items': where, 'minItems': 1}
    properties['$not'] = where
    return {'type': 'object', 'properties': properties, 'additionalProperties': False,
            'description': f'Conditions on {table.name}, all of which a row meets: a field and its value (equal), '
                           f'or a field and an object of operators; $and, $or, $not combine them. At most '
                           f'{table.limits.max_depth} levels deep and {table.limits.max_conditions} conditions.'}


def _operators_schema(column, name, limits, operators):
    kind = column.kind.name
    value = _kind_schema(column, limits)
    properties = {}
    for operator in operators.values():
        takes = operator.takes
        if takes in ('pattern', 'text') and kind != 'str' or takes == 'scalar' and kind == 'bool':
            continue
        schema = {'value': {'anyOf': [value, {'type': 'null'}]}, 'scalar': value, 'bool': {'type': 'boolean'},
                  'list': {'type': 'array', 'items': value, 'maxItems': limits.max_list},
                  'pattern': {**value, 'maxLength': min(limits.max_pattern, value.get('maxLength', limits.max_pattern))},
                  'text': value}[takes]
        properties[operator.name] = {**schema, 'description': operator.meaning}
    properties['$not'] = {'$ref': _REF + name}
    return {'type': 'object', 'properties': properties, 'additionalProperties': False, 'minProperties': 1}


def _page(prefix):
    return {'type': 'object', 'required': ['meta', 'data'], 'properties': {
        'meta': {'type': 'object', 'required': ['page_size', 'has_more', 'next'], 'properties': {
            'page': {'type': 'integer', 'description': 'when the request paged by page'},
            'page_size': {'type': 'integer'},
            'has_more': {'type': 'boolean', 'description': 'whether rows follow this page'},
            'next': {'type': ['string', 'null'], 'description': 'the after of the next page; null: none'},
            'total_objects': {'type': 'integer', 'description': 'when the request said total: true'}}},
        'data': {'type': 'array', 'items': {'$ref': _REF + f'{prefix}.Row'}}}}


_TABLE_ANSWERS = {
    'create': lambda prefix: {'$ref': _REF + f'{prefix}.Row'},
    'read': lambda prefix: {'$ref': _REF + f'{prefix}.Row'},
    'update': lambda prefix: {'$ref': _REF + f'{prefix}.Row'},
    'delete': lambda prefix: {'type': 'object'},
    'list': _page,
    'group': lambda prefix: {'type': 'object', 'required': ['data'], 'properties': {'data': {
        'type': 'array', 'items': {'type': 'object', 'required': ['value', 'count'],
                                   'properties': {'value': {}, 'count': {'type': 'integer'}}}}}},
    'stats': lambda prefix: {'type': 'object', 'additionalProperties': {
        'type': 'object', 'required': ['min', 'max', 'avg'], 'properties': {
            'min': {'type': ['number', 'null']}, 'max': {'type': ['number', 'null']},
            'avg': {'type': ['number', 'null']}}}},
    'watch': lambda prefix: {'type': 'string'},  # a stream of events: see Document.watch
    'sample': lambda prefix: {'type': 'object', 'required': ['data'], 'properties': {
        'data': {'type': 'array', 'items': {'$ref': _REF + f'{prefix}.Row'}}}},
}
_TABLE_RAISES = {'read': {404}, 'update': {404, 409}, 'delete': {404, 409}, 'watch': {503}}


# Shared schemas, examples

def _base_schemas():
    return {
        # One schema, not an anyOf of kinds: a generator of invalid values
        # (schemathesis) breaks one branch of an anyOf and expects a 400.
        'Value': {'description': 'Any JSON value the server reads: integers within 64 bits, at most 64 levels deep.',
                  'type': ['null', 'boolean', 'string', 'number', 'array', 'object'],
                  **_NOT_HUGE,
                  'items': {'$ref': _REF + 'Value'}, 'additionalProperties': {'$ref': _REF + 'Value'}},
        'Error': {'type': 'object', 'required': ['error'], 'description': 'Every error answer.',
                  'properties': {'error': {'anyOf': [
                      {'type': 'string', 'description': 'the status line, or a message'},
                      {'$ref': _REF + 'FieldError'}]}}},
        'FieldError': {'type': 'object', 'required': ['field', 'state'],
                       'description': 'What is wrong with one field of the request.',
                       'properties': {'field': {'type': 'string'},
                                      'state': {'type': 'string', 'description': 'missing, invalid, stale ...'},
                                      'explain': {'description': 'why, in words (or as the action gives it)'}}},
    }


def _resolve(schema, schemas):
    while '$ref' in schema and schema['$ref'].startswith(_REF):
        schema = schemas[schema['$ref'][len(_REF):]]
    return schema


def _example(schema, schemas, depth=0):
    """A value valid for ``schema`` (required properties only), or _NO when none
    is easy to make (a pattern)."""
    schema = _resolve(schema, schemas) if schema is not False else False
    if depth > 8 or schema is False:
        return _NO
    for word in ('const', 'default'):
        if word in schema:
            return schema[word]
    if 'enum' in schema:
        return schema['enum'][0]
    if 'anyOf' in schema:
        return _example(schema['anyOf'][0], schemas, depth + 1)
    kind = schema.get('type')
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == 'object':
        example = {}
        for name in schema.get('required', ()):
            value = _example(schema.get('properties', {}).get(name, {'$ref': _REF + 'Value'}), schemas, depth + 1)
            if value is _NO:
                return _NO
            example[name] = value
        return example
    if kind == 'string':
        if 'pattern' in schema and schema['pattern'] != '^[^\\x00]*$':
            return _NO
        formats = {'date-time': '2026-01-02T03:04:05Z', 'date': '2026-01-02'}
        if schema.get('format') in formats:
            return formats[schema['format']]
        size = max(schema.get('minLength', 0), min(4, schema.get('maxLength', 4)))
        return ('text' * (size // 4 + 1))[:size]
    if kind in ('integer', 'number'):
        low, high = schema.get('minimum', 1), schema.get('maximum', 1)
        return max(low, min(1, high))
    if kind == 'boolean':
        return True
    if kind == 'array':
        item = _example(schema.get('items', {}), schemas, depth + 1) if schema.get('minItems') else None
        return _NO if item is _NO else [item] * schema.get('minItems', 0)
    if kind == 'null':
        return None
    return _NO
