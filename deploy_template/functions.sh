# shellcheck shell=bash disable=SC2034  # the scripts that source this use its variables
# What the deploy scripts share: where things go, how a step prints and
# fails, and how to ask supervisor, nginx and the API processes how they are.
# Sourced after settings.sh.

PRODUCT_DIR=/opt/$PRODUCT
VENV=$PRODUCT_DIR/venv
STATE_DIR=$PRODUCT_DIR/.deploy-state  # what deploy.sh did that uninstall.sh undoes
SUPERVISOR_CONF=/etc/supervisor/conf.d/$PRODUCT.conf
NGINX_SITE=/etc/nginx/sites-available/$PRODUCT
NGINX_LINK=/etc/nginx/sites-enabled/$PRODUCT
NGINX_DEFAULT_LINK=/etc/nginx/sites-enabled/default
LOGROTATE_CONF=/etc/logrotate.d/nginx-$PRODUCT
# Root's alone (0700 and 0600): the programs get it through as-product.sh.
SECRETS_DIR=/etc/$PRODUCT
SECRETS_FILE=$SECRETS_DIR/secrets.env
API_PROGRAM=$PRODUCT-api
BACKGROUND_PROGRAM=$PRODUCT-background
USER_COMMENT="apiphant product $PRODUCT"

# Daemons and the product get a clean environment, as under systemd: not the
# PATH, PYTHONPATH or virtualenv of the shell that runs the script.
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)

SCRIPT=${0##*/}

step() { printf '%s: %s\n' "$SCRIPT" "$*"; }
note() { printf '%s:     %s\n' "$SCRIPT" "$*"; }
fail() { printf '%s: FAILED: %s\n' "$SCRIPT" "$*" >&2; exit 1; }

# A command failing outside a condition stops the script, saying which.
trap 'fail "$BASH_COMMAND (exit $?, ${BASH_SOURCE[0]##*/} line $LINENO)"' ERR

# The comment at the top of the running script, its manual: --help prints it.
usage() {
    awk 'NR == 1 { next }
        /^#/ { if (/shellcheck/) next; sub(/^# ?/, ""); if ($0 == "") { blank++; next }
               for (; blank; blank--) print ""; print; next }
        { exit }' "$0"
}

# An argument the script does not take: one line, exit 2, nothing done.
refuse() {
    printf '%s: unknown argument %s (%s --help says what it takes)\n' "$SCRIPT" "$1" "$SCRIPT" >&2
    exit 2
}

tls() {
    [[ -n $TLS_CERTIFICATE ]]
}

require_root() {
    [[ $(id -u) == 0 ]] || fail "run $SCRIPT as root: sudo $0"
}

check_product() {
    [[ $PRODUCT =~ ^[a-z][a-z0-9_]*$ ]] || fail "PRODUCT=$PRODUCT: a lowercase Python package name"
}

