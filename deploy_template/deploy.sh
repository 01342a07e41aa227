#!/usr/bin/env bash
# deploy.sh: myproduct from a fresh Debian 12 or Ubuntu 22.04+ server to a
# served API, as root:
#
#     sudo deploy/deploy.sh
#
# It installs what it needs with apt, a system user, the product under
# /opt/myproduct with its virtualenv, and the supervisor, nginx and logrotate
# configs; starts or reloads supervisor and nginx; and ends with
# quick-test.sh. Run it again after a change: it changes only what changed
# (new code is rolled out by reload.sh, with no failed request) and nothing at
# all when nothing did. Settings: settings.sh. Undone by uninstall.sh.
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SOURCE_DIR=$(dirname "$DEPLOY_DIR")
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

require_root
check_settings
[[ -f $SOURCE_DIR/$PRODUCT/__init__.py ]] ||
    fail "no package $PRODUCT in $SOURCE_DIR: deploy.sh deploys the product directory it is in"
command -v apt-get >/dev/null || fail "no apt-get here: deploy.sh is for Debian 12 or Ubuntu 22.04+"
if [[ -d $APIPHANT_SOURCE ]]; then
    APIPHANT_SOURCE=$(cd "$APIPHANT_SOURCE" && pwd -P)
elif [[ -f $APIPHANT_SOURCE ]]; then
    APIPHANT_SOURCE=$(cd "$(dirname "$APIPHANT_SOURCE")" && pwd -P)/${APIPHANT_SOURCE##*/}
fi

step "deploying $PRODUCT from $SOURCE_DIR to $PRODUCT_DIR"

# install_if_changed FILE DEST: installs FILE as DEST (root's, mode 0644)
# unless DEST is the same already; true when it installed.
install_if_changed() {
    if cmp -s "$1" "$2"; then
        return 1
    fi
    install -m 0644 -o root -g root "$1" "$2"
}

# --- Packages ---------------------------------------------------------------

# apiphant needs Python 3.11: Debian 12's python3 is 3.11; Ubuntu 22.04's is
# 3.10, and it has python3.11 beside it.
PYTHON=/usr/bin/python3
VENV_PACKAGE=python3-venv
if [[ -x $PYTHON ]] && ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PYTHON=/usr/bin/python3.11
    VENV_PACKAGE=python3.11-venv
fi
missing=()
for package in "$VENV_PACKAGE" nginx supervisor logrotate; do
    if [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) != 'install ok installed' ]]; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    step "packages: installing ${missing[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q -o DPkg::Lock::Timeout=120
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}"
else
    step "packages: $VENV_PACKAGE nginx supervisor logrotate are installed"
fi

# --- The system user --------------------------------------------------------

# The API and the scheduler run as this user, who owns nothing but var/: the
# code, the virtualenv and the configs are root's and only readable to it.
if ! getent passwd "$PRODUCT" >/dev/null; then
    step "user: creating the system user $PRODUCT"
    useradd --system --user-group --home-dir "$PRODUCT_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "$USER_COMMENT" "$PRODUCT"
elif [[ $(getent passwd "$PRODUCT" | cut -d: -f5) != "$USER_COMMENT" ]]; then
    fail "a user $PRODUCT exists that deploy.sh did not create: rename the product (apiphant new)"
else
    step "user: $PRODUCT exists"
fi

# --- Directories and code ---------------------------------------------------

step "directories: $PRODUCT_DIR, with log/, var/ (the product's data) and public/"
install -d -m 0755 -o root -g root "$PRODUCT_DIR" "$PRODUCT_DIR/log" "$PRODUCT_DIR/public"
install -d -m 0750 -o "$PRODUCT" -g "$PRODUCT" "$PRODUCT_DIR/var"
install -d -m 0700 -o root -g root "$STATE_DIR"

