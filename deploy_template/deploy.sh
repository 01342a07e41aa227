#!/usr/bin/env bash
# deploy.sh: myproduct from a fresh Debian 12 or Ubuntu 22.04+ server to a
# served API, as root:
#
#     sudo deploy/deploy.sh [--dry-run]
#
# It installs what it needs with apt, a system user, the product under
# /opt/myproduct with its virtualenv (apiphant from the wheel in
# deploy/wheels/), the key that signs access tokens in /etc/myproduct/secrets.env (made once,
# never rewritten, root's alone), and the supervisor, nginx and logrotate
# configs; starts or reloads supervisor and nginx; and ends with
# quick-test.sh. Run it again after a change: it changes only what changed
# (new code is rolled out by reload.sh, with no failed request) and nothing
# at all when nothing did. Settings: settings.sh. Undone by uninstall.sh.
#
#     --dry-run, -n   say what it would install, write, start and restart,
#                     and change nothing
#     --help, -h      this
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SOURCE_DIR=$(dirname "$DEPLOY_DIR")
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

DRY_RUN=
for argument; do
    case $argument in
        --help | -h) usage; exit 0 ;;
        --dry-run | -n) DRY_RUN=1 ;;
        *) refuse "$argument" ;;
    esac
done

require_root
check_settings
[[ -f $SOURCE_DIR/$PRODUCT/__init__.py ]] ||
    fail "no package $PRODUCT in $SOURCE_DIR: deploy.sh deploys the product directory it is in"
