"""Route discovery, without sockets."""
import sys

import pytest

from apiphant.product import ProductError, locate
from apiphant.routing import CONVENTIONAL, Route, action, discover, raw_environ, raw_response
from conftest import PRODUCTS


@pytest.fixture(scope='module')
def routes():
    return discover(locate(str(PRODUCTS / 'proto')))


def test_paths(routes):
    assert sorted(routes) == [
        '/api/v0/a/b/c/read', '/api/v0/a/read', '/api/v0/big/read', '/api/v0/cpu/read', '/api/v0/crash/create',
        '/api/v0/crash/read', '/api/v0/crash/update',
        '/api/v0/ctx/read', '/api/v0/custom/list', '/api/v0/custom/login', '/api/v0/echo/create',
        '/api/v0/echo/delete', '/api/v0/echo/read', '/api/v0/echo/update', '/api/v0/errors/create',
        '/api/v0/errors/read', '/api/v0/errors/update', '/api/v0/fields/read', '/api/v0/flaky/calls', '/api/v0/flaky/create',
        '/api/v0/flaky/read', '/api/v0/flaky/search', '/api/v0/held/read',
        '/api/v0/held/update', '/api/v0/provided/list', '/api/v0/provided/read',
        '/api/v0/raw/create', '/api/v0/raw/delete', '/api/v0/raw/read',
        '/api/v0/raw/update', '/api/v0/slow/read', '/api/v0/strict/create', '/api/v0/traps/delete', '/api/v0/types/create',
        '/api/v0/types/read', '/api/v0/types/update', '/api/v1/echo/read']


def test_route_record(routes):
    route = routes['/api/v0/a/b/c/read']
    assert (route.version, route.target, route.action, route.module) == ('v0', 'a/b/c', 'read', 'proto.api.v0.a.b.c')
    assert route.methods == ('POST',) and not route.raw_environ and not route.raw_response
    assert routes['/api/v0/echo/read'].doc == 'Echo the request.'
    assert routes['/api/v0/custom/list'].function.__name__ == 'list_all'


def test_raw_routes(routes):
    assert routes['/api/v0/raw/create'].raw_environ and routes['/api/v0/raw/create'].methods == ('POST',)
    assert routes['/api/v0/raw/read'].methods == ('GET', 'POST')
    assert routes['/api/v0/raw/update'].raw_response


def test_imported_conventional_name_is_not_routed_and_warned(routes, caplog):
    sys.modules.pop('proto.api.v0.traps', None)
    with caplog.at_level('WARNING', logger='apiphant'):
        discover('proto')
    assert 'proto.api.v0.traps.update is imported from proto.api.v0.echo' in caplog.text


def test_decorators_keep_the_function():
    def read(request):
        return {}
    assert raw_environ(read) is read and raw_response(read) is read and action(read) is read
    assert action(name='list')(read) is read
    with pytest.raises(TypeError):
        action(object())


def test_conventional_names():
    assert CONVENTIONAL == ('create', 'read', 'update', 'delete')


def test_product_errors(tmp_path):
    with pytest.raises(ProductError, match='no product directory'):
        locate(str(tmp_path / 'absent'))
    (tmp_path / 'noapi').mkdir()
    with pytest.raises(ProductError, match='no api/ directory'):
        locate(str(tmp_path / 'noapi'))
    (tmp_path / 'bad-name' / 'api').mkdir(parents=True)
    with pytest.raises(ProductError, match='not a valid Python package name'):
        locate(str(tmp_path / 'bad-name'))
    with pytest.raises(ProductError, match='neither a directory nor'):
        locate('not a package')


def product_with(tmp_path, monkeypatch, name, source):
    """A product ``name`` whose one target ``x`` is ``source``, importable."""
    product = tmp_path / name
    (product / 'api' / 'v0').mkdir(parents=True)
    for init in (product, product / 'api', product / 'api' / 'v0'):
        (init / '__init__.py').write_text('')
    (product / 'api' / 'v0' / 'x.py').write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_duplicate_action_names_are_refused(tmp_path, monkeypatch):
    name = product_with(tmp_path, monkeypatch, 'dupes', 'from apiphant import action\n\ndef read(request):\n'
                        '    return {}\n\n@action(name="read")\ndef other(request):\n    return {}\n')
    with pytest.raises(ValueError, match='two functions answer /api/v0/x/read'):
        discover(name)


def test_actions_provided_by_an_object(routes):
    assert routes['/api/v0/provided/list'].function({}) == {'provided': 'list'}
    assert routes['/api/v0/provided/read'].function({}) == {'defined': 'read'}


def test_two_providers_of_one_action_are_refused(tmp_path, monkeypatch):
    name = product_with(tmp_path, monkeypatch, 'twoproviders', 'class P:\n    def apiphant_actions(self):\n'
                        '        return {"list": lambda request: {}}\n\nfirst = P()\nsecond = P()\n')
    with pytest.raises(ValueError, match="both provide the action 'list'"):
        discover(name)


def test_providers_start_once_when_served():
    from apiphant.routing import start
    started = []

    class Provider:
        def apiphant_start(self):
            started.append(self)
    provider = Provider()
    routes = {'/a': Route('/a', 'v0', 'a', 'list', None, 'm', '', provider=provider),
              '/b': Route('/b', 'v0', 'a', 'read', None, 'm', '', provider=provider)}
    start(routes)
    assert started == [provider]


@pytest.mark.parametrize(('decorator', 'options'), [
    (action, {'methodz': ['GET']}),
    (action, {'methods': ['GET']}),  # an action answers POST: methods are for the raw decorators
    (raw_environ, {'name': 'x'}),
    (raw_response, {'method': 'GET'}),
    (raw_environ, {'methods': 'GET'}),  # a string, not a list of names
    (raw_response, {'methods': []}),
    (raw_environ, {'methods': ['GET /x']}),
])
def test_an_option_that_does_not_apply_is_refused(decorator, options):
    def read(request):
        return {}
    with pytest.raises(TypeError):
        decorator(**options)(read)
