"""Tables made at start-up, and declarations that change between two starts:
added columns are added; what would lose data stops start-up and says why."""
import os
import subprocess
import sys

import pytest

from conftest import PRODUCTS
from test_crud import BACKENDS, ok, serve, store

PRODUCT = PRODUCTS / 'crudmigrate'


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    with store(request.param, tmp_path) as found:
        yield found


def start(database, declaration):
    return serve(PRODUCT, database.url, CRUD_DECLARATION=declaration)


def failed_start(database, declaration):
    """The output of a start that must fail."""
    completed = subprocess.run(
        [sys.executable, '-m', 'apiphant', str(PRODUCT), '127.0.0.1:0'],
        env={**os.environ, 'APIPHANT_DATABASE_URL': database.url, 'CRUD_DECLARATION': declaration},
        capture_output=True, text=True, timeout=30)
    assert completed.returncode == 1, completed.stderr
    assert 'Traceback' not in completed.stderr
    return completed.stderr


def test_a_declaration_that_grows_and_shrinks(database):
    server = start(database, 'first')
    old = ok(server, 'things/create', {'title': 'old', 'size': 3})
    assert server.stop() == 0  # SIGTERM: drained and ended, database threads and all

    server = start(database, 'added')  # five columns more, and size kept but hidden
    assert server.wait_for_output('added column at to table things')
    read = ok(server, 'things/read', {'id': old['id']})
    assert read.pop('at') >= '2000'  # a callable default: its value when the column was added, never null
    assert read == {'id': old['id'], 'version': 1, 'title': 'old', 'flag': True, 'label': "it's", 'note': None,
                    'score': 0.5}
    new = ok(server, 'things/create', {'title': 'new', 'note': 'n'})
    assert new['at'] is not None and new['flag'] is True
    assert ok(server, 'things/list', {'where': {'flag': True, 'label': "it's"}, 'total': True})['meta']['total_objects'] == 2
    server.stop()
    assert database.query(f"SELECT size FROM things WHERE id = {old['id']}") == [(3,)]

    message = failed_start(database, 'lossy')
    assert message.startswith('apiphant: table things in ')
    for words in ('column size is BIGINT in the database but declared str',
                  'column flag (BOOLEAN) is no longer declared', 'ALTER TABLE things DROP COLUMN flag',
                  'column note (TEXT) is no longer declared', 'hidden=True keeps it out of the API'):
        assert words in message, message
    assert database.count('things') == 2  # nothing was dropped or converted
    assert database.query(f"SELECT size, flag FROM things WHERE id = {old['id']}") in ([(3, True)], [(3, 1)])


def test_a_table_apiphant_did_not_make_stops_start_up(database):
    database.query('CREATE TABLE things (title TEXT, size BIGINT)')
    message = failed_start(database, 'first')
    assert 'it has no column id, so apiphant did not make it' in message


def test_a_required_column_added_to_a_table_with_rows_stops_start_up(database):
    server = start(database, 'first')
    ok(server, 'things/create', {'title': 'old'})
    server.stop()
    message = failed_start(database, 'required')
    assert ('column extra of things in Database(' in message and 'is declared required, and the table has 1 rows '
            'that would hold NULL: declare it with a default (the rows get it), or add it yourself and start '
            'again: ALTER TABLE things ADD COLUMN extra TEXT; UPDATE things SET extra = ... WHERE extra IS NULL'
            in message), message
    assert database.count('things') == 1
