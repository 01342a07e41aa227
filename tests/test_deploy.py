"""deploy_template/, checked without deploying: every script passes ``bash -n``
and shellcheck, and the configs as deploy.sh renders them (with the defaults
and with other settings) pass ``nginx -t``, supervisor's own parser and
``logrotate -d``.

shellcheck, nginx and supervisor are Debian packages: with
APIPHANT_REQUIRE_SERVICES=1 (CI) a missing one is installed with apt-get;
elsewhere the tests that need it are skipped, saying which to install.
"""
import functools
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, require_services, skip_or_fail

TEMPLATE = ROOT / 'deploy_template'
SCRIPTS = sorted(TEMPLATE.glob('*.sh'))
COMMANDS = {'shellcheck': 'shellcheck', 'nginx': 'nginx', 'supervisor': 'supervisord', 'logrotate': 'logrotate'}
SBIN_PATH = os.pathsep.join([os.environ.get('PATH', ''), '/usr/local/sbin', '/usr/sbin', '/sbin'])
SUPERVISOR_PYTHON = '/usr/bin/python3'  # Debian's supervisor is a module of the system's Python


def which(command):
    return shutil.which(command, path=SBIN_PATH)


@functools.cache
def _install(packages):
    environ = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    command = ['apt-get', 'install', '-y', '-q', '--no-install-recommends',
               '-o', 'DPkg::Lock::Timeout=300', *packages]
    if subprocess.run(command, env=environ, capture_output=True).returncode != 0:
        subprocess.run(['apt-get', 'update', '-q', '-o', 'DPkg::Lock::Timeout=300'],
                       env=environ, capture_output=True)
        result = subprocess.run(command, env=environ, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f'apt-get install {" ".join(packages)} failed:\n{result.stdout}{result.stderr}')


def debian_packages(*packages):
    """Make sure the Debian packages are installed: apt-get installs them
    under APIPHANT_REQUIRE_SERVICES=1 (as root); elsewhere, skip."""
    missing = tuple(package for package in packages if not which(COMMANDS[package]))
    if not missing:
        return
    if require_services() and os.geteuid() == 0 and which('apt-get'):
        _install(missing)
        return
    skip_or_fail(f'{", ".join(missing)} not installed (apt-get install {" ".join(missing)}; '
                 f'APIPHANT_REQUIRE_SERVICES=1 installs them)')


def new_product(name, directory):
    """``apiphant new name directory``, as a user runs it."""
    subprocess.run([sys.executable, '-m', 'apiphant', 'new', name, str(directory)],
                   check=True, capture_output=True, text=True)
    return directory


def render(deploy, function, source, *args, **settings):
    """The output of deploy.sh's render_nginx or render_supervisor on
    ``source``, with the settings given as environment variables."""
    script = f'source settings.sh && source functions.sh && {function} "$@"'
    result = subprocess.run(['bash', '-c', script, 'render', str(source), *args], cwd=deploy,
                            env={**os.environ, **{k: str(v) for k, v in settings.items()}},
                            capture_output=True, text=True, check=True)
    return result.stdout


def under(text, prefix, name):
    """``text`` with /opt/NAME moved under ``prefix``, where a test may create
    what nginx and supervisor check for."""
    return text.replace(f'/opt/{name}', f'{prefix}/opt/{name}')


