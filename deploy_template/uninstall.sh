#!/usr/bin/env bash
# uninstall.sh: removes what deploy.sh installed for myproduct:
#
#     sudo deploy/uninstall.sh --yes
#
# the supervisor programs (stopped as on any stop: requests in flight
# finish), the nginx site, the logrotate config, /opt/myproduct with its code,
# virtualenv, logs and data, /etc/myproduct with its secrets, and the system
# user. supervisord and nginx are
# stopped if deploy.sh started them and nothing else is configured in them;
# Debian's default nginx site comes back if deploy.sh disabled it. The apt
# packages stay: other things may use them.
#
#     --yes        remove without asking (otherwise it asks on a terminal)
#     --help, -h   this
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

confirmed=
for argument; do
    case $argument in
        --help | -h) usage; exit 0 ;;
        --yes) confirmed=1 ;;
        *) refuse "$argument" ;;
    esac
done
require_root
check_product
if [[ ! $confirmed ]]; then
    [[ -t 0 ]] || fail "this removes $PRODUCT_DIR with its logs and data: run uninstall.sh --yes"
    read -r -p "Remove $PRODUCT and its data in $PRODUCT_DIR? Type $PRODUCT to confirm: " answer
    [[ $answer == "$PRODUCT" ]] || fail "not confirmed: nothing removed"
fi

if [[ -f $SUPERVISOR_CONF ]]; then
    step "supervisor: removing $API_PROGRAM and $BACKGROUND_PROGRAM"
    rm "$SUPERVISOR_CONF"
    if supervisor_up; then
        supervisorctl reread >/dev/null
        supervisorctl update "$API_PROGRAM" "$BACKGROUND_PROGRAM" | sed "s/^/$SCRIPT:     /"
    fi
fi

if [[ -e $NGINX_SITE || -L $NGINX_LINK ]]; then
    step "nginx: removing the site $PRODUCT"
    rm -f "$NGINX_LINK" "$NGINX_SITE"
    if [[ -f $STATE_DIR/disabled-default-site && ! -e $NGINX_DEFAULT_LINK ]]; then
        ln -s "$(cat "$STATE_DIR/disabled-default-site")" "$NGINX_DEFAULT_LINK"
        note "restored Debian's default site"
    fi
    if nginx_up; then
        checked=$(nginx -t 2>&1) || fail "nginx -t rejects what is left of its configuration: $checked"
        reload_nginx
    fi
fi

if [[ -f $LOGROTATE_CONF ]]; then
    step "logrotate: removing $LOGROTATE_CONF"
    rm "$LOGROTATE_CONF"
fi

# What deploy.sh started goes back to stopped, unless something else uses it now.
if [[ -f $STATE_DIR/started-supervisord ]] && supervisor_up; then
    if [[ -n $(supervisorctl status 2>/dev/null || true) ]]; then
        step "supervisor: deploy.sh started supervisord, which runs other programs now: left running"
    else
        step "supervisor: stopping supervisord, which deploy.sh started"
        if has_systemd; then
            systemctl stop supervisor
        else
            pid=$(supervisorctl pid)
            supervisorctl shutdown >/dev/null
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
    fi
fi
if [[ -f $STATE_DIR/started-nginx ]] && nginx_up; then
    others=$(find /etc/nginx/sites-enabled /etc/nginx/conf.d -mindepth 1 -maxdepth 1 \
        ! -name default ! -name '*.dpkg-*' 2>/dev/null | head -n 1)
    if [[ -n $others ]]; then
        step "nginx: deploy.sh started nginx, which serves other sites now ($others): left running"
    else
        step "nginx: stopping nginx, which deploy.sh started"
        if has_systemd; then
            systemctl stop nginx
        else
            pid=$(nginx_pid)
            nginx -s quit
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
    fi
fi

if [[ -d $PRODUCT_DIR ]]; then
    step "files: removing $PRODUCT_DIR"
    rm -rf "$PRODUCT_DIR"
fi

if [[ -d $SECRETS_DIR ]]; then
    step "secrets: removing $SECRETS_DIR"
    rm -rf "$SECRETS_DIR"
fi

if getent passwd "$PRODUCT" >/dev/null; then
    if [[ $(getent passwd "$PRODUCT" | cut -d: -f5) == "$USER_COMMENT" ]]; then
        step "user: removing the system user $PRODUCT"
        userdel "$PRODUCT"
        if getent group "$PRODUCT" >/dev/null; then
            groupdel "$PRODUCT"
        fi
    else
        step "user: $PRODUCT was not created by deploy.sh: left as it is"
    fi
fi
step "uninstalled $PRODUCT"
