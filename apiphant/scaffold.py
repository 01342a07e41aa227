"""``apiphant new NAME [DIR]``: a product that runs at once; ``apiphant
upgrade [DIR]``: its copy of apiphant brought up to the running one.

A product is rendered from two real trees of files: ``product_template/``
(the package, its tests, pytest.ini, conftest.py, README.rst,
requirements.txt, .gitignore) and ``deploy_template/`` (as ``deploy/``). The
placeholder ``myproduct`` becomes NAME, in file names and contents alike.

The product carries the apiphant that made it, as a wheel in
``deploy/wheels/``: its README's first command and ``deploy.sh`` install that
file, by path, so that pip never looks the name up on PyPI, whose
``apiphant`` is an unrelated 0.2 release. The wheel is zipped here from the
running package, offline, the same from a checkout and from an installed
apiphant, and byte for byte the same for the same files, so that deploy.sh
sees when it changed.
"""
import argparse
import base64
import hashlib
import importlib.metadata
import keyword
import re
import sys
import zipfile
from pathlib import Path

from apiphant import __version__

__all__ = ['ScaffoldError', 'check_name', 'template_dir', 'render', 'scaffold', 'build_wheel',
           'main', 'upgrade']

PLACEHOLDER = 'myproduct'
# Each template, and a file that tells it is there.
TEMPLATES = {'product_template': 'pytest.ini', 'deploy_template': 'deploy.sh'}
WHEELS = Path('deploy', 'wheels')

# The name is also the product's system user (at most 32 characters), its
# files under /etc and /opt, and its nginx and supervisor names: lowercase
# letters, digits and underscores suit them all.
_NAME = re.compile(r'[a-z][a-z0-9_]*\Z')
_MAX_LENGTH = 32
# Packages a product's process imports beside it, which it must not shadow.
_TAKEN = {'apiphant', 'gevent', 'greenlet', 'zope', 'orjson', 'httptools', 'requests', 'urllib3',
          'idna', 'certifi', 'charset_normalizer', 'pytest', 'pip', 'setuptools', 'sqlalchemy',
          'psycopg', 'conftest'}
# What running or testing a template leaves in it, which is not part of it.
_LEFTOVERS = {'__pycache__', '.pytest_cache', '.ruff_cache', '.venv'}
_LEFTOVER_SUFFIXES = ('.pyc', '.sqlite3', '-wal', '-shm')
# Zip entries dated 1980-01-01 (the earliest zip date): the same files make
# the same wheel.
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Metadata of the installed distribution that the wheel carries on.
_METADATA = ('Summary', 'License', 'Requires-Python', 'Classifier', 'Provides-Extra', 'Requires-Dist')


class ScaffoldError(ValueError):
    """What ``apiphant new`` or ``apiphant upgrade`` refuses, said so that the user can fix it."""


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


def template_dir(name='deploy_template'):
    """``product_template/`` or ``deploy_template/``: installed inside the
    package (a wheel), or beside it (a checkout, an editable install)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / name, package.parent / name):
        if (candidate / TEMPLATES[name]).is_file():
            return candidate
    raise ScaffoldError(f'{name}/ is missing: looked in {package} and {package.parent}; reinstall apiphant')


def render(text, name):
    return text.replace(PLACEHOLDER, name)


def _tree(root):
    """The files under ``root``, sorted, without what running them leaves."""
    for path in sorted(root.rglob('*')):
        relative = path.relative_to(root)
        if path.is_file() and not _LEFTOVERS.intersection(relative.parts) \
                and not path.name.endswith(_LEFTOVER_SUFFIXES):
            yield relative, path


def _rendered(name):
    """``{relative path: text}`` of the product ``name``."""
    files = {}
    for template, prefix in (('product_template', Path()), ('deploy_template', Path('deploy'))):
        for relative, path in _tree(template_dir(template)):
            target = prefix.joinpath(*(render(part, name) for part in relative.parts))
            files[target] = render(path.read_text(encoding='utf-8'), name)
    return files


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
    files = _rendered(name)
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        _write(directory / path, text)
    wheel = build_wheel(directory / WHEELS)
    return sorted([*files, wheel.relative_to(directory)])


# --- The wheel of the running apiphant ----------------------------------------

def _distribution():
    """The installed distribution of the running apiphant (its dependencies,
    entry points and scripts)."""
    # What pip installed (it leaves an INSTALLER file) comes before the
    # apiphant.egg-info that a build leaves in a checkout, which is first on
    # sys.path when the command runs there and may be stale.
    found = sorted(importlib.metadata.distributions(name='apiphant'), key=lambda d: d.read_text('INSTALLER') is None)
    if not found:
        raise ScaffoldError('apiphant runs without being installed (no metadata): install it, '
                            'e.g. pip install -e CHECKOUT')
    distribution = found[0]
    # Its dependencies go into the wheel: they must be the running version's.
    if distribution.version != __version__:
        raise ScaffoldError(f'the apiphant installed here is {distribution.version}, not the running '
                            f'{__version__}: reinstall the running one (e.g. pip install -e CHECKOUT)')
    return distribution


def _scripts(distribution):
    """``{name: bytes}`` of the entry scripts, with pip's ``#!python`` line."""
    checkout = Path(__file__).resolve().parent.parent / 'bin'
    scripts = {}
    for file in distribution.files or ():
        if file.parent.name == 'bin':
            path = checkout / file.name if (checkout / file.name).is_file() else Path(file.locate())
            body = path.read_bytes().split(b'\n', 1)[1]
            scripts[file.name] = b'#!python\n' + body
    if not scripts:
        raise ScaffoldError(f'the installed apiphant lists no scripts in bin/ ({distribution.locate_file("")})')
    return scripts


