"""The route table, built once at start-up from a product's module tree.

``/api/v0/a/b/c/read`` is the function ``read`` of the module (or package)
``myproduct.api.v0.a.b.c``. Routable: ``create``, ``read``, ``update`` and
``delete`` defined in that module, functions marked ``@action``, and the
actions an object of the module provides (``apiphant_actions()``). Never:
names starting with ``_``, anything that is not a function, modules outside
``api/v<N>/``. A request path only indexes the dict built here; nothing is
imported or looked up on the file system at request time.
"""
import inspect
import logging
import pkgutil
import re
from dataclasses import dataclass

from apiphant.limits import Rate
from apiphant.product import import_module

__all__ = ['Route', 'action', 'raw_environ', 'raw_response', 'provided', 'discover', 'start', 'CONVENTIONAL']

log = logging.getLogger('apiphant')

CONVENTIONAL = ('create', 'read', 'update', 'delete')
VERSION = re.compile(r'v\d+\Z')
_MARK = '__apiphant_action__'


@dataclass(frozen=True, slots=True)
class Route:
    """One action: what dispatch calls, what ``--routes`` lists and what the
    API description is made of."""
    path: str
    version: str
    target: str
    action: str
    function: object
    module: str
    doc: str
    raw_environ: bool = False
    raw_response: bool = False
    methods: tuple = ('POST',)
    provider: object = None  # the object that provided the action, with apiphant_start() maybe
    rate_limit: object = None  # a limits.Rate of its own, instead of the product's
    access: object = None  # an apiphant.auth.Access: as declared, then as settled at start-up


def _provided(module):
    """Actions that objects of a module provide: an object with an
    ``apiphant_actions()`` method (a CRUD table, say) returns ``{name: function}``;
    each function is routed as if marked ``@action``, and knows its provider."""
    provided = {}
    for name, value in list(vars(module).items()):
        provide = getattr(type(value), 'apiphant_actions', None)
        if provide is not None and not name.startswith('_'):
            for action_name, function in provide(value).items():
                if action_name in provided:
                    raise ValueError(f'{module.__name__}: {name} and another object both provide the action '
                                     f'{action_name!r}; import one under a name starting with _')
                provided[action_name] = _mark(function, name=action_name, provider=value)
    return provided


def provided(method, name, doc, *, module=None, access=None):
    """A function to route for a provider's ``method`` (a bound method cannot
    take a name and a doc of its own), named ``name``, with ``doc``, as if
    defined in ``module``, with its ``access`` when given."""
    def action(request):
        return method(request)
    action.__name__ = action.__qualname__ = name
    action.__doc__ = doc
    if module is not None:
        action.__module__ = module
    if access is not None:
        _mark(action, access=access)
    return action


def _mark(function, **spec):
    marks = getattr(function, _MARK, None) or {}
    marks.update(spec)
    setattr(function, _MARK, marks)
    return function


def action(function=None, *, name=None, rate_limit=None, access=None):
    """Route a function under its own name (or ``name``) besides
    create/read/update/delete: ``@action`` or ``@action(name='list')``.
    ``rate_limit='5/m'`` gives it a per-client rate of its own (also on
    create/read/update/delete), instead of the product's; ``access`` says
    who may call it (``ANYONE``, ``AUTHENTICATED``, ``role('admin')`` of
    apiphant.auth), instead of its module's or the product's."""
    if function is None:
        return lambda function: action(function, name=name, rate_limit=rate_limit, access=access)
    _check_function('action', function)
    marks = _access({}, access, function)
    if name is not None:
        marks['name'] = name
    if rate_limit is not None:
        marks['rate_limit'] = Rate(rate_limit)  # a bad rate stops start-up, naming it
    return _mark(function, **marks)


def raw_environ(function=None, *, methods=('POST',), access=None):
    """The action gets the WSGI environ instead of the parsed request
    (multipart uploads, say); POST only unless ``methods`` says otherwise:
    ``@raw_environ(methods=['GET', 'POST'])``; ``access`` as for ``action``."""
    if function is None:
        return lambda function: raw_environ(function, methods=methods, access=access)
    _check_function('raw_environ', function)
    return _mark(function, raw_environ=True, methods=_methods(methods), **_access({}, access, function))