@pytest.fixture
def product(tmp_path):
    return new_product('shop', tmp_path / 'shop')


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda path: path.name)
def test_bash_parses_every_script(script):
    result = subprocess.run(['bash', '-n', str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_executables_are_executable():
    for script in SCRIPTS:
        executable = script.read_text().startswith('#!')
        assert executable == (script.name not in ('settings.sh', 'functions.sh')), script
        assert bool(script.stat().st_mode & 0o100) == executable, f'chmod +x {script}'


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda path: path.name)
def test_shellcheck(script):
    debian_packages('shellcheck')
    result = subprocess.run(['shellcheck', '-x', script.name], cwd=TEMPLATE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_of_a_rendered_deploy(product):
    debian_packages('shellcheck')
    deploy = product / 'deploy'
    result = subprocess.run(['shellcheck', '-x', *sorted(p.name for p in deploy.glob('*.sh'))],
                            cwd=deploy, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_with_the_defaults_gives_the_template(product):
    """The configs say "the values below are the defaults": deploy.sh renders
    them unchanged when settings.sh is left as it is."""
    deploy = product / 'deploy'
    site, conf = deploy / 'nginx' / 'shop', deploy / 'supervisor' / 'shop.conf'
    assert render(deploy, 'render_nginx', site) == site.read_text()
    assert render(deploy, 'render_supervisor', conf, 'true') == conf.read_text()


def test_the_settings_reach_the_configs(product):
    deploy = product / 'deploy'
    settings = dict(API_PROCESSES=3, API_PORT=9100, LISTEN='127.0.0.1:8088', SERVER_NAME='shop.example',
                    MAX_BODY_SIZE='2M')
    site = render(deploy, 'render_nginx', deploy / 'nginx' / 'shop', **settings)
    assert re.findall(r'server (127\.0\.0\.1:\d+) max_fails=0;', site) == [
        '127.0.0.1:9100', '127.0.0.1:9101', '127.0.0.1:9102']
    assert '    listen 127.0.0.1:8088;\n' in site
    assert '    server_name shop.example;\n' in site
    assert '    client_max_body_size 2M;\n' in site
    conf = render(deploy, 'render_supervisor', deploy / 'supervisor' / 'shop.conf', 'false', **settings)
    assert 'numprocs=3\n' in conf and 'numprocs_start=9100\n' in conf
    assert 'APIPHANT_MAX_BODY_SIZE="2M"' in conf
    background = conf[conf.index('[program:shop-background]'):]
    assert 'autostart=false\n' in background and 'autostart=true\n' in conf[:conf.index(background)]


def test_the_body_limits_of_nginx_and_apiphant_agree():
    from apiphant.settings import SETTINGS
    default = next(setting.default for setting in SETTINGS if setting.name == 'max_body_size')
    assert 'client_max_body_size 1M;' in (TEMPLATE / 'nginx' / 'myproduct').read_text()
    assert 'MAX_BODY_SIZE:=1M' in (TEMPLATE / 'settings.sh').read_text()
    assert default == '1M'


@pytest.mark.parametrize('settings', [{}, {'API_PROCESSES': 4, 'API_PORT': 9200, 'LISTEN': '127.0.0.1:8089'}],
                         ids=['defaults', 'settings'])
def test_nginx_accepts_the_rendered_site(product, tmp_path, settings):
    debian_packages('nginx')
    deploy = product / 'deploy'
    (tmp_path / 'opt' / 'shop' / 'log').mkdir(parents=True)
    (tmp_path / 'site').write_text(under(render(deploy, 'render_nginx', deploy / 'nginx' / 'shop', **settings),
                                         tmp_path, 'shop'))
    (tmp_path / 'nginx.conf').write_text(
        f'pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n'
        f'http {{\n    include /etc/nginx/mime.types;\n    include {tmp_path}/site;\n}}\n')
    result = subprocess.run([which('nginx'), '-t', '-p', str(tmp_path), '-e', str(tmp_path / 'error.log'),
                             '-c', str(tmp_path / 'nginx.conf')], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'test is successful' in result.stderr


_SUPERVISOR_PARSE = '''
import sys
from supervisor.options import ServerOptions
options = ServerOptions()
options.realize(args=['-c', sys.argv[1]])
print('minfds', options.minfds)
for group in options.process_group_configs:
    for process in group.process_configs:
        print(group.name, process.name, process.command, process.stopsignal, process.stopwaitsecs,
              process.autostart, process.uid, process.stdout_logfile)
'''


@pytest.mark.parametrize('autostart', ['true', 'false'])
def test_supervisor_parses_the_rendered_programs(product, tmp_path, autostart):
    debian_packages('supervisor')
    deploy = product / 'deploy'
    (tmp_path / 'opt' / 'shop' / 'log').mkdir(parents=True)
    conf = render(deploy, 'render_supervisor', deploy / 'supervisor' / 'shop.conf', autostart,
                  API_PROCESSES=3, API_PORT=9300)
    # The user does not exist here (deploy.sh creates it): supervisor checks
    # that it does, so the test runs the programs as nobody.
    conf = re.sub(r'(?m)^user=shop$', 'user=nobody', under(conf, tmp_path, 'shop'))
    (tmp_path / 'shop.conf').write_text(conf)
    (tmp_path / 'supervisord.conf').write_text(
        f'[supervisord]\nlogfile={tmp_path}/supervisord.log\npidfile={tmp_path}/supervisord.pid\n'
        f'[unix_http_server]\nfile={tmp_path}/supervisor.sock\n'
        f'[rpcinterface:supervisor]\n'
        f'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n'
        f'[include]\nfiles = {tmp_path}/shop.conf\n')
    result = subprocess.run([SUPERVISOR_PYTHON, '-c', _SUPERVISOR_PARSE, str(tmp_path / 'supervisord.conf')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == 'minfds 10240'  # the product's [supervisord] section is read with the rest
    processes = [line.split() for line in lines[1:]]
    api = [p for p in processes if p[0] == 'shop-api']
    assert [p[1] for p in api] == ['9300', '9301', '9302']
    for process in api:
        assert process[2:5] == [f'{tmp_path}/opt/shop/venv/bin/apiphant', f'{tmp_path}/opt/shop/shop',
                                f'127.0.0.1:{process[1]}']
        assert process[5:7] == ['15', '10']  # SIGTERM; more than apiphant's 8 s drain
        assert process[7] == 'True'
        assert process[9] == f'{tmp_path}/opt/shop/log/api-{process[1]}.log'
    background = [p for p in processes if p[0] == 'shop-background']
    assert len(background) == 1
    assert background[0][3:7] == [f'{tmp_path}/opt/shop/shop', '15', '10', str(autostart == 'true')]


def test_logrotate_accepts_the_config(product, tmp_path):
    debian_packages('logrotate')
    (tmp_path / 'opt' / 'shop' / 'log').mkdir(parents=True)
    conf = tmp_path / 'nginx-shop'
    conf.write_text(under((product / 'deploy' / 'logrotate' / 'nginx-shop').read_text(), tmp_path, 'shop'))
    result = subprocess.run([which('logrotate'), '-d', '-s', str(tmp_path / 'state'), str(conf)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'error' not in result.stderr.lower(), result.stderr


def test_bad_settings_stop_deploy_sh_with_a_clear_message(product):
    if os.geteuid() != 0:
        pytest.skip('deploy.sh checks its settings as root')
    for setting, value, message in [('API_PROCESSES', '0', 'a number of processes'),
                                    ('API_PORT', '80', 'a port from 1024 on'),
                                    ('LISTEN', 'localhost:80', 'a port (80) or ADDRESS:PORT'),
                                    ('MAX_BODY_SIZE', '1MiB', 'bytes, or a number with K, M or G')]:
        result = subprocess.run([str(product / 'deploy' / 'deploy.sh')], capture_output=True, text=True,
                                env={**os.environ, setting: value})
        assert result.returncode == 1
        assert f'deploy.sh: FAILED: {setting}={value}: {message}' in result.stderr, result.stderr
