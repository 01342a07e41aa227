"""CORS (apiphant/cors.py): off by default; with --cors-origins, preflights
and answers for the listed origins, exactly, through a real server; the
same through the WSGI callable; and a real browser (headless Chromium) on
another origin calling an action with apiphant's JavaScript client."""
import http.server
import io
import shutil
import socket
import subprocess
import sys
import threading
import time
import wsgiref.util
import wsgiref.validate

import orjson
import pytest
import requests

import apiphant
from apiphant.cors import origins
from apiphant.jsclient import PATH as CLIENT_PATH
from apiphant.pytest_plugin import ServedProduct
from conftest import PRODUCTS, raw_exchange, skip_or_fail

APP = 'https://app.example.com'
DEV = 'http://localhost:5173'
EVIL = 'https://app.example.com.evil.example'
ECHO = '/api/v0/echo/read'
PREFLIGHT = {'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,authorization'}
CORS_HEADERS = ('Access-Control-Allow-Origin', 'Access-Control-Expose-Headers', 'Access-Control-Allow-Methods',
                'Access-Control-Allow-Headers', 'Access-Control-Max-Age', 'Access-Control-Allow-Credentials')


@pytest.fixture(scope='module')
def cors():
    """proto, with CORS on for two origins."""
    server = ServedProduct(PRODUCTS / 'proto', '--access-log', 'off', '--max-body-size', '1K',
                           env={'APIPHANT_CORS_ORIGINS': f'{APP}, {DEV}'}).start()
    yield server
    server.stop()


def options(server, path, origin=None, headers=PREFLIGHT):
    return requests.options(server.url + path, headers={**({'Origin': origin} if origin else {}), **headers},
                            timeout=10)


def post(server, path, body=None, origin=None, **kwargs):
    headers = {'Origin': origin} if origin else {}
    return requests.post(server.url + path, json=body, headers=headers, timeout=10, **kwargs)


def allowed(response, origin):
    assert response.headers['Access-Control-Allow-Origin'] == origin
    assert response.headers['Vary'] == 'Origin'
    assert response.headers['Access-Control-Expose-Headers'] == 'X-Request-Id, Retry-After'
    assert 'Access-Control-Allow-Credentials' not in response.headers


def no_cors(response):
    assert not [name for name in CORS_HEADERS if name in response.headers], response.headers


# --- origins ----------------------------------------------------------------------------------------

def test_origins_are_written_as_browsers_send_them():
    assert origins('') == ()
    assert origins('https://App.Example.com, http://localhost:5173,https://app.example.com:443') == (
        'https://app.example.com', 'http://localhost:5173')
    assert origins('http://[::1]:8080 http://127.0.0.1:80') == ('http://[::1]:8080', 'http://127.0.0.1')


@pytest.mark.parametrize('text', ['*', 'null', 'app.example.com', 'https://app.example.com/', 'https://a.example/x',
                                  'ftp://a.example', 'https://a.example?x', 'https://user@a.example',
                                  'https://a.example:99999', 'https://a.example:', 'https://'])
def test_what_is_not_an_origin_is_refused_with_the_form_of_one(text):
    with pytest.raises(ValueError, match='scheme://host'):
        origins(text)


