"""``apiphant new NAME [DIR]``: what it writes, that the product runs and its
tests pass as generated, what it refuses, and that an installed (not
editable) apiphant finds its deploy template."""
import os
import stat
import subprocess
import sys
import venv

import pytest

from apiphant import scaffold
from conftest import ROOT

TEMPLATE = ROOT / 'deploy_template'
PRODUCT_FILES = ['.gitignore', 'README.rst', 'pytest.ini', 'requirements.txt', 'shop/__init__.py',
                 'shop/api/__init__.py', 'shop/api/background.py', 'shop/api/v0/__init__.py',
                 'shop/api/v0/echo.py', 'tests/test_api.py']


def new(*args, cwd=None, python=sys.executable):
    return subprocess.run([python, '-m', 'apiphant', 'new', *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def template_files():
    return sorted(str(path.relative_to(TEMPLATE)) for path in TEMPLATE.rglob('*') if path.is_file()
                  and '__pycache__' not in path.parts)


@pytest.fixture(scope='module')
def shop(tmp_path_factory):
    directory = tmp_path_factory.mktemp('new') / 'shop'
    result = new('shop', directory)
    assert result.returncode == 0, result.stderr
    return directory


def test_writes_the_product_and_the_rendered_deploy_directory(shop):
    written = sorted(str(path.relative_to(shop)) for path in shop.rglob('*') if path.is_file())
    deploy = sorted('deploy/' + name.replace('myproduct', 'shop') for name in template_files())
    assert written == sorted(PRODUCT_FILES + deploy)
    assert 'deploy/supervisor/shop.conf' in written and 'deploy/nginx/shop' in written


def test_myproduct_is_replaced_everywhere(shop):
    for path in shop.rglob('*'):
        assert 'myproduct' not in str(path.relative_to(shop))
        if path.is_file():
            assert 'myproduct' not in path.read_text(), path
    for name in template_files():
        text = (TEMPLATE / name).read_text()
        assert (shop / 'deploy' / name.replace('myproduct', 'shop')).read_text() == text.replace('myproduct', 'shop')


def test_scripts_are_executable_and_nothing_else(shop):
    for path in shop.rglob('*'):
        if path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.read_text().startswith('#!') else 0o644), path
    assert {path.name for path in (shop / 'deploy').glob('*.sh') if os.access(path, os.X_OK)} == {
        'deploy.sh', 'reload.sh', 'quick-test.sh', 'uninstall.sh'}


def test_the_generated_tests_pass(shop):
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider'], cwd=shop,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '3 passed' in result.stdout


def test_the_product_routes_and_has_no_task_yet(shop):
    routes = subprocess.run([sys.executable, '-m', 'apiphant', str(shop / 'shop'), '--routes'],
                            capture_output=True, text=True, timeout=60)
    assert routes.returncode == 0, routes.stderr
    assert '/api/v0/echo/read' in routes.stdout
    background = (shop / 'shop' / 'api' / 'background.py').read_text()
    assert '# @seconds(60)\n# def report_alive():\n' in background
    compile(background, 'background.py', 'exec')


def test_the_example_task_runs_once_uncommented(tmp_path):
    directory = tmp_path / 'shop'
    assert new('shop', directory).returncode == 0
    module = directory / 'shop' / 'api' / 'background.py'
    module.write_text('\n'.join(line[2:] if line.startswith('# ') else line.lstrip('#')
                                for line in module.read_text().splitlines()) + '\n')
    scheduler = os.path.join(os.path.dirname(sys.executable), 'apiphant-background')
    result = subprocess.run([scheduler, str(directory / 'shop'), '--run', 'report_alive'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'shop is alive' in result.stderr


def test_the_readme_has_two_commands_and_renders(shop):
    import docutils.core
    readme = (shop / 'README.rst').read_text()
    docutils.core.publish_string(readme, writer='null', settings_overrides={'halt_level': 2, 'report_level': 2})
    commands = [line.strip()[2:] for line in readme.splitlines() if line.strip().startswith('$ ')]
    assert len(commands) == 2
    assert '.venv/bin/python -m pytest' in commands[0] and 'apiphant shop 127.0.0.1:8001' in commands[0]
    assert commands[1] == 'sudo deploy/deploy.sh'


def test_the_directory_defaults_to_the_name(tmp_path):
    result = new('shop', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'shop' / 'shop' / 'api' / 'v0' / 'echo.py').is_file()
    assert (tmp_path / 'shop' / 'deploy' / 'deploy.sh').is_file()


def test_an_empty_directory_is_fine(tmp_path):
    assert new('shop', tmp_path).returncode == 0
    assert (tmp_path / 'deploy' / 'deploy.sh').is_file()


@pytest.mark.parametrize('name, message', [
    ('Shop', "'Shop': a product name is lowercase ('shop')"),
    ('my-shop', "'my-shop' is not a Python package name"),
    ('1shop', "'1shop' is not a Python package name"),
    ('', "'' is not a Python package name"),
    ('class', "'class' is a Python keyword"),
    ('json', "'json' is a module of the standard library"),
    ('gevent', "'gevent' is taken"),
    ('tests', "'tests' is taken"),
    ('s' * 33, 'is longer than 32 characters'),
])
def test_refuses_a_bad_name(tmp_path, name, message):
    result = new(name, tmp_path / 'product')
    assert result.returncode == 1
    assert result.stderr.startswith('apiphant new: ') and message in result.stderr, result.stderr
    assert not (tmp_path / 'product').exists()


def test_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / 'keep.txt').write_text('mine')
    result = new('shop', tmp_path)
    assert result.returncode == 1
    assert f'apiphant new: {tmp_path} exists and is not empty' in result.stderr
    assert sorted(os.listdir(tmp_path)) == ['keep.txt']


def test_refuses_a_file(tmp_path):
    (tmp_path / 'shop').write_text('')
    result = new('shop', tmp_path / 'shop')
    assert result.returncode == 1 and 'exists and is not a directory' in result.stderr


def test_says_where_the_template_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(scaffold, '__file__', str(tmp_path / 'apiphant' / 'scaffold.py'))
    with pytest.raises(scaffold.ScaffoldError, match='deploy_template/ is missing: looked in'):
        scaffold.template_dir()


def test_an_installed_apiphant_renders_the_deploy_directory(tmp_path):
    """A wheel built from this checkout, installed (not editable) in a new
    virtualenv: its ``apiphant new`` finds the deploy template in the package."""
    wheels = tmp_path / 'wheels'
    build = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--use-pep517',
                            '-w', str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    environment = tmp_path / 'venv'
    venv.create(environment, with_pip=True)
    python = environment / 'bin' / 'python'
    install = subprocess.run([str(python), '-m', 'pip', 'install', '-q', *map(str, wheels.glob('*.whl'))],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    result = subprocess.run([str(environment / 'bin' / 'apiphant'), 'new', 'shop', str(tmp_path / 'shop')],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in template_files():
        rendered = tmp_path / 'shop' / 'deploy' / name.replace('myproduct', 'shop')
        assert rendered.read_text() == (TEMPLATE / name).read_text().replace('myproduct', 'shop')
    assert os.access(tmp_path / 'shop' / 'deploy' / 'deploy.sh', os.X_OK)
    template = subprocess.run([str(python), '-c', 'from apiphant import scaffold; print(scaffold.template_dir())'],
                              cwd=tmp_path, capture_output=True, text=True)
    assert template.stdout.strip().startswith(str(environment)), template.stdout + template.stderr
