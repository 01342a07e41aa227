"""deploy_template/, checked without deploying: every script passes ``bash -n``
and shellcheck, answers ``--help`` and refuses an unknown argument without
touching the machine, ``deploy.sh --dry-run`` changes nothing, bad settings
stop deploy.sh with one line, and the configs as deploy.sh renders them (with
the defaults, with other settings, with TLS) pass ``nginx -t``, supervisor's
own parser and ``logrotate -d``.

shellcheck, nginx and supervisor are Debian packages: with
APIPHANT_REQUIRE_SERVICES=1 (CI) a missing one is installed with apt-get;
elsewhere the tests that need it are skipped, saying which to install.
"""
import functools
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, require_services, skip_or_fail

TEMPLATE = ROOT / 'deploy_template'
SCRIPTS = sorted(TEMPLATE.glob('*.sh'))
COMMANDS = {'shellcheck': 'shellcheck', 'nginx': 'nginx', 'supervisor': 'supervisord', 'logrotate': 'logrotate'}
SBIN_PATH = os.pathsep.join([os.environ.get('PATH', ''), '/usr/local/sbin', '/usr/sbin', '/sbin'])
SUPERVISOR_PYTHON = '/usr/bin/python3'  # Debian's supervisor is a module of the system's Python


NGINX_PID = Path('/run/nginx.pid')
SUPERVISORD_PID = Path('/run/supervisord.pid')


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


def running(pidfile):
    """The pid in ``pidfile`` when that process is alive, else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def snapshot(name):
    """What deploy.sh touches: the trees it writes into (not the metrics the
    running services keep in var/metrics), the product's user and group,
    /opt's entries, the installed packages and the running daemons."""
    state = {'/opt': sorted(os.listdir('/opt')), '/etc': sorted(os.listdir('/etc'))}
    for root in (Path('/opt') / name, Path('/etc') / name, Path('/etc/nginx'), Path('/etc/supervisor'),
                 Path('/etc/logrotate.d')):
        paths = [root, *root.rglob('*')] if root.exists() else []
        running_numbers = Path('/opt') / name / 'var' / 'metrics'  # rewritten each second by the services
        for path in paths:
            if path.parent == running_numbers:
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                content = 'link ' + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = 'directory'
            state[str(path)] = (stat.filemode(info.st_mode), info.st_uid, info.st_gid, content)
    for database in ('/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow'):
        state[database] = [line for line in Path(database).read_text().splitlines()
                           if line.split(':')[0] == name]
    status = Path('/var/lib/dpkg/status')
    state['dpkg'] = hashlib.sha256(status.read_bytes()).hexdigest() if status.exists() else None
    state['daemons'] = {'nginx': running(NGINX_PID), 'supervisord': running(SUPERVISORD_PID)}
    return state