def test_a_bad_origin_stops_the_command_with_the_form_of_one():
    result = subprocess.run([sys.executable, '-m', 'apiphant', str(PRODUCTS / 'proto'), '--routes',
                             '--cors-origins', 'https://a.example,*'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "'*' is not allowed as an origin: name each origin" in result.stderr


# --- off by default ----------------------------------------------------------------------------------

def test_off_by_default_nothing_is_added_and_options_is_405(proto):
    answer = options(proto, ECHO, APP)
    assert answer.status_code == 405 and answer.headers['Allow'] == 'POST'
    no_cors(answer)
    answer = post(proto, ECHO, {'a': 1}, APP)
    assert answer.json() == {'a': 1, 'server': 'proto'}
    no_cors(answer)
    assert 'Vary' not in answer.headers


# --- on: preflights -----------------------------------------------------------------------------------

@pytest.mark.parametrize('origin', [APP, DEV])
def test_a_preflight_from_an_allowed_origin_is_204_with_what_may_be_sent(cors, origin):
    answer = options(cors, ECHO, origin)
    assert answer.status_code == 204 and answer.content == b''
    allowed(answer, origin)
    assert answer.headers['Access-Control-Allow-Methods'] == 'POST'
    assert answer.headers['Access-Control-Allow-Headers'] == 'Content-Type, Authorization, X-Request-Id, Last-Event-ID'
    assert answer.headers['Access-Control-Max-Age'] == '600'


def test_a_204_has_neither_length_nor_type_and_the_connection_goes_on(cors):
    preflight = (b'OPTIONS /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nOrigin: ' + APP.encode()
                 + b'\r\nAccess-Control-Request-Method: POST\r\n\r\n')
    echo = b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'
    answer = b''
    with socket.create_connection((cors.host, cors.port), timeout=10) as sock:
        sock.sendall(preflight + echo)
        while not answer.endswith(b'{"server":"proto"}'):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    first, _, second = answer.partition(b'\r\n\r\n')
    assert first.startswith(b'HTTP/1.1 204 No Content\r\n')
    assert b'\r\nContent-Length:' not in first and b'\r\nContent-Type:' not in first
    assert second.startswith(b'HTTP/1.1 200 OK\r\n') and answer.endswith(b'{"server":"proto"}')


def test_a_preflight_to_a_path_with_no_route_passes_so_that_the_page_reads_the_404(cors):
    answer = options(cors, '/api/v0/nothing/read', APP)
    assert answer.status_code == 204
    allowed(answer, APP)
    answer = post(cors, '/api/v0/nothing/read', {}, APP)
    assert (answer.status_code, answer.json()) == (404, {'error': '404 Not Found'})
    allowed(answer, APP)


def test_a_preflight_says_the_methods_of_its_path(cors):
    assert options(cors, '/api/v0/raw/read', APP).headers['Access-Control-Allow-Methods'] == 'GET, POST'


@pytest.mark.parametrize('origin', [EVIL, 'https://app.example.com:8443', 'http://app.example.com',
                                    'HTTPS://APP.EXAMPLE.COM', 'null'])
def test_a_preflight_from_another_origin_is_403_and_allows_nothing(cors, origin):
    answer = options(cors, ECHO, origin)
    assert answer.status_code == 403
    assert answer.json() == {'error': f'the origin {origin} may not call this API (see --cors-origins)'}
    no_cors(answer)
    assert answer.headers['Vary'] == 'Origin'


def test_options_that_is_no_preflight_is_405_as_without_cors(cors):
    answer = options(cors, ECHO, headers={})
    assert answer.status_code == 405 and answer.headers['Allow'] == 'POST'
    no_cors(answer)
    answer = options(cors, ECHO, APP, headers={})  # an Origin but no Access-Control-Request-Method
    assert answer.status_code == 405 and answer.json() == {'error': '405 Method Not Allowed'}
    allowed(answer, APP)


# --- on: answers ----------------------------------------------------------------------------------------

def test_an_answer_to_an_allowed_origin_names_it(cors):
    answer = post(cors, ECHO, {'a': 1}, DEV)
    assert answer.json() == {'a': 1, 'server': 'proto'}
    allowed(answer, DEV)
    assert answer.headers['X-Request-Id']


@pytest.mark.parametrize(('path', 'body', 'status', 'error'), [
    ('/api/v0/fields/read', {'id': 'x'}, 400, {'field': 'id', 'state': 'invalid'}),
    ('/api/v0/fields/read', {}, 400, {'field': 'id', 'state': 'missing'}),
    ('/api/v0/errors/create', {'cls': 'Conflict', 'args': ['taken']}, 409, 'taken'),
    ('/api/v0/echo/update', {}, 500, '500 Internal Server Error'),
], ids=['invalid', 'missing', 'conflict', 'crash'])
def test_errors_keep_their_shape_and_reach_the_page(cors, path, body, status, error):
    answer = post(cors, path, body, APP)
    assert answer.status_code == status
    got = answer.json()
    if isinstance(error, dict):  # a field error, with or without its explain
        got['error'].pop('explain', None)
    assert got == {'error': error}
    allowed(answer, APP)


def test_a_503_shows_its_retry_after_to_the_page(cors):
    answer = post(cors, '/api/v0/errors/create', {'cls': 'ServiceUnavailable', 'args': ['busy', 3]}, APP)
    assert (answer.status_code, answer.headers['Retry-After']) == (503, '3')
    allowed(answer, APP)


def test_a_415_reaches_the_page(cors):
    answer = requests.post(cors.url + ECHO, data='a=1', timeout=10,
                           headers={'Origin': APP, 'Content-Type': 'application/x-www-form-urlencoded'})
    assert answer.status_code == 415
    allowed(answer, APP)


def test_what_the_front_refuses_reaches_the_page(cors):
    answer = raw_exchange(cors, b'POST /api/v0/echo/read HTTP/1.1\r\nHost: x\r\nOrigin: ' + APP.encode()
                          + b'\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n', read_until_close=True)
    assert answer.startswith(b'HTTP/1.1 413 ')
    assert b'\r\nAccess-Control-Allow-Origin: https://app.example.com\r\nVary: Origin\r\n' in answer


def test_an_answer_to_another_origin_allows_nothing(cors):
    answer = post(cors, ECHO, {'a': 1}, EVIL)
    assert answer.status_code == 200  # served: the browser, not the server, keeps it from the page
    no_cors(answer)
    assert answer.headers['Vary'] == 'Origin'


def test_an_answer_without_origin_has_nothing_added(cors):
    answer = post(cors, ECHO, {'a': 1})
    no_cors(answer)
    assert 'Vary' not in answer.headers


def test_the_client_module_and_health_are_shared_with_allowed_origins(cors):
    for path in (CLIENT_PATH, '/health'):
        answer = requests.get(cors.url + path, headers={'Origin': APP}, timeout=10)
        assert answer.status_code == 200
        allowed(answer, APP)


def test_the_fast_answer_with_cors_is_what_head_makes():
    from apiphant.cors import Cors
    from apiphant.front import _CORS_ANSWER, head
    cors, payload, date = Cors((APP,)), b'{"a":1}', b'Sun, 29 Nov 2026 06:00:00 GMT'
    for origin in (APP.encode(), EVIL.encode()):
        fast = _CORS_ANSWER % (b'200 OK', cors.lines(origin), len(payload), b'f00-1', date, payload)
        assert fast == head(b'200 OK', cors.add((), origin), b'f00-1', payload, date)
    assert cors.add((('Allow', 'POST'),), APP.encode())[0] == ('Allow', 'POST')


# --- the WSGI callable ---------------------------------------------------------------------------------

def wsgi(application, method, path, body=b'', **environ):
    env = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': '', 'SCRIPT_NAME': '', 'wsgi.input': io.BytesIO(body),
           'CONTENT_LENGTH': str(len(body)) if body else '', 'CONTENT_TYPE': 'application/json' if body else '',
           **environ}
    wsgiref.util.setup_testing_defaults(env)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=headers)
    chunks = wsgiref.validate.validator(application)(env, start_response)
    try:
        answer['body'] = b''.join(chunks)
    finally:
        chunks.close()
    return answer


