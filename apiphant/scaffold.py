"""``apiphant new NAME [DIR]``: a product that runs at once.

It writes the product package (an echo action, a background module with a
commented example task), a test that passes as generated, requirements.txt,
a README with the product's two commands, and ``deploy/``, rendered from
apiphant's ``deploy_template/``. Everything is rendered the same way: the
placeholder ``myproduct`` becomes NAME, in file names and contents alike.
"""
import argparse
import keyword
import re
import sys
from pathlib import Path

__all__ = ['ScaffoldError', 'check_name', 'template_dir', 'render', 'scaffold', 'main']

PLACEHOLDER = 'myproduct'

# The name is also the product's system user (at most 32 characters), its
# files under /etc and /opt, and its nginx and supervisor names: lowercase
# letters, digits and underscores suit them all.
_NAME = re.compile(r'[a-z][a-z0-9_]*\Z')
_MAX_LENGTH = 32
# Packages a product's process imports beside it, which it must not shadow.
_TAKEN = {'apiphant', 'gevent', 'greenlet', 'zope', 'orjson', 'httptools', 'requests', 'urllib3',
          'idna', 'certifi', 'charset_normalizer', 'pytest', 'pip', 'setuptools'}


class ScaffoldError(ValueError):
    """What ``apiphant new`` refuses, said so that the user can fix it."""


def check_name(name):
    """Raise ScaffoldError unless ``name`` can name a product."""
    if not _NAME.match(name):
        if name.isidentifier() and _NAME.match(name.lower()):
            raise ScaffoldError(f'{name!r}: a product name is lowercase ({name.lower()!r}): it also '
                                f'names its system user and its files')
        raise ScaffoldError(f'{name!r} is not a Python package name: a lowercase letter, then '
                            f'lowercase letters, digits or underscores (e.g. myproduct, my_shop)')
    if keyword.iskeyword(name):
        raise ScaffoldError(f'{name!r} is a Python keyword: it cannot be imported as a package')
    if name in sys.stdlib_module_names:
        raise ScaffoldError(f'{name!r} is a module of the standard library: the product would shadow it')
    if name == 'tests':
        raise ScaffoldError("'tests' is taken: it is the directory of the product's tests")
    if name in _TAKEN:
        raise ScaffoldError(f'{name!r} is taken: apiphant runs with a package of that name beside the product')
    if len(name) > _MAX_LENGTH:
        raise ScaffoldError(f'{name!r} is longer than {_MAX_LENGTH} characters: it also names the '
                            f'product\'s system user')


def template_dir():
    """``deploy_template/``: installed inside the package (a wheel), or beside
    it (a checkout, an editable install)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / 'deploy_template', package.parent / 'deploy_template'):
        if (candidate / 'deploy.sh').is_file():
            return candidate
    raise ScaffoldError(f'deploy_template/ is missing: looked in {package} and {package.parent}; '
                        f'reinstall apiphant')


def render(text, name):
    return text.replace(PLACEHOLDER, name)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding='utf-8')
    path.chmod(0o755 if text.startswith('#!') else 0o644)


def scaffold(name, directory):
    """Write the product ``name`` into ``directory`` (new, or empty); the
    paths written, relative to it."""
    check_name(name)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f'{directory} exists and is not a directory')
    if directory.is_dir() and any(directory.iterdir()):
        raise ScaffoldError(f'{directory} exists and is not empty: apiphant new writes a product '
                            f'into a new or empty directory')
    template = template_dir()
    files = {Path(render(path, name)): render(text, name) for path, text in PRODUCT.items()}
    for path in sorted(template.rglob('*')):
        if path.is_file() and not path.name.startswith('.') and '__pycache__' not in path.parts:
            relative = path.relative_to(template)
            files[Path('deploy', *(render(part, name) for part in relative.parts))] = render(
                path.read_text(encoding='utf-8'), name)
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        _write(directory / path, text)
    return sorted(files)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='apiphant new', description='Write a new product that runs at once: its package, '
        'a passing test, a README and deploy/ (deploy.sh, supervisor, nginx, logrotate).')
    parser.add_argument('name', help='the product\'s package name: lowercase letters, digits, underscores')
    parser.add_argument('directory', nargs='?', help='where to write it, new or empty (default: ./NAME)')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    directory = Path(args.directory or args.name)
    try:
        written = scaffold(args.name, directory)
    except ScaffoldError as error:
        sys.exit(f'apiphant new: {error}')
    print(f'apiphant new: wrote the product {args.name} in {directory}/:')
    for path in written:
        print(f'    {path}')
    print(f'Next, in {directory}/: the two commands of README.rst (test and serve here; deploy on a server).')


PRODUCT = {
    'myproduct/__init__.py': '"""myproduct: an apiphant product, served by `apiphant myproduct HOST:PORT`."""\n',
    'myproduct/api/__init__.py': '',
    'myproduct/api/v0/__init__.py': '',
    'myproduct/api/v0/echo.py': '''\
"""Echo: POST /api/v0/echo/read answers the request with the server's name added."""


