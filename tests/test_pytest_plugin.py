"""The pytest plugin as a product's tests use it: ``pytest`` run in a product
tree, whose tests create rows through the ``apiphant_server`` fixture. They
get a database of their own: a fresh SQLite file, or a fresh schema of a
PostgreSQL test database when told; never the developer's file, never an
exported ``APIPHANT_DATABASE_URL``, never a database whose name does not say
test."""
import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import skip_or_fail

POSTGRESQL = 'postgresql://postgres@127.0.0.1:5432/test'

FILES = {
    'pytest.ini': '[pytest]\napiphant_product = shop\n',
    'shop/__init__.py': '',
    'shop/api/__init__.py': '',
    'shop/api/v0/__init__.py': '',
    'shop/api/v0/items.py': '''
        from apiphant.crud import Column, Table

        items = Table('items', name=Column(str, required=True))
        ''',
    'tests/test_shop.py': '''
        import os

        import requests


        def test_the_database_is_fresh(apiphant_server):
            with open(os.environ['SHOP_PID'], 'w') as pid:
                pid.write(str(os.getpid()))
            url = f'{apiphant_server.url}/api/v0/items'
            assert requests.post(f'{url}/list', json={'total': True}, timeout=30).json()['meta']['total_objects'] == 0
            for name in ('a', 'b', 'c'):
                assert requests.post(f'{url}/create', json={'name': name}, timeout=30).status_code == 200
            assert requests.post(f'{url}/list', json={'total': True}, timeout=30).json()['meta']['total_objects'] == 3
        ''',
}


@pytest.fixture
def shop(tmp_path):
    """A product tree with its tests, and the developer's own database file
    beside it, holding a row."""
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    import sqlite3
    with sqlite3.connect(tmp_path / 'shop.sqlite3') as developer:
        developer.execute('CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER, name TEXT)')
        developer.execute("INSERT INTO items VALUES (1, 1, 'the developer''s row')")
    developer.close()
    return tmp_path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_tests(directory, **env):
    clean = {key: value for key, value in os.environ.items() if not key.startswith('APIPHANT_')}
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'],
                          cwd=directory, capture_output=True, text=True, timeout=120,
                          env={**clean, 'SHOP_PID': str(directory / 'pid'), **env})


def test_a_products_tests_leave_the_developers_database_alone(shop):
    developer = shop / 'shop.sqlite3'
    before = digest(developer)
    exported = shop / 'exported.sqlite3'
    for _ in range(2):  # the second run starts as fresh as the first
        result = run_tests(shop, APIPHANT_DATABASE_URL=f'sqlite:///{exported}')
        assert result.returncode == 0, result.stdout + result.stderr
    assert digest(developer) == before
    assert not exported.exists()


def test_a_postgresql_test_database_is_a_schema_of_its_own_dropped_after(shop):
    import psycopg
    try:
        admin = psycopg.connect(POSTGRESQL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        skip_or_fail(f'PostgreSQL is not reachable at {POSTGRESQL}: {" ".join(str(error).split())}')
    with admin:
        result = run_tests(shop, APIPHANT_TEST_DATABASE_URL=POSTGRESQL,
                           APIPHANT_DATABASE_URL=f'sqlite:///{shop / "exported.sqlite3"}')
        assert result.returncode == 0, result.stdout + result.stderr
        pid = (shop / 'pid').read_text()
        left = admin.execute('SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE %s',
                             (f'apiphant_test_{pid}_%',)).fetchone()[0]
    assert left == 0
    assert not (shop / 'exported.sqlite3').exists()


@pytest.mark.parametrize('url', ['postgresql://postgres@127.0.0.1:5432/shop',
                                 'sqlite:////var/lib/shop/shop.sqlite3'])
def test_a_database_whose_name_does_not_say_test_is_refused(shop, url):
    result = run_tests(shop, APIPHANT_TEST_DATABASE_URL=url)
    assert result.returncode != 0
    assert "does not look like a test database: its name must say test" in result.stdout, result.stdout
    assert not (shop / 'pid').exists()


GUARDED = {
    'pytest.ini': '[pytest]\napiphant_product = vault\n',
    'vault/__init__.py': '',
    'vault/api/__init__.py': '',
    'vault/api/v0/__init__.py': '',
    'vault/api/v0/auth.py': '''
        from apiphant.auth import Tokens

        tokens = Tokens()
        ''',
    'vault/api/v0/secrets.py': '''
        from apiphant import action, context
        from apiphant.auth import role


        def read(request):
            return {'caller': context.auth.id, 'roles': sorted(context.auth.roles)}


        @action(access=role('admin'))
        def purge(request):
            return {'purged': True}
        ''',
    'tests/test_vault.py': '''
        from apiphant.test import ANY, config, test


        def test_minted_tokens_reach_the_actions(apiphant_server, apiphant_token):
            test('secrets', 'read', {}, 401, {'error': '401 Unauthorized'})
            test('secrets', 'read', {}, 200, {'caller': 7, 'roles': []}, token=apiphant_token(7))
            test('secrets', 'purge', {}, 403, {'error': '403 Forbidden'}, token=apiphant_token(7))
            test('secrets', 'purge', {}, 200, {'purged': True}, token=apiphant_token(1, ['admin']))
            config.token = apiphant_token(3, ['admin'])
            try:
                test('secrets', 'read', {}, 200, {'caller': 3, 'roles': ['admin']})
                test('secrets', 'read', {}, 401, ANY, token=False)
                test('secrets', 'read', {}, 401, ANY, headers={'Authorization': 'Bearer forged'})
            finally:
                config.token = None
        ''',
}


def test_a_products_tests_send_tokens_minted_without_a_login(tmp_path):
    for name, text in GUARDED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = run_tests(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1 passed' in result.stdout