def test_the_wsgi_callable_answers_preflights_and_names_the_origin():
    application = apiphant.app(str(PRODUCTS / 'proto'), cors_origins=(APP,))
    answer = wsgi(application, 'OPTIONS', ECHO, HTTP_ORIGIN=APP, HTTP_ACCESS_CONTROL_REQUEST_METHOD='POST')
    headers = dict(answer['headers'])
    assert answer['status'] == '204 No Content' and answer['body'] == b'' and 'Content-Length' not in headers
    assert (headers['Access-Control-Allow-Origin'], headers['Access-Control-Allow-Methods']) == (APP, 'POST')
    answer = wsgi(application, 'POST', ECHO, b'{"a": 1}', HTTP_ORIGIN=APP)
    assert orjson.loads(answer['body']) == {'a': 1, 'server': 'proto'}
    assert ('Access-Control-Allow-Origin', APP) in answer['headers'] and ('Vary', 'Origin') in answer['headers']
    answer = wsgi(application, 'OPTIONS', ECHO, HTTP_ORIGIN=EVIL, HTTP_ACCESS_CONTROL_REQUEST_METHOD='POST')
    assert answer['status'] == '403 Forbidden' and ('Vary', 'Origin') in answer['headers']
    assert not [name for name, _ in answer['headers'] if name.startswith('Access-Control-')]


def test_the_wsgi_callable_adds_nothing_when_off():
    application = apiphant.app(str(PRODUCTS / 'proto'), cors_origins=())
    assert application.cors is None
    answer = wsgi(application, 'POST', ECHO, b'{}', HTTP_ORIGIN=APP)
    assert not [name for name, _ in answer['headers'] if name.startswith('Access-Control-') or name == 'Vary']


# --- a real browser on another origin -------------------------------------------------------------------