command -v apt-get >/dev/null || fail "no apt-get here: deploy.sh is for Debian 12 or Ubuntu 22.04+"
if [[ -z $APIPHANT_SOURCE ]]; then
    mapfile -t wheels < <(compgen -G "$DEPLOY_DIR/wheels/apiphant-*.whl" || true)
    ((${#wheels[@]} == 1)) || fail "deploy/wheels/ holds ${#wheels[@]} apiphant wheels instead of one:" \
        "\`apiphant upgrade $SOURCE_DIR\` writes it (or set APIPHANT_SOURCE in settings.sh)"
    APIPHANT_SOURCE=${wheels[0]}
elif [[ -f $APIPHANT_SOURCE/setup.py || -f $APIPHANT_SOURCE/pyproject.toml ]]; then
    APIPHANT_SOURCE=$(cd "$APIPHANT_SOURCE" && pwd -P)
elif [[ $APIPHANT_SOURCE == *.whl && -f $APIPHANT_SOURCE ]]; then
    APIPHANT_SOURCE=$(cd "$(dirname "$APIPHANT_SOURCE")" && pwd -P)/${APIPHANT_SOURCE##*/}
else
    fail "APIPHANT_SOURCE=$APIPHANT_SOURCE: not the path of a wheel or a checkout of apiphant" \
        "(by its name alone, pip would install PyPI's apiphant, an unrelated 0.2 release)"
fi

if [[ $DRY_RUN ]]; then
    step "dry run: what deploying $PRODUCT from $SOURCE_DIR to $PRODUCT_DIR would do (nothing is changed)"
else
    step "deploying $PRODUCT from $SOURCE_DIR to $PRODUCT_DIR"
fi

# dry WHAT: with --dry-run, says "would WHAT", counts it and is true, so that
# `dry "..." || command` runs the command only for real.
WOULD=0
dry() {
    [[ $DRY_RUN ]] || return 1
    WOULD=$((WOULD + 1))
    note "would $*"
}

# install_if_changed FILE DEST: installs FILE as DEST (root's, mode 0644)
# unless DEST is the same already; true when it installed (or would).
install_if_changed() {
    if cmp -s "$1" "$2"; then
        return 1
    fi
    dry "install $2" || install -m 0644 -o root -g root "$1" "$2"
}

# Until the API runs new code or a new virtualenv, a restart is pending; a
# failed deploy leaves it pending (in the state directory) for the next one.
restart_pending=
if [[ -f $STATE_DIR/restart-pending ]]; then restart_pending=1; fi
pending_restart() {
    restart_pending=1
    [[ $DRY_RUN ]] || touch "$STATE_DIR/restart-pending"
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
    step "packages: ${missing[*]} missing"
    if ! dry "install with apt: ${missing[*]}"; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q -o DPkg::Lock::Timeout=120
        apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}"
    fi
else
    step "packages: $VENV_PACKAGE nginx supervisor logrotate are installed"
fi

# --- The system user --------------------------------------------------------

# The API and the scheduler run as this user, who owns nothing but var/: the
# code, the virtualenv and the configs are root's and only readable to it.
if ! getent passwd "$PRODUCT" >/dev/null; then
    step "user: no system user $PRODUCT yet"
    dry "create the system user $PRODUCT" ||
        useradd --system --user-group --home-dir "$PRODUCT_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "$USER_COMMENT" "$PRODUCT"
elif [[ $(getent passwd "$PRODUCT" | cut -d: -f5) != "$USER_COMMENT" ]]; then
    fail "a user $PRODUCT exists that deploy.sh did not create: rename the product (apiphant new)"
else
    step "user: $PRODUCT exists"
fi

# --- Directories and code ---------------------------------------------------

step "directories: $PRODUCT_DIR, with log/, var/ (the product's data) and public/"
for directory in "$PRODUCT_DIR" "$PRODUCT_DIR/log" "$PRODUCT_DIR/public" "$PRODUCT_DIR/var" "$STATE_DIR"; do
    if [[ $DRY_RUN && ! -d $directory ]]; then dry "create $directory"; fi
done
if [[ ! $DRY_RUN ]]; then
    install -d -m 0755 -o root -g root "$PRODUCT_DIR" "$PRODUCT_DIR/log" "$PRODUCT_DIR/public"
    install -d -m 0750 -o "$PRODUCT" -g "$PRODUCT" "$PRODUCT_DIR/var"
    install -d -m 0700 -o root -g root "$STATE_DIR"
fi

# Copy ITEM of the product directory to /opt/myproduct unless it is the same
# there already (Python's caches aside); true when it copied (or would). The
# copy is staged beside the target and swapped in by two renames.
sync_item() {
    local item=$1 stage=$STATE_DIR/stage
    if [[ $DRY_RUN ]]; then
        if [[ -e $PRODUCT_DIR/$item ]] &&
            diff -rq -x __pycache__ -x '*.pyc' "$SOURCE_DIR/$item" "$PRODUCT_DIR/$item" >/dev/null; then
            return 1
        fi
        dry "copy $item to $PRODUCT_DIR"
        return
    fi
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
    note "$item: updated"
}

if [[ $SOURCE_DIR -ef $PRODUCT_DIR ]]; then
    step "code: deploying $PRODUCT_DIR in place"
else
    step "code: $PRODUCT/, requirements.txt, public/ and deploy/ to $PRODUCT_DIR"
    for item in "$PRODUCT" requirements.txt public deploy; do
        if [[ -e $SOURCE_DIR/$item ]] && sync_item "$item" && [[ $item != public && $item != deploy ]]; then
            pending_restart
        fi
    done
fi

# --- Secrets ----------------------------------------------------------------

# Made once with a random key that signs access tokens (APIPHANT_AUTH_KEYS,
# kid k1), then only ever read: neither rewritten here nor removed but by
# uninstall.sh (a file made before apiphant.auth gets the key added once).
# It lives outside the product directory (and so outside git); the operator
# adds what else is secret (APIPHANT_DATABASE_URL with a password).
# as-product.sh reads it as root.
step "secrets: $SECRETS_FILE"
if [[ ! -e $SECRETS_FILE ]]; then
    if ! dry "create $SECRETS_FILE (root's, mode 0600) with a random APIPHANT_AUTH_KEYS"; then
        install -d -m 0700 -o root -g root "$SECRETS_DIR"
        # The key goes from od through a variable into printf (a builtin):
        # it is never an argument of a command that ps could show.
        key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
        (
            umask 077
            printf '# Secrets of %s, read by %s/deploy/as-product.sh into the environment of\n' \
                "$PRODUCT" "$PRODUCT_DIR"
            printf '# its programs. NAME=value lines; made once by deploy.sh, never rewritten.\n'
            printf '# APIPHANT_AUTH_KEYS signs access tokens; to roll it, put a new KID:SECRET first\n'
            printf '# and drop the old pair once its tokens have expired (15 minutes).\n'
            printf 'APIPHANT_AUTH_KEYS=k1:%s\n' "$key"
        ) >"$SECRETS_FILE.new"
        unset key
        chown root:root "$SECRETS_FILE.new"
        chmod 0600 "$SECRETS_FILE.new"
        mv "$SECRETS_FILE.new" "$SECRETS_FILE"
        note "created with a random APIPHANT_AUTH_KEYS"
        created=1
        pending_restart
    fi
elif [[ $(stat -c '%a %U %G' "$SECRETS_FILE") != '600 root root' ||
    $(stat -c '%a %U %G' "$SECRETS_DIR") != '700 root root' ]]; then
    dry "make $SECRETS_FILE root's alone again (0600, in a 0700 directory)" || {
        chown root:root "$SECRETS_DIR" "$SECRETS_FILE"
        chmod 0700 "$SECRETS_DIR"
        chmod 0600 "$SECRETS_FILE"
        note "made root's alone again (0600, in a 0700 directory)"
    }
fi
if [[ -e $SECRETS_FILE ]] && ! grep -q '^APIPHANT_AUTH_KEYS=' "$SECRETS_FILE"; then
    dry "add a random APIPHANT_AUTH_KEYS to $SECRETS_FILE" || {
        key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
        printf 'APIPHANT_AUTH_KEYS=k1:%s\n' "$key" >>"$SECRETS_FILE"
        unset key
        note "added a random APIPHANT_AUTH_KEYS"
        pending_restart
    }
elif [[ -e $SECRETS_FILE && -z ${created:-} ]]; then
    note "kept (root's alone, never rewritten)"
fi

# --- The virtualenv ---------------------------------------------------------

database_url_in_secrets() {
    [[ -f $SECRETS_FILE ]] && grep -q "^APIPHANT_DATABASE_URL=${1:-}" "$SECRETS_FILE"
}
step "database: ${DATABASE_URL%%\?*}"
if database_url_in_secrets; then
    note "APIPHANT_DATABASE_URL in $SECRETS_FILE takes precedence"
fi
# With PostgreSQL, apiphant's postgresql extra brings its driver.
apiphant_requirement=$APIPHANT_SOURCE
if [[ $DATABASE_URL == postgres* ]] || database_url_in_secrets postgres; then
    apiphant_requirement+='[postgresql]'
fi

if [[ ! -x $VENV/bin/python ]]; then
    dry "create the virtualenv $VENV with $PYTHON" || {
        step "virtualenv: creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
        rm -f "$STATE_DIR/pip"
    }
fi

# pip runs when what it would install changed: the wheel (or the files of a
# checkout), its extras and requirements.txt. apiphant is reinstalled even at
# the same version: a wheel of a development version changes under one name.
source_files() {
    if [[ -d $APIPHANT_SOURCE ]]; then
        find "$APIPHANT_SOURCE" \( -name .git -o -name '.*venv' -o -name build -o -name dist \
            -o -name '*.egg-info' -o -name __pycache__ -o -name '.*cache' \) -prune \
            -o -type f -print0 | sort -z | xargs -0 sha256sum
    else
        sha256sum "$APIPHANT_SOURCE"
    fi
}
# A wheel is built even from a checkout without pyproject.toml: the legacy
# "setup.py install" leaves scripts with a broken "#!python" line.
pip_install=("$VENV/bin/pip" install -q --disable-pip-version-check --use-pep517)
fingerprint=$({
    echo "${pip_install[*]} $apiphant_requirement"
    source_files
    cat "$SOURCE_DIR/requirements.txt" 2>/dev/null || true
} | sha256sum)
if [[ $(cat "$STATE_DIR/pip" 2>/dev/null) != "$fingerprint" ]]; then
    dry "pip install $apiphant_requirement -r requirements.txt into $VENV" || {
        step "virtualenv: pip install $apiphant_requirement -r requirements.txt"
        requirements=()
        if [[ -f $PRODUCT_DIR/requirements.txt ]]; then
            requirements=(-r "$PRODUCT_DIR/requirements.txt")
        fi
        "${pip_install[@]}" "$apiphant_requirement" "${requirements[@]}"
        "${pip_install[@]}" --force-reinstall --no-deps "$APIPHANT_SOURCE"
        echo "$fingerprint" >"$STATE_DIR/pip"
    }
    pending_restart
else
    step "virtualenv: $VENV is up to date"
fi

# --- The product starts -----------------------------------------------------

# As its user, with its secrets, in a clean environment, as supervisor will
# run it: an import error stops the deploy here, before anything running is
# touched.
as_product() {
    (cd "$PRODUCT_DIR" && "${CLEAN_ENV[@]}" HOME="$PRODUCT_DIR" APIPHANT_DATABASE_URL="$DATABASE_URL" \
        "$PRODUCT_DIR/deploy/as-product.sh" "$@" 2>&1)
}
if [[ $DRY_RUN ]]; then
    if ((WOULD)); then
        dry "check, as $PRODUCT, that the product imports, and whether it has @seconds tasks"
    fi
    background_autostart=$(awk '/^\[/ { b = /-background\]$/ } b && sub(/^autostart=/, "")' \
        "$SUPERVISOR_CONF" 2>/dev/null || true)
    background_autostart=${background_autostart:-true}
else
    "$VENV/bin/python" -m compileall -q "$PRODUCT_DIR/$PRODUCT" >/dev/null
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
fi

# --- Configs ----------------------------------------------------------------

# A dry run writes nothing, not even in /tmp: it compares what it renders
# through pipes.
if [[ $DRY_RUN ]]; then
    exec {supervisor_fd}< <(render_supervisor "$DEPLOY_DIR/supervisor/$PRODUCT.conf" "$background_autostart")
    exec {nginx_fd}< <(render_nginx "$DEPLOY_DIR/nginx/$PRODUCT")
    supervisor_rendered=/dev/fd/$supervisor_fd nginx_rendered=/dev/fd/$nginx_fd
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    render_supervisor "$DEPLOY_DIR/supervisor/$PRODUCT.conf" "$background_autostart" >"$WORK/supervisor.conf"
    render_nginx "$DEPLOY_DIR/nginx/$PRODUCT" >"$WORK/nginx"
    supervisor_rendered=$WORK/supervisor.conf nginx_rendered=$WORK/nginx
fi

step "supervisor: $SUPERVISOR_CONF ($API_PROCESSES API processes on 127.0.0.1:$API_PORT and up)"
supervisor_changed=
if install_if_changed "$supervisor_rendered" "$SUPERVISOR_CONF"; then
    supervisor_changed=1
    [[ $DRY_RUN ]] || note "installed"
else
    note "unchanged"
fi

if tls; then
    step "nginx: $NGINX_SITE (HTTPS on $LISTEN_TLS with $TLS_CERTIFICATE; HTTP on $LISTEN redirects to it)"
else
    step "nginx: $NGINX_SITE (plain HTTP on $LISTEN: no TLS_CERTIFICATE and TLS_KEY in settings.sh)"
fi
nginx_changed=
if ! cmp -s "$nginx_rendered" "$NGINX_SITE"; then
    if [[ -f $NGINX_SITE && ! $DRY_RUN ]]; then
        cp -p "$NGINX_SITE" "$WORK/nginx.before"
    fi
    dry "install $NGINX_SITE" || {
        install -m 0644 -o root -g root "$nginx_rendered" "$NGINX_SITE"
        note "installed"
    }
    nginx_changed=1
else
    note "unchanged"
fi
if [[ ! -L $NGINX_LINK ]]; then
    dry "enable it: $NGINX_LINK" || {
        ln -sfn "$NGINX_SITE" "$NGINX_LINK"
        note "enabled: $NGINX_LINK"
    }
    nginx_changed=1
fi
# Debian's "Welcome to nginx" site claims port 80 as its default server: on
# port 80 it goes (uninstall.sh puts it back).
disabled_default=
if [[ ${LISTEN##*:} == 80 && -L $NGINX_DEFAULT_LINK ]]; then
    dry "disable Debian's default site, which takes port 80 (uninstall.sh restores it)" || {
        readlink "$NGINX_DEFAULT_LINK" >"$STATE_DIR/disabled-default-site"
        rm "$NGINX_DEFAULT_LINK"
        note "disabled Debian's default site, which takes port 80 (uninstall.sh restores it)"
        disabled_default=1
    }
    nginx_changed=1
fi
if [[ $nginx_changed && $DRY_RUN ]]; then
    dry "check the configuration with nginx -t (and put the sites back as they were if it fails)"
elif [[ $nginx_changed ]] && ! checked=$(nginx -t 2>&1); then
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
    [[ $DRY_RUN ]] || note "installed"
else
    note "unchanged"
fi

# --- Supervisor -------------------------------------------------------------

# The processes running before: those still running after the update run
# the old code.
running_before=$(running_processes)
if ! supervisor_up; then
    dry "start supervisord, which starts $API_PROGRAM and $BACKGROUND_PROGRAM" || {
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
    }
elif [[ $DRY_RUN ]]; then
    if [[ $supervisor_changed ]]; then
        dry "apply $SUPERVISOR_CONF (supervisorctl update: a changed program restarts its processes together)"
    fi
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
        dry "start $API_PROGRAM:$port" ||
            supervisorctl start "$API_PROGRAM:$port" | sed "s/^/$SCRIPT:     /" || true
    fi
done
if [[ $background_autostart == true ]] && stopped "$BACKGROUND_PROGRAM"; then
    dry "start $BACKGROUND_PROGRAM" ||
        supervisorctl start "$BACKGROUND_PROGRAM" | sed "s/^/$SCRIPT:     /" || true
fi

# New code reaches the processes that were running before by a rolling
# restart; those that supervisor (re)started just now run it already.
if [[ $restart_pending ]]; then
    if [[ $DRY_RUN ]]; then
        if [[ -n $running_before ]]; then
            dry "restart the running processes one at a time on the new code (reload.sh)"
        fi
    else
        if [[ -n $(comm -12 <(echo "$running_before") <(running_processes)) ]]; then
            step "new code: rolling restart (reload.sh)"
            "$DEPLOY_DIR/reload.sh"
        fi
        rm -f "$STATE_DIR/restart-pending"
    fi
fi

if [[ ! $DRY_RUN ]]; then
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
fi

# --- nginx ------------------------------------------------------------------

if ! nginx_up; then
    dry "start nginx" || {
        step "nginx: starting nginx"
        if has_systemd; then
            systemctl start nginx
        else
            "${CLEAN_ENV[@]}" nginx
        fi
        touch "$STATE_DIR/started-nginx"
    }
elif [[ $nginx_changed ]]; then
    dry "reload nginx's configuration" || {
        step "nginx: reloading its configuration"
        reload_nginx
    }
else
    step "nginx: running, its configuration unchanged"
fi

if [[ $DRY_RUN ]]; then
    if ((WOULD == 0)); then
        step "dry run: nothing would change"
    else
        step "dry run: $WOULD changes, none made; quick-test.sh would check $(nginx_url)/api/v0/echo/read"
    fi
    exit 0
fi
"$DEPLOY_DIR/quick-test.sh"
step "deployed $PRODUCT in ${SECONDS} s: $(nginx_url)/api/"
