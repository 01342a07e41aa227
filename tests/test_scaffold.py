"""``apiphant new NAME [DIR]`` and ``apiphant upgrade [DIR]``: what they
write, that the product runs and its tests pass as generated (and stop with one
sentence without the right apiphant), what they refuse, and that the wheel in
``deploy/wheels/`` is this apiphant, the same whether made from this checkout
or from an installed apiphant."""
import os
import shutil
import stat
import subprocess
import sys
import venv
import zipfile

import pytest

from apiphant import __version__, scaffold
from conftest import ROOT

DEPLOY = ROOT / 'deploy_template'
PRODUCT = ROOT / 'product_template'
WHEEL = f'deploy/wheels/apiphant-{__version__}-py3-none-any.whl'


def new(*args, cwd=None, python=sys.executable, command='new'):
    return subprocess.run([python, '-m', 'apiphant', command, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def template_files(template):
    return sorted(str(relative) for relative, _ in scaffold._tree(template))


def rendered_files():
    return sorted([*(name.replace('myproduct', 'shop') for name in template_files(PRODUCT)),
                   *('deploy/' + name.replace('myproduct', 'shop') for name in template_files(DEPLOY))])


@pytest.fixture(scope='module')
def shop(tmp_path_factory):
    directory = tmp_path_factory.mktemp('new') / 'shop'
    result = new('shop', directory)
    assert result.returncode == 0, result.stderr
    return directory


def written(directory):
    return sorted(str(path.relative_to(directory)) for path in directory.rglob('*') if path.is_file())


def test_writes_the_rendered_templates_and_the_wheel(shop):
    assert written(shop) == sorted([*rendered_files(), WHEEL])
    for name in ('shop/api/v0/echo.py', 'shop/api/v0/notes.py', 'conftest.py', 'pytest.ini', '.gitignore',
                 'deploy/supervisor/shop.conf', 'deploy/nginx/shop'):
        assert name in written(shop)


def test_myproduct_is_replaced_everywhere(shop):
    for name in rendered_files():
        assert 'myproduct' not in name and 'myproduct' not in (shop / name).read_text(), name
    for template, prefix in ((PRODUCT, ''), (DEPLOY, 'deploy/')):
        for name in template_files(template):
            text = (template / name).read_text()
            assert (shop / (prefix + name.replace('myproduct', 'shop'))).read_text() == text.replace('myproduct', 'shop')


def test_scripts_are_executable_and_nothing_else(shop):
    for name in rendered_files():
        path = shop / name
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.read_text().startswith('#!') else 0o644), path
    assert {path.name for path in (shop / 'deploy').glob('*.sh') if os.access(path, os.X_OK)} == {
        'deploy.sh', 'reload.sh', 'quick-test.sh', 'uninstall.sh', 'as-product.sh'}


def test_the_generated_tests_pass_and_git_ignores_what_they_leave(shop):
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q'], cwd=shop, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '5 passed' in result.stdout
    assert not (shop / 'shop.sqlite3').exists()  # the generated tests run on a database of their own
    subprocess.run(['git', 'init', '-q', str(shop)], check=True)
    untracked = subprocess.run(['git', 'ls-files', '--others', '--exclude-standard'], cwd=shop,
                               capture_output=True, text=True, check=True).stdout.split()
    assert sorted(untracked) == sorted([*rendered_files(), WHEEL])  # no database, no cache, the wheel kept
    shutil.rmtree(shop / '.git')


def test_the_product_template_passes_ruff(shop):
    """With the project's rules (pyproject.toml), as CI checks the package."""
    ruff = shutil.which('ruff', path=os.path.dirname(sys.executable))
    if ruff is None:
        pytest.skip('ruff is not installed beside this Python')
    for directory in (PRODUCT, shop):
        result = subprocess.run([ruff, 'check', '--no-cache', '--config', str(ROOT / 'pyproject.toml'), '.'],
                                cwd=directory, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_product_routes_and_has_no_task_yet(shop):
    routes = subprocess.run([sys.executable, '-m', 'apiphant', str(shop / 'shop'), '--routes'],
                            cwd=shop, capture_output=True, text=True, timeout=60)
    assert routes.returncode == 0, routes.stderr
    for route in ('/api/v0/echo/read', '/api/v0/notes/create', '/api/v0/notes/list'):
        assert route in routes.stdout
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


def test_the_readme_has_two_commands_that_install_the_wheel_and_renders(shop):
    import docutils.core
    readme = (shop / 'README.rst').read_text()
    docutils.core.publish_string(readme, writer='null', settings_overrides={'halt_level': 2, 'report_level': 2})
    commands = [line.strip()[2:] for line in readme.splitlines() if line.strip().startswith('$ ')]
    assert len(commands) == 2
    install = commands[0].split(' && ')[1].split()
    assert install[:3] == ['.venv/bin/pip', 'install', '-q'] and 'deploy/wheels/apiphant-*.whl' in install
    assert 'apiphant' not in install  # never the name, which PyPI resolves to an unrelated 0.2 release
    assert '.venv/bin/python -m pytest' in commands[0] and 'apiphant shop 127.0.0.1:8001' in commands[0]
    assert commands[1] == 'sudo deploy/deploy.sh'


def without_apiphant(shop, tmp_path, version=None):
    """The product's tests run where importlib finds no apiphant, or an old
    one (a distribution of that version first on the path), and apiphant's
    plugin is not loaded: as in a virtualenv with PyPI's apiphant."""
    site = tmp_path / 'site'
    site.mkdir()
    if version:
        info = site / f'apiphant-{version}.dist-info'
        info.mkdir()
        (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: apiphant\nVersion: {version}\n')
    code = ('import importlib.metadata, sys, pytest\n'
            'if not sys.argv[1]:\n'
            '    real = importlib.metadata.version\n'
            '    def version(name):\n'
            '        if name == "apiphant": raise importlib.metadata.PackageNotFoundError(name)\n'
            '        return real(name)\n'
            '    importlib.metadata.version = version\n'
            'sys.exit(pytest.main(["-q", "-p", "no:apiphant"]))\n')
    return subprocess.run([sys.executable, '-c', code, version or ''], cwd=shop, capture_output=True, text=True,
                          env={**os.environ, 'PYTHONPATH': str(site)}, timeout=120)


@pytest.mark.parametrize('version, found', [(None, 'apiphant is not installed'),
                                            ('0.2.5', 'apiphant 0.2.5 is installed')])
def test_the_tests_say_in_one_sentence_that_apiphant_is_missing_or_old(shop, tmp_path, version, found):
    result = without_apiphant(shop, tmp_path, version)
    assert result.returncode == 4, result.stdout + result.stderr
    output = (result.stdout + result.stderr).strip()
    assert output == (f'ERROR: {found}, and these tests need the apiphant that wrote this product, 1.0 or '
                      f'later (PyPI\'s "apiphant" is an unrelated 0.2 release): install the wheel of '
                      f'deploy/wheels/, e.g. .venv/bin/pip install deploy/wheels/apiphant-*.whl')
    assert 'INTERNALERROR' not in output


def test_the_directory_defaults_to_the_name(tmp_path):
    result = new('shop', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'shop' / 'shop' / 'api' / 'v0' / 'echo.py').is_file()
    assert (tmp_path / 'shop' / 'deploy' / 'deploy.sh').is_file()
    assert (tmp_path / 'shop' / WHEEL).is_file()


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
    ('conftest', "'conftest' is taken"),
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


@pytest.mark.parametrize('template', ['deploy_template', 'product_template'])
def test_says_where_a_template_is_missing(tmp_path, monkeypatch, template):
    monkeypatch.setattr(scaffold, '__file__', str(tmp_path / 'apiphant' / 'scaffold.py'))
    with pytest.raises(scaffold.ScaffoldError, match=f'{template}/ is missing: looked in'):
        scaffold.template_dir(template)


def test_the_wheel_is_this_apiphant(tmp_path):
    # Built now, not with the module's product: others edit this checkout meanwhile.
    with zipfile.ZipFile(scaffold.build_wheel(tmp_path)) as wheel:
        assert wheel.testzip() is None
        names = wheel.namelist()
        info = f'apiphant-{__version__}.dist-info'
        assert names[-1] == f'{info}/RECORD'
        package = ROOT / 'apiphant'
        for relative, path in scaffold._tree(package):
            assert wheel.read(f'apiphant/{relative.as_posix()}') == path.read_bytes()
        for template in (PRODUCT, DEPLOY):
            for name in template_files(template):
                assert wheel.read(f'apiphant/{template.name}/{name}') == (template / name).read_bytes()
        for script in ('apiphant', 'apiphant-background'):
            body = wheel.read(f'apiphant-{__version__}.data/scripts/{script}')
            assert body.startswith(b'#!python\n') and body.endswith((ROOT / 'bin' / script).read_bytes().split(b'\n', 1)[1])
        metadata = wheel.read(f'{info}/METADATA').decode()
        assert f'Name: apiphant\nVersion: {__version__}\n' in metadata
        assert 'Requires-Dist: gevent' in metadata and 'Requires-Dist: httptools' in metadata
        assert wheel.read(f'{info}/entry_points.txt') == b'[pytest11]\napiphant = apiphant.pytest_plugin\n\n'
        assert all(entry.date_time == (1980, 1, 1, 0, 0, 0) for entry in wheel.infolist())


def test_upgrade_replaces_the_wheel(shop, tmp_path):
    product = tmp_path / 'product'
    shutil.copytree(shop, product)
    (product / WHEEL).unlink()
    old = product / 'deploy' / 'wheels' / 'apiphant-0.9.0-py3-none-any.whl'
    old.write_bytes(b'an older apiphant')
    upgraded = new(cwd=product, command='upgrade')
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith(f'apiphant upgrade: {old.name} -> {WHEEL}\n')
    assert sorted(os.listdir(old.parent)) == [f'apiphant-{__version__}-py3-none-any.whl']
    unchanged = new(product, command='upgrade')
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout == f'apiphant upgrade: {product / WHEEL} is this apiphant already\n'


def test_upgrade_refuses_a_directory_that_is_not_a_product(tmp_path):
    result = new(tmp_path, command='upgrade')
    assert result.returncode == 1
    assert result.stderr == f'apiphant upgrade: {tmp_path / "deploy"} is not a directory: DIR is a product ' \
                            f'made by apiphant new\n'
    assert os.listdir(tmp_path) == []


def test_an_installed_apiphant_writes_the_same_product_and_wheel(shop, tmp_path):
    """The product's wheel, installed (not editable) in a new virtualenv: its
    ``apiphant new`` finds both templates in the package and makes, from the
    installed files, the very same wheel."""
    environment = tmp_path / 'venv'
    venv.create(environment, with_pip=True)
    python = environment / 'bin' / 'python'
    install = subprocess.run([str(python), '-m', 'pip', 'install', '-q', str(shop / WHEEL)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    result = subprocess.run([str(environment / 'bin' / 'apiphant'), 'new', 'shop', str(tmp_path / 'shop')],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in rendered_files():
        assert (tmp_path / 'shop' / name).read_bytes() == (shop / name).read_bytes(), name
    assert (tmp_path / 'shop' / WHEEL).read_bytes() == (shop / WHEEL).read_bytes()
    template = subprocess.run([str(python), '-c', 'from apiphant import scaffold; print(scaffold.template_dir())'],
                              cwd=tmp_path, capture_output=True, text=True)
    assert template.stdout.strip().startswith(str(environment)), template.stdout + template.stderr


def test_the_wheel_refuses_metadata_of_another_version(tmp_path, monkeypatch):
    """The wheel carries the installed metadata's dependencies: they must be
    those of the running version (an editable install not reinstalled after
    a version change would lend it old ones)."""
    monkeypatch.setattr(scaffold, '__version__', '9.9.9')
    with pytest.raises(scaffold.ScaffoldError, match=f'the apiphant installed here is {__version__}, not the '
                       'running 9.9.9: reinstall the running one'):
        scaffold.build_wheel(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_setup_py_packages_both_templates(tmp_path):
    """A wheel built by pip from this checkout (``pip install .``, not
    editable) holds every template file in the package, where an installed
    ``apiphant new`` looks for them."""
    build = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--use-pep517',
                            '-w', str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    with zipfile.ZipFile(next(tmp_path.glob('apiphant-*.whl'))) as wheel:
        names = set(wheel.namelist())
    for template in (PRODUCT, DEPLOY):
        for name in template_files(template):
            assert f'apiphant/{template.name}/{name}' in names