# Copy ITEM of the product directory to /opt/myproduct unless it is the same
# there already (Python's caches aside); true when it copied. The copy is
# staged beside the target and swapped in by two renames.
sync_item() {
    local item=$1 stage=$STATE_DIR/stage
    rm -rf "$stage" && mkdir "$stage"
    tar -C "$SOURCE_DIR" --exclude=__pycache__ --exclude='*.pyc' -cf - "$item" |
        tar -C "$stage" --no-same-owner -xf -
    if [[ -e $PRODUCT_DIR/$item ]] &&
        diff -rq -x __pycache__ -x '*.pyc' "$stage/$item" "$PRODUCT_DIR/$item" >/dev/null; then
        rm -rf "$stage"
        return 1
    fi
    chmod -R u+rwX,go+rX,go-w "$stage/$item"
    rm -rf "$PRODUCT_DIR/$item.old"
    if [[ -e $PRODUCT_DIR/$item ]]; then
        mv "$PRODUCT_DIR/$item" "$PRODUCT_DIR/$item.old"
    fi
    mv "$stage/$item" "$PRODUCT_DIR/$item"
    rm -rf "$PRODUCT_DIR/$item.old" "$stage"
}

if [[ $SOURCE_DIR -ef $PRODUCT_DIR ]]; then
    step "code: deploying $PRODUCT_DIR in place"
else
    step "code: $PRODUCT/, requirements.txt, public/ and deploy/ to $PRODUCT_DIR"
    for item in "$PRODUCT" requirements.txt public deploy; do
        if [[ -e $SOURCE_DIR/$item ]] && sync_item "$item"; then
            note "$item: updated"
            if [[ $item != public && $item != deploy ]]; then
                # Until the API runs this code: a failed deploy leaves it
                # pending for the next one.
                touch "$STATE_DIR/restart-pending"
            fi
        fi
    done
fi

# --- The virtualenv ---------------------------------------------------------

if [[ ! -x $VENV/bin/python ]]; then
    step "virtualenv: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
    rm -f "$STATE_DIR/pip"
fi

# pip runs when what it would install changed: APIPHANT_SOURCE (and the files
# of a local checkout or wheel) and requirements.txt. An unpinned "apiphant"
# is not upgraded by a new run: pin a version (apiphant==1.0.1) to upgrade.
source_files() {
    if [[ -d $APIPHANT_SOURCE ]]; then
        find "$APIPHANT_SOURCE" \( -name .git -o -name '.*venv' -o -name build -o -name dist \
            -o -name '*.egg-info' -o -name __pycache__ -o -name '.*cache' \) -prune \
            -o -type f -print0 | sort -z | xargs -0 sha256sum
    elif [[ -f $APIPHANT_SOURCE ]]; then
        sha256sum "$APIPHANT_SOURCE"
    fi
}
# A wheel is built even from a checkout without pyproject.toml: the legacy
# "setup.py install" leaves scripts with a broken "#!python" line.
pip_install=("$VENV/bin/pip" install -q --disable-pip-version-check --use-pep517)
fingerprint=$({
    echo "${pip_install[*]} $APIPHANT_SOURCE"
    source_files
    cat "$PRODUCT_DIR/requirements.txt" 2>/dev/null || true
} | sha256sum)
if [[ $(cat "$STATE_DIR/pip" 2>/dev/null) != "$fingerprint" ]]; then
    step "virtualenv: pip install $APIPHANT_SOURCE -r requirements.txt"
    requirements=()
    if [[ -f $PRODUCT_DIR/requirements.txt ]]; then
        requirements=(-r "$PRODUCT_DIR/requirements.txt")
    fi
    "${pip_install[@]}" "$APIPHANT_SOURCE" "${requirements[@]}"
    echo "$fingerprint" >"$STATE_DIR/pip"
    touch "$STATE_DIR/restart-pending"
else
    step "virtualenv: $VENV is up to date"
fi
"$VENV/bin/python" -m compileall -q "$PRODUCT_DIR/$PRODUCT" >/dev/null