def read(request):
    """Return the request with "server": "myproduct" added."""
    response = request.copy()
    response.server = 'myproduct'
    return response
''',
    'myproduct/api/background.py': '''\
"""Background tasks of myproduct: each function marked @seconds(N) runs every
N seconds in `apiphant-background myproduct` (under supervisor once deployed).

An example: uncomment it, and the scheduler logs a line every minute.
"""
# import logging
#
# from apiphant.background import seconds
#
# log = logging.getLogger(__name__)
#
#
# @seconds(60)
# def report_alive():
#     log.info('myproduct is alive')
''',
    'tests/test_api.py': '''\
"""The API of myproduct as a client sees it: apiphant's pytest plugin serves
the product (apiphant_product in pytest.ini) on a free port for the session."""
import pytest

from apiphant.test import test


@pytest.fixture(autouse=True)
def served(apiphant_server):
    return apiphant_server


def test_echo():
    test('echo', 'read', {'hello': 'world'}, 200, {'hello': 'world', 'server': 'myproduct'})


def test_echo_of_nothing():
    test('echo', 'read', None, 200, {'server': 'myproduct'})


def test_unknown_action():
    test('echo', 'delete', {}, 404, {'error': '404 Not Found'})
''',
    'pytest.ini': '''\
[pytest]
testpaths = tests
apiphant_product = myproduct
filterwarnings = error
''',
    'requirements.txt': '''\
# What myproduct needs besides apiphant, one requirement a line, as pip reads
# them. deploy/deploy.sh installs them with apiphant (APIPHANT_SOURCE in
# deploy/settings.sh) into /opt/myproduct/venv.
''',
    '.gitignore': '.venv/\n__pycache__/\n.pytest_cache/\n',
    'README.rst': '''\
myproduct
=========

An API served by apiphant: a function ``create``, ``read``, ``update`` or
``delete`` of a module under ``myproduct/api/v0/`` is the endpoint
``POST /api/v0/<module>/<function>``.

The first command installs apiphant in ``.venv``, runs the tests and serves
the product on http://127.0.0.1:8001; the second, as root on a fresh Debian 12
or Ubuntu 22.04+ server, from a copy of this directory, deploys it behind nginx
on port 80.

.. code-block:: console

    $ python3 -m venv .venv && .venv/bin/pip install -q apiphant pytest -r requirements.txt && .venv/bin/python -m pytest && .venv/bin/apiphant myproduct 127.0.0.1:8001
    $ sudo deploy/deploy.sh

Then::

    curl -X POST http://127.0.0.1:8001/api/v0/echo/read -d '{"hello": "world"}'
    {"hello":"world","server":"myproduct"}

What is where
-------------

::

    myproduct/api/v0/echo.py      POST /api/v0/echo/read
    myproduct/api/background.py   @seconds(N) tasks, run by apiphant-background
    tests/test_api.py             the tests: .venv/bin/python -m pytest
    requirements.txt              what the product needs besides apiphant
    deploy/                       the server: deploy.sh and what it installs

Deploy
------

``deploy/deploy.sh`` installs python3-venv, nginx, supervisor and logrotate
with apt, a system user ``myproduct``, the product and its virtualenv under
``/opt/myproduct``, the configs ``deploy/supervisor/myproduct.conf`` (the API
processes and the scheduler), ``deploy/nginx/myproduct`` and
``deploy/logrotate/nginx-myproduct``, starts what is needed and ends with
``deploy/quick-test.sh``. Run it again after a change: new code is rolled out
one API process at a time by ``deploy/reload.sh``, with no failed request.
The settings (how many API processes, ports, the request body limit, where
apiphant comes from) are in ``deploy/settings.sh``; ``deploy/uninstall.sh
--yes`` removes it all again. Logs: ``/opt/myproduct/log/``.
''',
}
