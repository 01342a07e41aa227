#!/usr/bin/env bash
# as-product.sh: runs a command as myproduct's system user, with the secrets
# of /etc/myproduct/secrets.env in its environment:
#
#     /opt/myproduct/deploy/as-product.sh /opt/myproduct/venv/bin/apiphant /opt/myproduct/myproduct --routes
#
# supervisor starts the API processes and the scheduler through it (as root),
# and deploy.sh checks the product through it. The secrets file is root's
# alone (mode 0600), so that the product's user cannot read it: it is read
# here, before the user changes, and its values reach the command's
# environment only, never a command line or a log line. Its lines are
# NAME=value (the value as written: no quotes, no expansion), comments (#)
# and blank lines; a value there takes precedence over the environment
# supervisor gives (APIPHANT_DATABASE_URL with a password, say). The command
# then replaces this script (same process id), so supervisor's signals reach it.
#
#     --help, -h   this
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

case ${1:-} in
    --help | -h) usage; exit 0 ;;
    -*) refuse "$1" ;;
    '') fail "no command: as-product.sh COMMAND [ARGUMENT...] (as-product.sh --help)" ;;
esac
require_root
getent passwd "$PRODUCT" >/dev/null || fail "no user $PRODUCT: deploy.sh creates it"

if [[ -e $SECRETS_FILE ]]; then
    number=0
    while IFS= read -r line || [[ -n $line ]]; do
        number=$((number + 1))
        if [[ $line =~ ^[[:space:]]*(#|$) ]]; then
            continue
        fi
        # The line itself is not shown: it may hold a secret.
        [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || fail "$SECRETS_FILE, line $number: not NAME=value"
        export "${line?}"
    done <"$SECRETS_FILE"
fi

exec setpriv --reuid="$PRODUCT" --regid="$PRODUCT" --init-groups --no-new-privs -- "$@"