@pytest.fixture
def product(tmp_path):
    return new_product('shop', tmp_path / 'shop')


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda path: path.name)
def test_bash_parses_every_script(script):
    result = subprocess.run(['bash', '-n', str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_script_is_here():
    assert [script.name for script in SCRIPTS] == ['as-product.sh', 'deploy.sh', 'functions.sh', 'quick-test.sh',
                                                   'reload.sh', 'settings.sh', 'uninstall.sh']


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
    assert '\n    listen 80;  # without TLS\n' in site.read_text() and 'ssl_certificate' in site.read_text()


def test_the_settings_reach_the_configs(product):
    deploy = product / 'deploy'
    settings = dict(API_PROCESSES=3, API_PORT=9100, LISTEN='127.0.0.1:8088', SERVER_NAME='shop.example',
                    MAX_BODY_SIZE='2M')
    site = render(deploy, 'render_nginx', deploy / 'nginx' / 'shop', **settings)
    assert re.findall(r'server (127\.0\.0\.1:\d+) max_fails=0;', site) == [
        '127.0.0.1:9100', '127.0.0.1:9101', '127.0.0.1:9102']
    assert '    listen 127.0.0.1:8088;  # without TLS\n' in site
    assert '    server_name shop.example;\n' in site
    assert '    client_max_body_size 2M;\n' in site
    assert not re.search(r'(?m)^ *(listen \S+ ssl|ssl_|add_header Strict)', site)  # no TLS without a certificate
    url = 'postgresql://shop@db.example:5432/shop?options=-csearch_path%3Dshop&sslmode=require'
    conf = render(deploy, 'render_supervisor', deploy / 'supervisor' / 'shop.conf', 'false', **settings,
                  DATABASE_URL=url)
    assert 'numprocs=3\n' in conf and 'numprocs_start=9100\n' in conf
    assert 'APIPHANT_MAX_BODY_SIZE="2M"' in conf
    # Both programs, with % doubled for supervisor, & as it is.
    assert conf.count('APIPHANT_DATABASE_URL="' + url.replace('%', '%%') + '"') == 2
    background = conf[conf.index('[program:shop-background]'):]
    assert 'autostart=false\n' in background and 'autostart=true\n' in conf[:conf.index(background)]


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate and its key, made by openssl."""
    certificate, key = tmp_path / 'shop.pem', tmp_path / 'shop.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=shop.test',
                    '-keyout', str(key), '-out', str(certificate)], check=True, capture_output=True)
    return {'TLS_CERTIFICATE': str(certificate), 'TLS_KEY': str(key)}


def test_tls_turns_the_site_into_https_and_http_into_a_redirect(product, certificate):
    deploy = product / 'deploy'
    site = render(deploy, 'render_nginx', deploy / 'nginx' / 'shop', **certificate, LISTEN='127.0.0.1:8080',
                  LISTEN_TLS='127.0.0.1:8443', SERVER_NAME='shop.test')
    assert not re.search(r'(?m)^ *#tls|# without TLS$', site)
    redirect, main = site.split('\nserver {\n')[1:]
    assert '    listen 127.0.0.1:8080;\n' in redirect and 'return 301 https://$host:8443$request_uri;' in redirect
    assert 'location /.well-known/acme-challenge/ {' in redirect and 'proxy_pass' not in redirect
    assert '    listen 127.0.0.1:8443 ssl;\n' in main and 'listen 127.0.0.1:8080' not in main
    assert f'    ssl_certificate {certificate["TLS_CERTIFICATE"]};\n' in main
    assert f'    ssl_certificate_key {certificate["TLS_KEY"]};\n' in main
    assert '    ssl_protocols TLSv1.2 TLSv1.3;\n' in main
    assert main.count('add_header Strict-Transport-Security "max-age=63072000" always;') == 5
    assert site.count('server_name shop.test;') == 2
    standard = render(deploy, 'render_nginx', deploy / 'nginx' / 'shop', **certificate)
    assert 'return 301 https://$host$request_uri;' in standard and '    listen 443 ssl;\n' in standard


def test_only_the_api_and_health_are_proxied(product):
    """/metrics and whatever else apiphant serves stay behind nginx; the
    reading actions alone are replayed on another process."""
    site = (product / 'deploy' / 'nginx' / 'shop').read_text()
    proxied = re.findall(r'\n    location ([^{]+) \{\n(?:        [^\n]*\n)*?        proxy_pass ', site)
    assert proxied == ['/api/', '~ ^/api/v[0-9]+/.+/(read|list|group|stats|sample)$', '~ ^/api/v[0-9]+/.+/watch$',
                       '= /health']
    assert site.count('proxy_next_upstream error non_idempotent;') == 1
    assert '    proxy_set_header X-Real-IP $remote_addr;\n' in site
    assert '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n' in site
    conf = (product / 'deploy' / 'supervisor' / 'shop.conf').read_text()
    assert conf.count('APIPHANT_TRUSTED_PROXIES="127.0.0.1"') == 1


def test_the_body_limits_of_nginx_and_apiphant_agree():
    from apiphant.settings import SETTINGS
    default = next(setting.default for setting in SETTINGS if setting.name == 'max_body_size')
    assert 'client_max_body_size 1M;' in (TEMPLATE / 'nginx' / 'myproduct').read_text()
    assert 'MAX_BODY_SIZE:=1M' in (TEMPLATE / 'settings.sh').read_text()
    assert default == '1M'


@pytest.mark.parametrize('settings', [{}, {'API_PROCESSES': 4, 'API_PORT': 9200, 'LISTEN': '127.0.0.1:8089'},
                                      {'LISTEN': '127.0.0.1:8089', 'LISTEN_TLS': '127.0.0.1:8449', 'TLS': True}],
                         ids=['defaults', 'settings', 'tls'])
def test_nginx_accepts_the_rendered_site(product, tmp_path, settings, certificate):
    debian_packages('nginx')
    deploy = product / 'deploy'
    if settings.pop('TLS', False):
        settings = {**settings, **certificate}
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
              process.autostart, process.uid, process.stdout_logfile,
              process.environment['APIPHANT_DATABASE_URL'])
'''


@pytest.mark.parametrize('autostart', ['true', 'false'])
def test_supervisor_parses_the_rendered_programs(product, tmp_path, autostart):
    debian_packages('supervisor')
    deploy = product / 'deploy'
    (tmp_path / 'opt' / 'shop' / 'log').mkdir(parents=True)
    url = 'postgresql://shop@127.0.0.1:5432/shop?options=-csearch_path%3Dshop'
    conf = render(deploy, 'render_supervisor', deploy / 'supervisor' / 'shop.conf', autostart,
                  API_PROCESSES=3, API_PORT=9300, DATABASE_URL=url)
    # No user=: as-product.sh, run as root, becomes the product's user.
    assert not re.search(r'(?m)^user=', conf)
    conf = under(conf, tmp_path, 'shop')
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
        assert process[2:6] == [f'{tmp_path}/opt/shop/deploy/as-product.sh', f'{tmp_path}/opt/shop/venv/bin/apiphant',
                                f'{tmp_path}/opt/shop/shop', f'127.0.0.1:{process[1]}']
        assert process[6:8] == ['15', '10']  # SIGTERM; more than apiphant's 8 s drain
        assert process[8:10] == ['True', 'None']  # started as root: as-product.sh changes the user
        assert process[10:] == [f'{tmp_path}/opt/shop/log/api-{process[1]}.log', url]
    background = [p for p in processes if p[0] == 'shop-background']
    assert len(background) == 1
    assert background[0][3:9] == [f'{tmp_path}/opt/shop/venv/bin/apiphant-background', f'{tmp_path}/opt/shop/shop',
                                  '15', '10', str(autostart == 'true'), 'None']
    assert background[0][10] == url  # the scheduler claims its runs in the API's database


def test_logrotate_accepts_the_config(product, tmp_path):
    debian_packages('logrotate')
    (tmp_path / 'opt' / 'shop' / 'log').mkdir(parents=True)
    conf = tmp_path / 'nginx-shop'
    conf.write_text(under((product / 'deploy' / 'logrotate' / 'nginx-shop').read_text(), tmp_path, 'shop'))
    result = subprocess.run([which('logrotate'), '-d', '-s', str(tmp_path / 'state'), str(conf)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'error' not in result.stderr.lower(), result.stderr


def test_bad_settings_stop_deploy_sh_with_a_clear_message(product, certificate):
    if os.geteuid() != 0:
        pytest.skip('deploy.sh checks its settings as root')
    for settings, message in [
            ({'API_PROCESSES': '0'}, 'API_PROCESSES=0: a number of processes'),
            ({'API_PORT': '80'}, 'API_PORT=80: a port from 1024 on'),
            ({'LISTEN': 'localhost:80'}, 'LISTEN=localhost:80: a port (80) or ADDRESS:PORT'),
            ({'MAX_BODY_SIZE': '1MiB'}, 'MAX_BODY_SIZE=1MiB: bytes, or a number with K, M or G'),
            ({'DATABASE_URL': 'mysql://db/shop'}, 'DATABASE_URL=mysql://db/shop: sqlite:////PATH or postgresql://'),
            ({'DATABASE_URL': 'postgresql://shop:s3cret@db/shop'}, 'DATABASE_URL holds a password: put that URL '
             'into /etc/shop/secrets.env as APIPHANT_DATABASE_URL=...'),
            ({'TLS_CERTIFICATE': certificate['TLS_CERTIFICATE']}, 'TLS_KEY=: the absolute path of a file'),
            ({**certificate, 'TLS_KEY': '/nonexistent/shop.key'}, 'TLS_KEY=/nonexistent/shop.key: no such file'),
            ({'APIPHANT_SOURCE': 'apiphant'}, 'APIPHANT_SOURCE=apiphant: not the path of a wheel or a checkout'),
    ]:
        before = snapshot('shop')
        # --dry-run checks the settings as a deploy does, and changes nothing
        # even if a check were missing.
        result = subprocess.run([str(product / 'deploy' / 'deploy.sh'), '--dry-run'], capture_output=True, text=True,
                                env={**os.environ, **settings})
        assert (result.returncode, result.stdout) == (1, ''), (settings, result.stdout)
        assert result.stderr.startswith(f'deploy.sh: FAILED: {message}') and result.stderr.count('\n') == 1, \
            result.stderr
        assert 's3cret' not in result.stderr
        assert snapshot('shop') == before


def test_deploy_sh_needs_one_wheel(product):
    if os.geteuid() != 0:
        pytest.skip('deploy.sh checks its settings as root')
    wheel = next((product / 'deploy' / 'wheels').glob('*.whl'))
    (wheel.parent / 'apiphant-0.9.0-py3-none-any.whl').write_bytes(b'')
    result = subprocess.run([str(product / 'deploy' / 'deploy.sh')], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith('deploy.sh: FAILED: deploy/wheels/ holds 2 apiphant wheels instead of one: '
                                    f'`apiphant upgrade {product}` writes it'), result.stderr


def script_runs(product):
    deploy = product / 'deploy'
    return [[str(deploy / script.name), *args] for script in SCRIPTS if script.name not in ('settings.sh', 'functions.sh')
            for args in (['--help'], ['--no-such-option'], ['extra', 'arguments'])
            if not (script.name == 'as-product.sh' and args[0] == 'extra')]


def test_help_and_unknown_arguments_change_nothing(product):
    """Every script: --help prints its header comment and exits 0; an
    argument it does not take is one line and exit 2; neither touches the
    machine (as root too, where deploy.sh could)."""
    before = snapshot('shop')
    for command in script_runs(product):
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        script = os.path.basename(command[0])
        if command[1] == '--help':
            assert (result.returncode, result.stderr) == (0, ''), result.stderr
            header = (ROOT / 'deploy_template' / script).read_text().split('\n# shellcheck')[0]
            assert result.stdout.splitlines()[0] == header.splitlines()[1][2:].replace('myproduct', 'shop')
            assert '--help' in result.stdout
        else:
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert result.stdout == ''
            assert result.stderr == f'{script}: unknown argument {command[1]} ({script} --help says what it takes)\n'
    assert snapshot('shop') == before


def test_dry_run_lists_everything_and_changes_nothing(product):
    if os.geteuid() != 0:
        pytest.skip('deploy.sh --dry-run reads what root may read')
    before = snapshot('shop')
    result = subprocess.run([str(product / 'deploy' / 'deploy.sh'), '--dry-run'], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert snapshot('shop') == before
    output = result.stdout
    for would in ['would create the system user shop', 'would create /opt/shop/var',
                  'would copy shop to /opt/shop', 'would copy deploy to /opt/shop',
                  'would create /etc/shop/secrets.env (root\'s, mode 0600) with a random APIPHANT_AUTH_KEYS',
                  'would create the virtualenv /opt/shop/venv',
                  f'would pip install {product}/deploy/wheels/apiphant-',
                  'would install /etc/supervisor/conf.d/shop.conf', 'would install /etc/nginx/sites-available/shop',
                  'would enable it: /etc/nginx/sites-enabled/shop', 'would install /etc/logrotate.d/nginx-shop']:
        assert f'deploy.sh:     {would}' in output, output
    assert 'plain HTTP on 80: no TLS_CERTIFICATE and TLS_KEY in settings.sh' in output
    assert re.search(r'dry run: \d+ changes, none made', output.splitlines()[-1]), output


def test_quick_test_checks_any_url(product, apiphant_serve):
    """Not deployed, no root: an API process served here."""
    server = apiphant_serve(product / 'shop')
    script = str(product / 'deploy' / 'quick-test.sh')
    result = subprocess.run([script, server.url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (f'quick-test.sh: POST {server.url}/api/v0/echo/read {{"hello": "world"}} -> '
                             f'200 {{"hello":"world","server":"shop"}}\n')