check_settings() {
    check_product
    [[ $API_PROCESSES =~ ^[1-9][0-9]?$ ]] || fail "API_PROCESSES=$API_PROCESSES: a number of processes from 1 to 99"
    if ! [[ $API_PORT =~ ^[1-9][0-9]{3,4}$ ]] || ((API_PORT < 1024 || API_PORT + API_PROCESSES > 65536)); then
        fail "API_PORT=$API_PORT: a port from 1024 on, with room for $API_PROCESSES consecutive ports"
    fi
    [[ $LISTEN =~ ^(([0-9.]+|\[[0-9a-fA-F:]+\]):)?[1-9][0-9]*$ ]] ||
        fail "LISTEN=$LISTEN: a port (80) or ADDRESS:PORT (127.0.0.1:8080)"
    [[ $SERVER_NAME =~ ^[A-Za-z0-9._*\ -]+$ ]] || fail "SERVER_NAME=$SERVER_NAME: names separated by spaces, or _"
    [[ $MAX_BODY_SIZE =~ ^[0-9]+[KMGkmg]?$ ]] || fail "MAX_BODY_SIZE=$MAX_BODY_SIZE: bytes, or a number with K, M or G"
    # The URL reaches a world-readable supervisor config and the logs of the
    # scripts: a password in it would too (the value is not printed here).
    if [[ $DATABASE_URL =~ ://[^/@]*:[^/@]*@ ]]; then
        fail "DATABASE_URL holds a password: put that URL into $SECRETS_FILE as APIPHANT_DATABASE_URL=..." \
            "(root's only), and leave DATABASE_URL without it"
    fi
    [[ $DATABASE_URL =~ ^(sqlite|postgres|postgresql|postgresql\+psycopg)://[^[:space:]\"\\]+$ ]] ||
        fail "DATABASE_URL=$DATABASE_URL: sqlite:////PATH or postgresql://USER@HOST:PORT/DB"
    if [[ -n $TLS_CERTIFICATE || -n $TLS_KEY ]]; then
        local setting
        for setting in TLS_CERTIFICATE TLS_KEY; do
            [[ ${!setting} =~ ^/[A-Za-z0-9._/@+-]+$ ]] ||
                fail "$setting=${!setting}: the absolute path of a file (TLS_CERTIFICATE and TLS_KEY go together)"
            [[ -f ${!setting} ]] || fail "$setting=${!setting}: no such file"
        done
        [[ $LISTEN_TLS =~ ^(([0-9.]+|\[[0-9a-fA-F:]+\]):)?[1-9][0-9]*$ ]] ||
            fail "LISTEN_TLS=$LISTEN_TLS: a port (443) or ADDRESS:PORT (127.0.0.1:8443)"
    fi
}

api_ports() {
    seq "$API_PORT" $((API_PORT + API_PROCESSES - 1))
}

# render_supervisor CONF AUTOSTART: supervisor/myproduct.conf with the
# settings, and the scheduler's autostart (true or false). The database URL
# is spliced in, not substituted (an & in it is no awk pattern), with its %
# doubled: supervisor would read %(name)s in it as an expansion.
render_supervisor() {
    awk -v processes="$API_PROCESSES" -v port="$API_PORT" -v size="$MAX_BODY_SIZE" -v background="$2" \
        -v database="${DATABASE_URL//%/%%}" '
        function set(line, key, value,    start, rest) {
            start = index(line, key "=\"")
            if (!start) return line
            rest = substr(line, start + length(key) + 2)
            return substr(line, 1, start + length(key) + 1) value substr(rest, index(rest, "\""))
        }
        /^\[/ { in_background = ($0 ~ /-background\]$/) }
        /^numprocs=/ { $0 = "numprocs=" processes }
        /^numprocs_start=/ { $0 = "numprocs_start=" port }
        /^environment=/ { $0 = set(set($0, "APIPHANT_MAX_BODY_SIZE", size), "APIPHANT_DATABASE_URL", database) }
        in_background && /^autostart=/ { $0 = "autostart=" background }
        { print }' "$1"
}

# render_nginx SITE: nginx/myproduct with one upstream server line per API
# process, the settings' listen, server_name and client_max_body_size, and,
# with TLS, its "#tls" lines in and the lines marked "# without TLS" out.
render_nginx() {
    local tls_on='' redirect_port=''
    if tls; then
        tls_on=1
        if [[ ${LISTEN_TLS##*:} != 443 ]]; then redirect_port=":${LISTEN_TLS##*:}"; fi
    fi
    awk -v ports="$(api_ports | xargs)" -v listen="$LISTEN" -v names="$SERVER_NAME" -v size="$MAX_BODY_SIZE" \
        -v tls="$tls_on" -v listen_tls="$LISTEN_TLS" -v certificate="$TLS_CERTIFICATE" -v key="$TLS_KEY" \
        -v redirect_port="$redirect_port" '
        tls && /# without TLS$/ { next }
        tls { sub(/#tls ?/, "") }
        /^ *server 127\.0\.0\.1:[0-9]+/ {
            if (!done) {
                n = split(ports, port, " ")
                for (i = 1; i <= n; i++) {
                    line = $0
                    sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" port[i], line)
                    print line
                }
                done = 1
            }
            next
        }
        /^ *listen [^ ;]+ ssl;/ { sub(/listen [^;]*;/, "listen " listen_tls " ssl;") }
        /^ *listen [^ ;]+;/ { sub(/listen [^;]*;/, "listen " listen ";") }
        /^ *server_name / { sub(/server_name .*;/, "server_name " names ";") }
        /^ *client_max_body_size / { sub(/client_max_body_size .*;/, "client_max_body_size " size ";") }
        /^ *ssl_certificate / { sub(/ssl_certificate .*;/, "ssl_certificate " certificate ";") }
        /^ *ssl_certificate_key / { sub(/ssl_certificate_key .*;/, "ssl_certificate_key " key ";") }
        /^ *return 301 https:/ { sub(/https:\/\/\$host/, "https://$host" redirect_port) }
        { print }' "$1"
}

has_systemd() {
    [[ -d /run/systemd/system ]]
}

supervisor_up() {
    supervisorctl pid >/dev/null 2>&1
}

# The state of a supervisor process (RUNNING, STOPPED, FATAL ...), or nothing.
program_state() {
    supervisorctl status "$1" 2>/dev/null | awk -v name="$1" '$1 == name { print $2 }' || true
}

# "NAME PID" of each running process of the product, sorted.
running_processes() {
    { supervisorctl status 2>/dev/null || true; } | awk -v api="$API_PROGRAM:" -v background="$BACKGROUND_PROGRAM" \
        '(index($1, api) == 1 || $1 == background) && $2 == "RUNNING" { sub(/,$/, "", $4); print $1, $4 }' | sort
}

nginx_pid() {
    local pid
    pid=$(cat /run/nginx.pid 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

nginx_up() {
    nginx_pid >/dev/null
}

reload_nginx() {
    if has_systemd; then systemctl reload nginx; else nginx -s reload; fi
}

# nginx as a client on this machine reaches it: HTTPS with TLS.
nginx_url() {
    local address=$LISTEN scheme=http
    if tls; then address=$LISTEN_TLS scheme=https; fi
    local host=127.0.0.1 port=${address##*:}
    if [[ $address == *:* ]]; then host=${address%:*}; fi
    case $host in
        0.0.0.0) host=127.0.0.1 ;;
        '[::]') host='[::1]' ;;
    esac
    printf '%s://%s:%s' "$scheme" "$host" "$port"
}

# http METHOD URL [BODY [HOST [INSECURE]]]: prints the status and the body of
# the answer (Python's, the virtualenv's once there is one: no curl on a
# minimal server; no proxy). INSECURE (1): a certificate is not verified.
http() {
    local python=python3
    if [[ -x $VENV/bin/python ]]; then python=$VENV/bin/python; fi
    "$python" - "$@" <<'PYTHON'
import ssl
import sys
import urllib.error
import urllib.request

method, url, body, host, insecure = (sys.argv[1:] + ['', '', ''])[:5]
request = urllib.request.Request(url, data=body.encode() if body else None, method=method)
if body:
    request.add_header('Content-Type', 'application/json')
if host:
    request.add_header('Host', host)
context = ssl._create_unverified_context() if insecure else ssl.create_default_context()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
try:
    with opener.open(request, timeout=5) as answer:
        status, content = answer.status, answer.read()
except urllib.error.HTTPError as error:
    status, content = error.code, error.read()
except OSError as error:
    sys.exit(f'{method} {url}: {error}')
print(status, content.decode('utf-8', 'replace').strip())
PYTHON
}

healthy() {
    [[ $(http GET "http://127.0.0.1:$1/health" 2>/dev/null) == '200 '* ]]
}

# wait_healthy PORT SECONDS: until the API process on PORT answers GET /health.
wait_healthy() {
    local deadline=$((SECONDS + $2))
    until healthy "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
