"""GET /docs: Swagger UI from the installed package, offline, and working in
a real browser (Debian's chromium, driven through chromium-driver)."""
import json
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from apiphant.docs import assets
from apiphant.pytest_plugin import ServedProduct
from conftest import ROOT, skip_or_fail

EXAMPLE = ROOT / 'examples' / 'myproduct'
ECHO = "//div[contains(@class, 'opblock ')][.//*[@data-path='/api/v0/echo/read']]"


@pytest.fixture(scope='module')
def server():
    served = ServedProduct(EXAMPLE, '--access-log', 'off').start()
    yield served
    served.stop()


def test_the_page_and_its_files_come_from_the_installed_package(server):
    page = requests.get(server.url + '/docs', timeout=10)
    assert page.status_code == 200 and page.headers['Content-Type'] == 'text/html; charset=utf-8'
    policy = page.headers['Content-Security-Policy']
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert '<title>myproduct: API docs</title>' in page.text
    linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert linked and all(link.startswith('/docs/') for link in linked)  # nothing from elsewhere
    directory = assets()
    assert re.fullmatch(r'swagger-ui-5\.\d+\.\d+', directory.name)
    for name, media in (('swagger-ui-bundle.js', 'text/javascript'), ('swagger-ui.css', 'text/css'),
                        ('favicon-32x32.png', 'image/png')):
        answer = requests.get(f'{server.url}/docs/{name}', timeout=10)
        assert answer.status_code == 200 and answer.headers['Content-Type'].startswith(media)
        assert answer.content == (directory / name).read_bytes()
        assert answer.headers['Cache-Control'] == 'public, max-age=86400'
    start = requests.get(server.url + '/docs/start.js', timeout=10).text
    assert "url: '/api/openapi.json'" in start and 'validatorUrl: null' in start
    assert requests.post(server.url + '/docs', timeout=10).status_code == 405


def test_no_third_party_file_is_committed():
    files = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [name for name in files if re.search(r'swagger|\.min\.(js|css)$', name)]


def _browser(tmp_path):
    """Headless chromium whose only reachable host is 127.0.0.1."""
    chromium, driver = shutil.which('chromium'), shutil.which('chromedriver')
    if chromium is None or driver is None:
        skip_or_fail('needs Debian\'s chromium and chromium-driver (apt-get install chromium chromium-driver)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                     '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
                     f'--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}',
                     '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'performance': 'ALL', 'browser': 'ALL'})
    return webdriver.Chrome(options=options, service=Service(driver))


def test_try_it_out_on_echo_in_a_real_browser_offline(server, tmp_path):
    """The page lists the example's operations and "Try it out" on echo shows
    the answer; every request the browser made went to the test server (or
    was a data: URL), and none failed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait
    browser = _browser(tmp_path)
    try:
        browser.get('about:blank')
        browser.get_log('performance')  # the browser's own start-up, before the page
        browser.get(server.url + '/docs')
        wait = WebDriverWait(browser, 30)
        echo = wait.until(ready.presence_of_element_located((By.XPATH, ECHO)))
        paths = [element.get_attribute('data-path')
                 for element in browser.find_elements(By.CSS_SELECTOR, '.opblock-summary-path')]
        assert {'/api/v0/echo/read', '/api/v0/tasks/create', '/api/v0/tasks/read', '/api/v0/users/sessions/create',
                '/api/v0/users/sessions/whoami', '/health'} <= set(paths)
        echo.find_element(By.CSS_SELECTOR, '.opblock-summary-control').click()
        wait.until(ready.element_to_be_clickable((By.XPATH, ECHO + "//button[contains(@class, 'try-out__btn')]"))).click()
        body = wait.until(ready.presence_of_element_located(
            (By.XPATH, ECHO + "//textarea[contains(@class, 'body-param__text')]")))
        body.clear()
        body.send_keys('{"hello": "from the docs page"}')
        browser.find_element(By.XPATH, ECHO + "//button[contains(@class, 'execute')]").click()
        answer = wait.until(ready.presence_of_element_located(
            (By.XPATH, ECHO + "//*[contains(@class, 'live-responses-table')]"
                              "//*[contains(@class, 'response-col_description')]//pre")))
        assert json.loads(answer.text) == {'hello': 'from the docs page', 'server': 'myproduct'}
        events = [json.loads(entry['message'])['message'] for entry in browser.get_log('performance')]
        console = browser.get_log('browser')
    finally:
        browser.quit()
    sent = {event['params']['requestId']: event['params']['request']['url']
            for event in events if event['method'] == 'Network.requestWillBeSent'}
    elsewhere = [url for url in sent.values() if not url.startswith((server.url + '/', 'data:'))]
    assert not elsewhere
    assert server.url + '/api/openapi.json' in sent.values() and server.url + '/api/v0/echo/read' in sent.values()
    failed = [(sent.get(event['params']['requestId']), event['params'].get('errorText'))
              for event in events if event['method'] == 'Network.loadingFailed']
    assert not failed
    assert not [line for line in console if line['level'] == 'SEVERE'], console