PAGE = '''<!doctype html>
<meta charset="utf-8">
<title>apiphant CORS test</title>
<script type="module">
const outcome = {};
try {
  const {Client, ApiError, Invalid, NetworkError} = await import(%(client)s);
  const api = new Client(%(api)s, {token: 'a-token', retries: 0, timeout: 5000});
  try {
    outcome.answer = await api.v0.echo.read({hello: 'browser'}, {requestId: 'page-1'});
  } catch (error) {
    outcome.answerError = `${error.name}: ${error.message}`;
  }
  try {
    await api.v0.fields.read({id: 'seven'});
    outcome.error = 'no error';
  } catch (error) {
    outcome.error = {name: error.name, status: error.status, field: error.field, state: error.state,
                     isApiError: error instanceof ApiError, isInvalid: error instanceof Invalid,
                     isNetworkError: error instanceof NetworkError, requestId: error.requestId};
  }
} catch (error) {
  outcome.importError = `${error.name}: ${error.message}`;
}
window.outcome = outcome;
</script>
'''


class _Pages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def pages(tmp_path):
    """Two static origins on 127.0.0.1 (other ports than the API's): ``serve(name, text)``."""
    servers = []
    for _ in range(2):
        handler = lambda *args, **kwargs: _Pages(*args, directory=str(tmp_path), **kwargs)  # noqa: E731
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

    def origin(index):
        return f'http://127.0.0.1:{servers[index].server_address[1]}'

    def write(name, text):
        (tmp_path / name).write_text(text, encoding='utf-8')

    yield origin, write
    for server in servers:
        server.shutdown()
        server.server_close()


def chromium_options_and_service():
    binary = shutil.which('chromium')
    driver = shutil.which('chromedriver')
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail('selenium is not installed (pip install -e .[test])')
    if not binary or not driver:
        skip_or_fail('chromium or chromedriver is not installed (apt-get install chromium chromium-driver)')
    return webdriver, binary, driver, Service


@pytest.fixture
def browser(tmp_path):
    webdriver, binary, driver, Service = chromium_options_and_service()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--no-first-run', f'--user-data-dir={tmp_path / "chromium"}'):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    yield session
    session.quit()


def outcome_of(browser, url):
    browser.get(url)
    deadline = time.monotonic() + 30  # a bound on a hang, not a measure
    while time.monotonic() < deadline:
        outcome = browser.execute_script('return window.outcome')
        if outcome is not None:
            return outcome
        time.sleep(0.05)
    raise AssertionError(f'the page set no outcome; its console: {browser.get_log("browser")}')


def test_a_page_on_another_origin_calls_an_action_with_the_js_client(pages, browser):
    origin, write = pages
    with ServedProduct(PRODUCTS / 'proto', '--access-log', 'off', env={'APIPHANT_CORS_ORIGINS': origin(0)}) as api:
        write('page.html', PAGE % {'client': repr(api.url + CLIENT_PATH), 'api': repr(api.url)})
        outcome = outcome_of(browser, origin(0) + '/page.html')
    assert outcome['answer'] == {'hello': 'browser', 'server': 'proto'}, outcome
    assert outcome['error'] == {'name': 'Invalid', 'status': 400, 'field': 'id', 'state': 'invalid',
                                'isApiError': True, 'isInvalid': True, 'isNetworkError': False,
                                'requestId': outcome['error']['requestId']}
    assert outcome['error']['requestId']  # X-Request-Id, exposed to the page


def test_a_page_on_an_origin_not_allowed_can_neither_import_the_client_nor_call(pages, browser):
    origin, write = pages
    with ServedProduct(PRODUCTS / 'proto', '--access-log', 'off', env={'APIPHANT_CORS_ORIGINS': origin(0)}) as api:
        source = requests.get(api.url + CLIENT_PATH, timeout=10).text
        write('client.js', source)  # the same module, from the page's own origin
        write('imports.html', PAGE % {'client': repr(api.url + CLIENT_PATH), 'api': repr(api.url)})
        write('calls.html', PAGE % {'client': repr('./client.js'), 'api': repr(api.url)})
        imports = outcome_of(browser, origin(1) + '/imports.html')
        calls = outcome_of(browser, origin(1) + '/calls.html')
    assert imports.keys() == {'importError'}, imports
    assert calls['answerError'].startswith('NetworkError: /api/v0/echo/read: no answer'), calls
    assert calls['error']['name'] == 'NetworkError' and calls['error']['status'] == 0, calls
