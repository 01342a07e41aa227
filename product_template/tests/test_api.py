"""The API of myproduct as a client sees it: apiphant's pytest plugin serves
the product (apiphant_product in pytest.ini) on a free port for the session."""
import pytest

from apiphant.test import ANY, test


@pytest.fixture(autouse=True)
def served(apiphant_server):
    return apiphant_server


def test_echo():
    test('echo', 'read', {'hello': 'world'}, 200, {'hello': 'world', 'server': 'myproduct'})


def test_echo_of_nothing():
    test('echo', 'read', None, 200, {'server': 'myproduct'})


def test_unknown_action():
    test('echo', 'delete', {}, 404, {'error': '404 Not Found'})


def test_a_note_is_created_read_updated_and_deleted():
    note = test('notes', 'create', {'text': 'first'}, 200,
                {'id': ANY(int), 'version': 1, 'text': 'first', 'created_at': ANY(str)}).ajson
    test('notes', 'read', {'id': note.id}, 200, note)
    test('notes', 'update', {'id': note.id, 'version': 1, 'text': 'second'}, 200,
         {**note, 'version': 2, 'text': 'second'})
    listed = test('notes', 'list', {'where': {'id': note.id}, 'total': True}, 200,
                  {'meta': ANY(dict), 'data': [{**note, 'version': 2, 'text': 'second'}]})
    assert listed.ajson.meta.total_objects == 1
    test('notes', 'delete', {'id': note.id, 'version': 2}, 200, {})
    test('notes', 'read', {'id': note.id}, 404, {'error': '404 Not Found'})


def test_a_note_needs_its_text():
    test('notes', 'create', {}, 400, {'error': {'field': 'text', 'state': 'missing'}})
