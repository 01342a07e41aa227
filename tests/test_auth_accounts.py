"""Built-in accounts and API keys through a real server, on SQLite and on
PostgreSQL: login, the access token, refresh rotation and reuse, logout,
disabled users, password changes, the ``apiphant users`` and ``apiphant
keys`` commands; named by OWASP API Security Top 10 (2023) category where
they pin a defence: API2 Broken Authentication, API4 Unrestricted Resource
Consumption (login throttling, bounded hashing), API5 Broken Function
Level Authorization."""
import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS
from test_crud import BACKENDS, store

PRODUCT = PRODUCTS / 'accounts_product'
PASSWORD = 'correct horse battery staple'
UNAUTHORIZED = {'error': '401 Unauthorized'}
_addresses = itertools.count(1)


@pytest.fixture(scope='module', params=BACKENDS)
def served(request, tmp_path_factory):
    """(server, database, secrets): the product on one backend; secrets
    collects every password and token the tests send or get."""
    with store(request.param, tmp_path_factory.mktemp('accounts')) as database:
        server = ServedProduct(PRODUCT, '--trusted-proxies', '127.0.0.1',
                               env={'APIPHANT_DATABASE_URL': database.url}).start()
        try:
            yield server, database, set()
        finally:
            server.stop()


@pytest.fixture
def server(served):
    return served[0]


@pytest.fixture
def address():
    """A client address of the test's own (the server trusts 127.0.0.1's X-Forwarded-For)."""
    return f'10.{os.getpid() % 250}.{next(_addresses) // 250}.{next(_addresses) % 250}'


class Client:
    def __init__(self, served, address):
        self.server, self.database, self.secrets = served
        self.address = address

    def post(self, path, body=None, token=None, address=None):
        headers = {'X-Forwarded-For': address or self.address}
        if token is not None:
            headers['Authorization'] = f'Bearer {token}'
            self.secrets.add(token)
        for key in ('password', 'new_password', 'refresh_token'):
            if isinstance((body or {}).get(key), str):
                self.secrets.add(body[key])
        answer = requests.post(f'{self.server.url}/api/v0/{path}', json=body or {}, headers=headers, timeout=60)
        if answer.status_code == 200:
            for key in ('access_token', 'refresh_token'):
                if key in answer.json():
                    self.secrets.add(answer.json()[key])
        return answer

    def ok(self, path, body=None, token=None):
        answer = self.post(path, body, token)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def login(self, login, password=PASSWORD, address=None):
        return self.post('auth/login', {'login': login, 'password': password}, address=address)

    def cli(self, *args, stdin=None):
        command, *rest = args
        done = subprocess.run([sys.executable, '-m', 'apiphant', command, str(PRODUCT), *rest], input=stdin,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, 'APIPHANT_DATABASE_URL': self.database.url})
        if stdin:
            self.secrets.add(stdin.strip())
        return done

    def user(self, *roles, password=PASSWORD):
        """A new user made with the command line; its login."""
        login = f'u{uuid.uuid4().hex[:10]}@example.org'
        done = self.cli('users', 'add', login, *[f'--role={role}' for role in roles], '--password-stdin',
                        stdin=password + '\n')
        assert done.returncode == 0, done.stderr
        return login


@pytest.fixture
def client(served, address):
    return Client(served, address)


def refused(answer, challenge='Bearer realm="api"'):
    assert answer.status_code == 401, answer.text
    assert answer.json() == UNAUTHORIZED
    assert answer.headers['WWW-Authenticate'].startswith(challenge)
    return answer


def test_login_gives_tokens_that_reach_the_actions(client):
    login = client.user('admin', 'editor')
    answer = client.login(login.upper())  # logins are case-folded
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens['token_type'] == 'Bearer' and tokens['expires_in'] == 900
    assert tokens['user']['login'] == login and tokens['user']['roles'] == ['admin', 'editor']
    assert client.ok('auth/me', token=tokens['access_token']) == {
        'id': tokens['user']['id'], 'login': login, 'roles': ['admin', 'editor'], 'kind': 'user'}
    assert client.ok('echo/read', token=tokens['access_token'])['id'] == tokens['user']['id']
    assert client.ok('echo/purge', token=tokens['access_token']) == {'purged': True}
    assert client.ok('echo/ping', {'n': 1}) == {'pong': 1}


def test_api5_a_user_without_the_role_is_403(client):
    tokens = client.login(client.user('editor')).json()
    answer = client.post('echo/purge', token=tokens['access_token'])
    assert answer.status_code == 403 and answer.json() == {'error': '403 Forbidden'}
    refused(client.post('echo/read'))  # secure by default: no token, no answer
    refused(client.post('auth/me'))