# --- The product starts -----------------------------------------------------

# As its user, in a clean environment, as supervisor will run it: an import
# error stops the deploy here, before anything running is touched.
as_product() {
    (cd "$PRODUCT_DIR" && runuser -u "$PRODUCT" -- "${CLEAN_ENV[@]}" HOME="$PRODUCT_DIR" "$@" 2>&1)
}
step "product: the routes of $PRODUCT"
routes=$(as_product "$VENV/bin/apiphant" "$PRODUCT_DIR/$PRODUCT" --routes) ||
    fail "$PRODUCT does not start: $routes"
printf '%s\n' "$routes" | sed "s/^/$SCRIPT:     /"

# The scheduler runs when the product has @seconds tasks; without any it
# would stop at once, so supervisor leaves it stopped.
if tasks=$(as_product "$VENV/bin/apiphant-background" "$PRODUCT_DIR/$PRODUCT" --list); then
    step "background: the tasks of $PRODUCT.api.background"
    printf '%s\n' "$tasks" | sed "s/^/$SCRIPT:     /"
    background_autostart=true
elif [[ $tasks == *"has no tasks"* || $tasks == *"no module $PRODUCT.api.background"* ]]; then
    step "background: no @seconds task in $PRODUCT.api.background: the scheduler stays stopped"
    background_autostart=false
else
    fail "the scheduler of $PRODUCT does not start: $tasks"
fi

# --- Configs ----------------------------------------------------------------

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

render_supervisor "$DEPLOY_DIR/supervisor/$PRODUCT.conf" "$background_autostart" >"$WORK/supervisor.conf"
render_nginx "$DEPLOY_DIR/nginx/$PRODUCT" >"$WORK/nginx"

step "supervisor: $SUPERVISOR_CONF ($API_PROCESSES API processes on 127.0.0.1:$API_PORT and up)"
if install_if_changed "$WORK/supervisor.conf" "$SUPERVISOR_CONF"; then
    note "installed"
else
    note "unchanged"
fi

step "nginx: $NGINX_SITE (listening on $LISTEN)"
nginx_changed=
if ! cmp -s "$WORK/nginx" "$NGINX_SITE"; then
    if [[ -f $NGINX_SITE ]]; then
        cp -p "$NGINX_SITE" "$WORK/nginx.before"
    fi
    install -m 0644 -o root -g root "$WORK/nginx" "$NGINX_SITE"
    note "installed"
    nginx_changed=1
else
    note "unchanged"
fi
if [[ ! -L $NGINX_LINK ]]; then
    ln -sfn "$NGINX_SITE" "$NGINX_LINK"
    note "enabled: $NGINX_LINK"
    nginx_changed=1