def raw_response(function=None, *, methods=('POST',), access=None):
    """The action gets ``start_response`` as a second argument and returns a
    WSGI iterable; POST only unless ``methods`` says otherwise; ``access``
    as for ``action``."""
    if function is None:
        return lambda function: raw_response(function, methods=methods, access=access)
    _check_function('raw_response', function)
    return _mark(function, raw_response=True, methods=_methods(methods), **_access({}, access, function))


def _access(marks, access, function):
    if access is not None:
        from apiphant.auth.access import declared
        marks['access'] = declared(access, function.__qualname__)
    return marks


def _check_function(decorator, function):
    if not inspect.isfunction(function):
        raise TypeError(f'@{decorator} goes on a function, not on {function!r}')


def _methods(methods):
    if isinstance(methods, str) or not methods or not all(isinstance(m, str) and m.isalpha() for m in methods):
        raise TypeError(f'methods should be a list of HTTP method names like [\'GET\', \'POST\'], not {methods!r}')
    return tuple(method.upper() for method in methods)


def discover(package):
    """``{path: Route}`` for every action under ``<package>.api.v<N>``."""
    api = import_module(f'{package}.api')
    routes = {}
    for info in sorted(pkgutil.iter_modules(getattr(api, '__path__', ())), key=lambda i: i.name):
        if info.ispkg and VERSION.match(info.name):
            version = import_module(f'{api.__name__}.{info.name}')
            _walk(version, info.name, (), routes)
    return routes


def _walk(module, version, target, routes):
    if target:
        _collect(module, version, '/'.join(target), routes)
    for info in sorted(pkgutil.iter_modules(getattr(module, '__path__', ())), key=lambda i: i.name):
        if not info.name.startswith('_'):
            child = import_module(f'{module.__name__}.{info.name}')
            _walk(child, version, target + (info.name,), routes)


def _collect(module, version, target, routes):
    found = 0
    candidates = _provided(module)
    candidates.update(vars(module))  # a function the module defines itself wins
    for name, function in candidates.items():
        if name.startswith('_') or not inspect.isfunction(function):
            continue
        marks = getattr(function, _MARK, None)
        if marks is None:
            if name not in CONVENTIONAL:
                continue
            if function.__module__ != module.__name__:
                log.warning('%s.%s is imported from %s, so it is not routed; mark it with '
                            '@apiphant.action to route it', module.__name__, name, function.__module__)
                continue
            marks = {}
        action_name = marks.get('name', name)
        if not isinstance(action_name, str) or not action_name.isidentifier() or action_name.startswith('_'):
            raise ValueError(f'{module.__name__}.{name}: action name {action_name!r} should be '
                             f'an identifier not starting with _')
        path = f'/api/{version}/{target}/{action_name}'
        if path in routes:
            raise ValueError(f'{module.__name__}: two functions answer {path}')
        raw = marks.get('raw_environ', False) or marks.get('raw_response', False)
        routes[path] = Route(
            path=path, version=version, target=target, action=action_name,
            function=function, module=module.__name__, doc=inspect.getdoc(function) or '',
            raw_environ=marks.get('raw_environ', False), raw_response=marks.get('raw_response', False),
            methods=marks.get('methods', ('POST',)) if raw else ('POST',), provider=marks.get('provider'),
            rate_limit=marks.get('rate_limit'), access=marks.get('access'))
        found += 1
    if not found and not hasattr(module, '__path__') and not any(
            hasattr(type(value), 'apiphant_authenticate') for value in vars(module).values()):
        log.warning('%s defines no action: looked for %s or @action functions',
                    module.__name__, ', '.join(CONVENTIONAL))


def start(routes, others=()):
    """Start the providers of actions (a CRUD table creates its table) and
    ``others`` (identity sources), once each, when the routes are to be
    served rather than listed."""
    providers = {id(route.provider): route.provider for route in routes.values() if route.provider is not None}
    providers.update((id(other), other) for other in others)
    for provider in providers.values():
        begin = getattr(provider, 'apiphant_start', None)
        if begin is not None:
            begin()