def test_api2_unknown_user_wrong_password_and_disabled_user_get_one_answer(client):
    login = client.user()
    disabled = client.user()
    assert client.cli('users', 'disable', disabled).returncode == 0
    answers = [client.login(login, 'not the password at all'), client.login(f'nobody-{login}'),
               client.login(disabled)]
    for answer in answers:
        refused(answer)
    assert len({(a.status_code, a.text, a.headers['WWW-Authenticate']) for a in answers}) == 1
    assert client.login(login).status_code == 200


def test_api2_bad_input_is_a_400_on_the_field(client):
    for body, name in [({'password': PASSWORD}, 'login'), ({'login': 'x'}, 'password'),
                       ({'login': 5, 'password': PASSWORD}, 'login'), ({'login': ' ', 'password': PASSWORD}, 'login'),
                       ({'login': 'x', 'password': 'p' * 5000}, 'password')]:
        answer = client.post('auth/login', body)
        assert answer.status_code == 400 and answer.json()['error']['field'] == name, answer.text
        assert 'p' * 100 not in answer.text
    for body in [{}, {'refresh_token': 7}, {'refresh_token': 'x' * 300}]:
        assert client.post('auth/refresh', body).status_code == 400


def test_refresh_rotates_and_a_reused_token_revokes_its_family(client):
    login = client.user()
    first = client.login(login).json()
    other = client.login(login).json()  # another session, another family
    second = client.ok('auth/refresh', {'refresh_token': first['refresh_token']})
    assert second['refresh_token'] != first['refresh_token']
    assert client.ok('auth/me', token=second['access_token'])['login'] == login
    third = client.ok('auth/refresh', {'refresh_token': second['refresh_token']})
    # The first token again: someone holds a copy. The family is revoked, its newest token too.
    refused(client.post('auth/refresh', {'refresh_token': first['refresh_token']}),
            'Bearer realm="api", error="invalid_token"')
    refused(client.post('auth/refresh', {'refresh_token': third['refresh_token']}))
    assert client.ok('auth/refresh', {'refresh_token': other['refresh_token']})['user']['login'] == login
    refused(client.post('auth/refresh', {'refresh_token': 'x' * 43}))
    refused(client.post('auth/refresh', {'refresh_token': first['access_token'][:200]}))


def test_api2_a_refresh_token_raced_by_eight_clients_is_used_once(client):
    tokens = client.login(client.user()).json()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post('auth/refresh', {'refresh_token': tokens['refresh_token']}),
                                range(8)))
    assert sorted(answer.status_code for answer in answers) == [200] + [401] * 7
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    refused(client.post('auth/refresh', {'refresh_token': winner['refresh_token']}))  # the family is revoked


def test_logout_revokes_one_login_or_all(client):
    login = client.user()
    one, two, three = (client.login(login).json() for _ in range(3))
    assert client.ok('auth/logout', {'refresh_token': one['refresh_token']}, token=one['access_token']) == {}
    refused(client.post('auth/refresh', {'refresh_token': one['refresh_token']}))
    two = client.ok('auth/refresh', {'refresh_token': two['refresh_token']})
    # Another user's refresh token is not the caller's to revoke.
    stranger = client.login(client.user()).json()
    client.ok('auth/logout', {'refresh_token': stranger['refresh_token']}, token=two['access_token'])
    client.ok('auth/refresh', {'refresh_token': stranger['refresh_token']})
    assert client.ok('auth/logout', token=two['access_token']) == {}
    refused(client.post('auth/refresh', {'refresh_token': two['refresh_token']}))
    refused(client.post('auth/refresh', {'refresh_token': three['refresh_token']}))
    # The access token lives on until it expires (README: within its lifetime).
    assert client.ok('auth/me', token=one['access_token'])['login'] == login
    refused(client.post('auth/logout'))


def test_a_disabled_user_can_neither_log_in_nor_refresh(client):
    login = client.user()
    tokens = client.login(login).json()
    assert client.cli('users', 'disable', login).returncode == 0
    refused(client.login(login))
    refused(client.post('auth/refresh', {'refresh_token': tokens['refresh_token']}))
    enabled = client.cli('users', 'enable', login)
    assert enabled.returncode == 0 and 'enabled user' in enabled.stdout
    refused(client.post('auth/refresh', {'refresh_token': tokens['refresh_token']}))  # revoked for good
    assert client.login(login).status_code == 200