def _metadata(distribution):
    lines = ['Metadata-Version: 2.1', 'Name: apiphant', f'Version: {__version__}']
    lines += [f'{key}: {value}' for key in _METADATA for value in distribution.metadata.get_all(key) or ()]
    return '\n'.join(lines) + '\n'


def _entry_points(distribution):
    groups = {}
    for entry_point in distribution.entry_points:
        groups.setdefault(entry_point.group, []).append(f'{entry_point.name} = {entry_point.value}')
    return ''.join(f'[{group}]\n' + '\n'.join(sorted(lines)) + '\n\n' for group, lines in sorted(groups.items()))


def _wheel_files():
    """``{name in the wheel: bytes}``: the package as it runs, its templates
    (beside it in a checkout, inside it once installed), scripts, metadata."""
    distribution = _distribution()
    package = Path(__file__).resolve().parent
    files = {f'apiphant/{relative.as_posix()}': path.read_bytes() for relative, path in _tree(package)}
    for template in TEMPLATES:
        if not (package / template).is_dir():
            files.update((f'apiphant/{template}/{relative.as_posix()}', path.read_bytes())
                         for relative, path in _tree(template_dir(template)))
    files = dict(sorted(files.items()))
    data, info = f'apiphant-{__version__}.data', f'apiphant-{__version__}.dist-info'
    files.update((f'{data}/scripts/{name}', body) for name, body in _scripts(distribution).items())
    files[f'{info}/METADATA'] = _metadata(distribution).encode()
    files[f'{info}/WHEEL'] = (b'Wheel-Version: 1.0\nGenerator: apiphant.scaffold\nRoot-Is-Purelib: true\n'
                              b'Tag: py3-none-any\n')
    files[f'{info}/entry_points.txt'] = _entry_points(distribution).encode()
    files[f'{info}/top_level.txt'] = b'apiphant\n'
    return files


def _record(files, record):
    lines = []
    for name, body in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()
        lines.append(f'{name},sha256={digest},{len(body)}')
    return ('\n'.join([*lines, f'{record},,']) + '\n').encode()


def build_wheel(directory):
    """Write ``apiphant-VERSION-py3-none-any.whl`` of the running apiphant
    into ``directory``; its path."""
    files = _wheel_files()
    record = f'apiphant-{__version__}.dist-info/RECORD'
    files[record] = _record(files, record)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f'apiphant-{__version__}-py3-none-any.whl'
    partial = path.with_name(path.name + '.partial')
    with zipfile.ZipFile(partial, 'w', zipfile.ZIP_DEFLATED) as wheel:
        for name, body in files.items():
            entry = zipfile.ZipInfo(name, _EPOCH)
            executable = name.split('/')[1:2] == ['scripts'] or body.startswith(b'#!')
            entry.external_attr = (0o100755 if executable else 0o100644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, body)
    partial.replace(path)
    return path


# --- Commands -------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='apiphant new', description='Write a new product that runs at once: its package, '
        'passing tests, a README, deploy/ (deploy.sh, supervisor, nginx, logrotate) and, in '
        'deploy/wheels/, this apiphant as a wheel that its installs use.')
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


def upgrade(argv=None):
    """``apiphant upgrade [DIR]``: the wheel in DIR/deploy/wheels/ becomes
    the running apiphant's."""
    parser = argparse.ArgumentParser(
        prog='apiphant upgrade', description=f'Replace the apiphant wheel in a product\'s '
        f'{WHEELS}/ by this apiphant ({__version__}): what its README\'s first command and '
        f'deploy.sh install.')
    parser.add_argument('directory', nargs='?', default='.', help='the product (default: .)')
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    wheels = Path(args.directory) / WHEELS
    if not wheels.parent.is_dir():
        sys.exit(f'apiphant upgrade: {wheels.parent} is not a directory: DIR is a product made by apiphant new')
    before = {path.name: path.read_bytes() for path in sorted(wheels.glob('apiphant-*.whl'))}
    try:
        wheel = build_wheel(wheels)
    except ScaffoldError as error:
        sys.exit(f'apiphant upgrade: {error}')
    for name in before:
        if name != wheel.name:
            (wheels / name).unlink()
    if before.get(wheel.name) == wheel.read_bytes() and len(before) == 1:
        print(f'apiphant upgrade: {wheel} is this apiphant already')
        return
    print(f'apiphant upgrade: {", ".join(before) or "no wheel"} -> {wheel}')
    print('Next: .venv/bin/pip install --force-reinstall --no-deps deploy/wheels/apiphant-*.whl here, '
          'and deploy/deploy.sh on the server.')
