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

require_root() {
    [[ $(id -u) == 0 ]] || fail "run $SCRIPT as root: sudo $0"
}

check_settings() {
    [[ $PRODUCT =~ ^[a-z][a-z0-9_]*$ ]] || fail "PRODUCT=$PRODUCT: a lowercase Python package name"
    [[ $API_PROCESSES =~ ^[1-9][0-9]?$ ]] || fail "API_PROCESSES=$API_PROCESSES: a number of processes from 1 to 99"
    if ! [[ $API_PORT =~ ^[1-9][0-9]{3,4}$ ]] || ((API_PORT < 1024 || API_PORT + API_PROCESSES > 65536)); then
        fail "API_PORT=$API_PORT: a port from 1024 on, with room for $API_PROCESSES consecutive ports"
    fi
    [[ $LISTEN =~ ^(([0-9.]+|\[[0-9a-fA-F:]+\]):)?[1-9][0-9]*$ ]] ||
        fail "LISTEN=$LISTEN: a port (80) or ADDRESS:PORT (127.0.0.1:8080)"
    [[ $SERVER_NAME =~ ^[A-Za-z0-9._*\ -]+$ ]] || fail "SERVER_NAME=$SERVER_NAME: names separated by spaces, or _"
    [[ $MAX_BODY_SIZE =~ ^[0-9]+[KMGkmg]?$ ]] || fail "MAX_BODY_SIZE=$MAX_BODY_SIZE: bytes, or a number with K, M or G"
}

api_ports() {
    seq "$API_PORT" $((API_PORT + API_PROCESSES - 1))
}

# render_supervisor CONF AUTOSTART: supervisor/myproduct.conf with the
# settings, and the scheduler's autostart (true or false).
render_supervisor() {
    awk -v processes="$API_PROCESSES" -v port="$API_PORT" -v size="$MAX_BODY_SIZE" -v background="$2" '
        /^\[/ { in_background = ($0 ~ /-background\]$/) }
        /^numprocs=/ { $0 = "numprocs=" processes }
        /^numprocs_start=/ { $0 = "numprocs_start=" port }
        /^environment=/ { sub(/APIPHANT_MAX_BODY_SIZE="[^"]*"/, "APIPHANT_MAX_BODY_SIZE=\"" size "\"") }
        in_background && /^autostart=/ { $0 = "autostart=" background }
        { print }' "$1"
}

# render_nginx SITE: nginx/myproduct with one upstream server line per API
# process, and the settings' listen, server_name and client_max_body_size.
render_nginx() {
    awk -v ports="$(api_ports | xargs)" -v listen="$LISTEN" -v names="$SERVER_NAME" -v size="$MAX_BODY_SIZE" '
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
        /^ *listen / { sub(/listen .*;/, "listen " listen ";") }
        /^ *server_name / { sub(/server_name .*;/, "server_name " names ";") }
        /^ *client_max_body_size / { sub(/client_max_body_size .*;/, "client_max_body_size " size ";") }
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

# nginx as a client on this machine reaches it.
nginx_url() {
    local host=127.0.0.1 port=${LISTEN##*:}
    if [[ $LISTEN == *:* ]]; then host=${LISTEN%:*}; fi
    case $host in
        0.0.0.0) host=127.0.0.1 ;;
        '[::]') host='[::1]' ;;
    esac
    printf 'http://%s:%s' "$host" "$port"
}

# http METHOD URL [BODY [HOST]]: prints the status and the body of the answer
# (with the virtualenv's Python: no curl on a minimal server; no proxy).
http() {
    "$VENV/bin/python" - "$@" <<'PYTHON'
import sys
import urllib.error
import urllib.request

method, url, body, host = (sys.argv[1:] + ['', ''])[:4]
request = urllib.request.Request(url, data=body.encode() if body else None, method=method)
if host:
    request.add_header('Host', host)
try:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as answer:
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