def test_a_password_change_revokes_every_refresh_token(client):
    login = client.user()
    one, two = client.login(login).json(), client.login(login).json()
    new = 'a new passphrase, long enough'
    short = client.post('auth/password', {'password': PASSWORD, 'new_password': 'short'}, token=one['access_token'])
    assert short.status_code == 400 and short.json()['error']['field'] == 'new_password'
    wrong = client.post('auth/password', {'password': 'not the password', 'new_password': new},
                        token=one['access_token'])
    assert wrong.status_code == 400 and wrong.json()['error']['field'] == 'password'
    changed = client.ok('auth/password', {'password': PASSWORD, 'new_password': new}, token=one['access_token'])
    for old in (one, two):
        refused(client.post('auth/refresh', {'refresh_token': old['refresh_token']}))
    client.ok('auth/refresh', {'refresh_token': changed['refresh_token']})
    refused(client.login(login))
    assert client.login(login, new).status_code == 200
    # The command line's set-password does the same.
    tokens = client.login(login, new).json()
    done = client.cli('users', 'set-password', login, '--password-stdin', stdin=PASSWORD + '\n')
    assert done.returncode == 0, done.stderr
    refused(client.post('auth/refresh', {'refresh_token': tokens['refresh_token']}))
    assert client.login(login).status_code == 200


def test_api4_failed_logins_are_throttled_per_account(client):
    login = client.user()
    for attempt in range(5):  # each from another address: the account's count, not an address's
        refused(client.login(login, 'wrong password', address=f'10.250.{next(_addresses) % 250}.{attempt}'))
    locked = client.login(login)  # the right password, from yet another address: locked all the same
    assert locked.status_code == 429 and locked.json() == {'error': '429 Too Many Requests'}
    assert 1 <= int(locked.headers['Retry-After']) <= 2
    other = client.user()
    assert client.login(other).status_code == 200  # other accounts, and this address, are served
    time.sleep(int(locked.headers['Retry-After']))
    assert client.login(login).status_code == 200  # the lock is over; a success clears the count
    refused(client.login(login, 'wrong again'))


def test_api4_failed_logins_are_throttled_per_address(client):
    logins = [client.user() for _ in range(2)]
    for attempt in range(12):  # a different name each time: the address's count
        refused(client.login(f'guess{attempt}-{logins[0]}', 'wrong password'))
    locked = client.login(logins[0])
    assert locked.status_code == 429 and int(locked.headers['Retry-After']) >= 1
    elsewhere = client.login(logins[0], address='10.251.0.1')
    assert elsewhere.status_code == 200  # the account is not locked, the address is


def test_api4_echo_is_served_during_a_burst_of_logins(client):
    login = client.user()
    stop = threading.Event()
    in_flight = [0]  # logins sent and not yet answered
    pings = []  # (status, whether logins were in flight from before the ping was sent until after its answer)

    def ping():
        while not stop.is_set():
            before = in_flight[0]
            status = client.post('echo/ping', {'n': 2}).status_code
            pings.append((status, before > 0 and in_flight[0] > 0))

    counting = threading.Lock()

    def log_in(_):
        with counting:
            in_flight[0] += 1
        try:
            return client.login(login).status_code
        finally:
            with counting:
                in_flight[0] -= 1
    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            logins = list(pool.map(log_in, range(24)))
    finally:
        stop.set()
        pinger.join()
    assert logins == [200] * 24
    assert {status for status, _ in pings} == {200}
    assert any(during for _, during in pings), 'no ping was answered while logins were hashing'


def test_api_keys_through_the_command_line(client):
    name = f'robot-{uuid.uuid4().hex[:6]}'
    added = client.cli('keys', 'add', name, '--role', 'admin')
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    client.secrets.add(key)
    assert key.startswith('apk_') and len(key) == 47
    assert client.ok('echo/read', token=key) == {'id': f'key:{name}', 'roles': ['admin'], 'kind': 'key'}
    assert client.ok('echo/purge', token=key) == {'purged': True}
    assert client.ok('auth/me', token=key) == {'id': f'key:{name}', 'login': None, 'roles': ['admin'],
                                               'kind': 'key'}
    listed = client.cli('keys', 'list')
    assert name in listed.stdout and 'active' in listed.stdout and key not in listed.stdout
    assert client.cli('keys', 'add', name).returncode != 0  # names are unique
    revoked = client.cli('keys', 'revoke', name)
    assert revoked.returncode == 0, revoked.stderr
    refused(client.post('echo/read', token=key), 'Bearer realm="api", error="invalid_token", '
                                                 'error_description="revoked"')
    assert 'revoked' in client.cli('keys', 'list').stdout
    assert client.cli('keys', 'revoke', name).returncode != 0