fi
# Debian's "Welcome to nginx" site claims port 80 as its default server: on
# port 80 it goes (uninstall.sh puts it back).
disabled_default=
if [[ ${LISTEN##*:} == 80 && -L $NGINX_DEFAULT_LINK ]]; then
    readlink "$NGINX_DEFAULT_LINK" >"$STATE_DIR/disabled-default-site"
    rm "$NGINX_DEFAULT_LINK"
    note "disabled Debian's default site, which takes port 80 (uninstall.sh restores it)"
    nginx_changed=1
    disabled_default=1
fi
if [[ $nginx_changed ]] && ! checked=$(nginx -t 2>&1); then
    if [[ -f $WORK/nginx.before ]]; then
        cp -p "$WORK/nginx.before" "$NGINX_SITE"
    else
        rm -f "$NGINX_LINK" "$NGINX_SITE"
    fi
    if [[ $disabled_default ]]; then
        ln -s "$(cat "$STATE_DIR/disabled-default-site")" "$NGINX_DEFAULT_LINK"
        rm "$STATE_DIR/disabled-default-site"
    fi
    fail "nginx -t rejects the configuration (nginx's sites are left as they were): $checked"
fi

step "logrotate: $LOGROTATE_CONF"
checked=$(logrotate -d "$DEPLOY_DIR/logrotate/nginx-$PRODUCT" 2>&1) ||
    fail "logrotate rejects logrotate/nginx-$PRODUCT: $checked"
if install_if_changed "$DEPLOY_DIR/logrotate/nginx-$PRODUCT" "$LOGROTATE_CONF"; then
    note "installed"
else
    note "unchanged"
fi

# --- Supervisor -------------------------------------------------------------

# The processes running before: those still running after the update run
# the old code.
running_before=$(running_processes)
if ! supervisor_up; then
    step "supervisor: starting supervisord"
    if has_systemd; then
        systemctl start supervisor
    else
        "${CLEAN_ENV[@]}" supervisord -c /etc/supervisor/supervisord.conf
    fi
    for _ in $(seq 50); do
        supervisor_up && break
        sleep 0.2
    done
    supervisor_up || fail "supervisord does not answer: see /var/log/supervisor/supervisord.log"
    touch "$STATE_DIR/started-supervisord"
else
    step "supervisor: update $API_PROGRAM $BACKGROUND_PROGRAM"
    supervisorctl reread >/dev/null
    # Only our programs: another product's pending change stays pending.
    supervisorctl update "$API_PROGRAM" "$BACKGROUND_PROGRAM" | sed "s/^/$SCRIPT:     /"
fi

# Processes stopped by hand, or given up on (FATAL) before, start again.
stopped() {
    [[ $(program_state "$1") =~ ^(STOPPED|EXITED|FATAL)$ ]]
}
for port in $(api_ports); do
    if stopped "$API_PROGRAM:$port"; then
        supervisorctl start "$API_PROGRAM:$port" | sed "s/^/$SCRIPT:     /" || true
    fi
done
if [[ $background_autostart == true ]] && stopped "$BACKGROUND_PROGRAM"; then
    supervisorctl start "$BACKGROUND_PROGRAM" | sed "s/^/$SCRIPT:     /" || true
fi

# New code reaches the processes that were running before by a rolling
# restart; those that supervisor (re)started just now run it already.
if [[ -f $STATE_DIR/restart-pending ]]; then
    if [[ -n $(comm -12 <(echo "$running_before") <(running_processes)) ]]; then
        step "new code: rolling restart (reload.sh)"
        "$DEPLOY_DIR/reload.sh"
    fi
    rm "$STATE_DIR/restart-pending"
fi

step "supervisor: waiting for GET /health on 127.0.0.1:$(api_ports | xargs | tr ' ' ,)"
for port in $(api_ports); do
    wait_healthy "$port" 30 || fail "$API_PROGRAM:$port does not answer GET /health; the end of" \
        "$PRODUCT_DIR/log/api-$port.log:"$'\n'"$(tail -n 15 "$PRODUCT_DIR/log/api-$port.log" 2>&1)"
done
if [[ $background_autostart == true ]]; then
    state=$(program_state "$BACKGROUND_PROGRAM")
    [[ $state == RUNNING || $state == STARTING ]] || fail "$BACKGROUND_PROGRAM is $state; the end of" \
        "$PRODUCT_DIR/log/background.log:"$'\n'"$(tail -n 15 "$PRODUCT_DIR/log/background.log" 2>&1)"
fi

# --- nginx ------------------------------------------------------------------

if ! nginx_up; then
    step "nginx: starting nginx"
    if has_systemd; then
        systemctl start nginx
    else
        "${CLEAN_ENV[@]}" nginx
    fi
    touch "$STATE_DIR/started-nginx"
elif [[ $nginx_changed ]]; then
    step "nginx: reloading its configuration"
    reload_nginx
else
    step "nginx: running, its configuration unchanged"
fi

"$DEPLOY_DIR/quick-test.sh"
step "deployed $PRODUCT in ${SECONDS} s: $(nginx_url)/api/"
