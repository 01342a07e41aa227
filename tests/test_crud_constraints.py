"""Constraints of generated tables, on SQLite and PostgreSQL through a real
server: unique columns and sets (409 taken, and a race of 16 creates), the
database's own NOT NULL and CHECK (400 on the field), indexes; and a table
made before constraints existed, given them at the next start (or start-up
stopped with the statement to run)."""
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import PRODUCTS
from test_crud import BACKENDS, field_error, ok, post, serve, store

PRODUCT = PRODUCTS / 'crudconstraints'


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    with store(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def started():
    servers = []

    def start(database, declaration='strict'):
        servers.append(serve(PRODUCT, database.url, CRUD_DECLARATION=declaration))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def taken(response, field):
    assert response.status_code == 409, response.text
    error = response.json()['error']
    assert (error['field'], error['state']) == (field, 'taken'), error
    return error['explain']


def indexes(database):
    if database.backend == 'sqlite':
        rows = database.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'accounts'")
    else:
        rows = database.query("SELECT indexname FROM pg_indexes WHERE tablename = 'accounts' "
                              "AND schemaname = current_schema()")
    return {name for name, in rows}


def refused(database, sql):
    with pytest.raises(Exception, match='(?i)constraint|null'):
        database.query(sql)


def test_unique_columns_and_sets_are_409_taken(database, started):
    server = started(database)
    first = ok(server, 'accounts/create', {'email': 'a@x', 'team': 't', 'handle': 'h'})
    assert 'another row of accounts has this email' in taken(
        post(server, 'accounts/create', {'email': 'a@x'}), 'email')
    assert taken(post(server, 'accounts/create', {'email': 'b@x', 'team': 't', 'handle': 'h'}), 'handle') \
        == 'another row of accounts has this team and handle'
    ok(server, 'accounts/create', {'email': 'c@x', 'team': 'u', 'handle': 'h'})  # another team
    other = ok(server, 'accounts/create', {'email': 'd@x'})
    taken(post(server, 'accounts/update', {'id': other['id'], 'email': 'a@x'}), 'email')
    assert ok(server, 'accounts/read', {'id': other['id']})['email'] == 'd@x'  # rolled back
    assert ok(server, 'accounts/update', {'id': first['id'], 'email': 'a@x'})['version'] == 2  # its own
    assert database.count('accounts') == 3
    assert {'uq_accounts_email', 'uq_accounts_team_handle', 'ix_accounts_team', 'ix_accounts_team_role'} \
        <= indexes(database)


def test_sixteen_parallel_creates_of_one_value_give_one_200(database, started):
    server = started(database)
    for round_ in range(3):
        email = f'{uuid.uuid4().hex}@race'
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: post(server, 'accounts/create', {'email': email}), range(16)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] + [409] * 15, [answer.text for answer in answers]
        for answer in answers:
            if answer.status_code == 409:
                taken(answer, 'email')
    assert database.count('accounts') == 3


def test_the_databases_own_rules_are_400_on_the_field(database, started):
    server = started(database)
    field_error(post(server, 'accounts/raw', {'values': {'email': None}}), 'email')
    assert 'should be one of' in field_error(
        post(server, 'accounts/raw', {'values': {'email': 'r@x', 'role': 'boss'}}), 'role')
    ok(server, 'accounts/raw', {'values': {'email': 'r@x', 'role': 'admin'}})
    taken(post(server, 'accounts/raw', {'values': {'email': 'r@x', 'role': 'admin'}}), 'email')
    refused(database, "INSERT INTO accounts (version, email, role) VALUES (1, NULL, 'admin')")
    refused(database, "INSERT INTO accounts (version, email, role) VALUES (1, 'q@x', NULL)")
    refused(database, "INSERT INTO accounts (version, email, role) VALUES (1, 'q@x', 'boss')")


def failed_start(database, declaration='strict'):
    completed = subprocess.run(
        [sys.executable, '-m', 'apiphant', str(PRODUCT), '127.0.0.1:0', '--database-url', database.url],
        env={**os.environ, 'CRUD_DECLARATION': declaration}, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1, completed.stderr
    assert 'Traceback' not in completed.stderr
    return completed.stderr.splitlines()[-1]


def test_a_table_made_before_gets_its_constraints_at_the_next_start(database, started):
    server = started(database, 'loose')
    kept = ok(server, 'accounts/create', {'email': 'k@x', 'team': 't', 'handle': 'h', 'role': 'admin'})
    ok(server, 'accounts/delete', {'id': ok(server, 'accounts/create', {'email': 'gone@x'})['id']})
    server.stop()
    server = started(database)
    assert ok(server, 'accounts/read', {'id': kept['id']}) == kept
    assert ok(server, 'accounts/create', {'email': 'n@x'})['id'] == kept['id'] + 2  # ids never given again
    taken(post(server, 'accounts/create', {'email': 'k@x'}), 'email')
    refused(database, "INSERT INTO accounts (version, email, role) VALUES (1, NULL, 'admin')")
    refused(database, "INSERT INTO accounts (version, email, role) VALUES (1, 'q@x', 'boss')")
    assert 'uq_accounts_email' in indexes(database)


@pytest.mark.parametrize('bad, words', [
    ("INSERT INTO accounts (version, email) VALUES (1, NULL)",
     'column email of accounts in Database({url!r}) is declared required, so it is NOT NULL, but 1 rows hold '
     'NULL there: give them a value and start again: UPDATE accounts SET email = ... WHERE email IS NULL'),
    ("INSERT INTO accounts (version, email, role) VALUES (1, 'x@x', NULL)",
     "UPDATE accounts SET role = 'member' WHERE role IS NULL"),
    ("INSERT INTO accounts (version, email, role) VALUES (1, 'x@x', 'boss')",
     "hold values outside the choices now declared"),
    ("INSERT INTO accounts (version, email, role) VALUES (1, 'x@x', 'admin'), (1, 'x@x', 'member')",
     'rows share values of (email), declared unique; find them, change them and start again: '
     'SELECT email, count(*) FROM accounts GROUP BY email HAVING count(*) > 1'),
])
def test_rows_that_break_a_new_rule_stop_start_up_with_the_statement(database, started, bad, words):
    started(database, 'loose').stop()
    database.query(bad)
    message = failed_start(database)
    url = database.url.replace('postgresql://', 'postgresql+psycopg://')
    assert words.format(url=url) in message, message
    assert 'uq_accounts_email' not in indexes(database)
    assert database.count('accounts') in (1, 2)