def test_api2_unknown_and_malformed_api_keys_are_401(client):
    refused(client.post('echo/read', token='apk_' + 'A' * 43), 'Bearer realm="api", error="invalid_token"')
    refused(client.post('echo/read', token='apk_short'), 'Bearer realm="api", error="invalid_token"')
    refused(client.post('echo/read', token='not-a-token'), 'Bearer realm="api", error="invalid_token"')


def test_the_users_command(client):
    login = client.user('admin')
    listed = client.cli('users', 'list')
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if login in line)
    assert 'admin' in line and 'enabled' in line
    roles = client.cli('users', 'roles', login, '--role', 'editor', '--role', 'viewer')
    assert roles.returncode == 0 and roles.stdout.strip() == f'{login}: editor,viewer'
    assert client.cli('users', 'roles', login).stdout.strip() == f'{login}: editor,viewer'
    assert client.login(login).json()['user']['roles'] == ['editor', 'viewer']
    on_the_line = client.cli('users', 'add', 'x' + login, '--password', PASSWORD)
    assert on_the_line.returncode != 0 and 'command line' in on_the_line.stderr
    no_terminal = client.cli('users', 'add', 'x' + login)
    assert no_terminal.returncode != 0 and '--password-stdin' in no_terminal.stderr
    short = client.cli('users', 'add', 'x' + login, '--password-stdin', stdin='short\n')
    assert short.returncode != 0 and '10 to 1024' in short.stderr
    taken = client.cli('users', 'add', login.upper(), '--password-stdin', stdin=PASSWORD + '\n')
    assert taken.returncode != 0 and 'already' in taken.stderr
    assert client.cli('users', 'disable', 'nobody-' + login).returncode != 0
    assert 'x' + login not in client.cli('users', 'list').stdout


def test_api2_no_password_token_or_hash_in_the_server_output(served, client):
    server, database, seen = served
    hashes = [row[0] for row in database.query('SELECT password_hash FROM apiphant_users')]
    hashes += [row[0] for row in database.query('SELECT hash FROM apiphant_refresh_tokens')]
    assert len(seen) > 20 and hashes
    output = server.output
    assert 'POST /api/v0/auth/login' in output  # the access log is there, and it is all it says
    for secret in list(seen) + hashes:
        assert secret not in output


def test_api4_hashing_is_bounded_and_a_login_past_the_wait_is_503(tmp_path):
    url = f'sqlite:///{tmp_path}/bounded.sqlite3'
    done = subprocess.run([sys.executable, '-m', 'apiphant', 'users', str(PRODUCT), 'add', 'ada',
                           '--password-stdin'], input=PASSWORD + '\n', capture_output=True, text=True,
                          env={**os.environ, 'APIPHANT_DATABASE_URL': url, 'ACCOUNTS_ARGON2': 'default'}, timeout=120)
    assert done.returncode == 0, done.stderr
    with ServedProduct(PRODUCT, env={'APIPHANT_DATABASE_URL': url, 'ACCOUNTS_ARGON2': 'default', 'ACCOUNTS_MAX_HASHING': '1',
                                     'ACCOUNTS_HASH_WAIT': '0.05'}) as server:
        def login(_):
            return requests.post(f'{server.url}/api/v0/auth/login', json={'login': 'ada', 'password': PASSWORD},
                                 timeout=60)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(login, range(6)))
        statuses = sorted(answer.status_code for answer in answers)
        assert 200 in statuses and 503 in statuses and set(statuses) == {200, 503}, statuses
        busy = next(answer for answer in answers if answer.status_code == 503)
        assert busy.headers['Retry-After'] == '1' and busy.json() == {'error': '503 Service Unavailable'}


def test_accounts_need_keys_to_sign_with(tmp_path):
    server = ServedProduct(PRODUCT, env={'APIPHANT_DATABASE_URL': f'sqlite:///{tmp_path}/nokeys.sqlite3',
                                         'APIPHANT_AUTH_KEYS': ''})
    with pytest.raises(RuntimeError):
        server.start()
    assert 'APIPHANT_AUTH_KEYS' in server.output and 'Traceback' not in server.output


def test_the_commands_name_what_the_product_lacks(tmp_path):
    env = {**os.environ, 'APIPHANT_DATABASE_URL': f'sqlite:///{tmp_path}/none.sqlite3'}
    for command in ('users', 'keys'):
        done = subprocess.run([sys.executable, '-m', 'apiphant', command, str(PRODUCTS / 'guarded'), 'list'],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode != 0
        assert done.stderr.strip() == (f'apiphant {command}: guarded declares no '
                                       f'{"Accounts" if command == "users" else "ApiKeys"}() in its api tree')
