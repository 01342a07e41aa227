#!/usr/bin/env bash
# reload.sh: a rolling restart of myproduct's API processes, to put new code
# in service under load with no failed request:
#
#     sudo deploy/reload.sh
#
# One process at a time, supervisor stops it with SIGTERM (apiphant stops
# accepting, finishes the requests in flight and exits) and starts it again,
# and reload.sh waits until it answers GET /health before it restarts the
# next one. Meanwhile nginx passes every request that a restarting process
# refuses to the next process (proxy_next_upstream error in nginx/myproduct);
# a request that reached a process is answered by it. The scheduler restarts
# last, if it runs. deploy.sh runs this when the code or the virtualenv changed.
#
#     --help, -h   this
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

for argument; do
    case $argument in
        --help | -h) usage; exit 0 ;;
        *) refuse "$argument" ;;
    esac
done
require_root
supervisor_up || fail "supervisord is not running: deploy.sh starts it"

# The processes as supervisor runs them (myproduct-api:8001 ...), whatever
# API_PROCESSES says now: deploy.sh applies a new count.
mapfile -t processes < <({ supervisorctl status 2>/dev/null || true; } |
    awk -v prefix="$API_PROGRAM:" 'index($1, prefix) == 1 { print $1 }')
((${#processes[@]})) || fail "supervisor runs no $API_PROGRAM process: run deploy.sh"
if ((${#processes[@]} == 1)); then
    note "one API process only: requests fail while it restarts (API_PROCESSES in settings.sh)"
fi

for process in "${processes[@]}"; do
    port=${process#"$API_PROGRAM:"}
    step "restarting $process"
    supervisorctl restart "$process" | sed "s/^/$SCRIPT:     /"
    wait_healthy "$port" 30 ||
        fail "$process does not answer GET /health on 127.0.0.1:$port: see $PRODUCT_DIR/log/api-$port.log"
    note "$process answers GET /health"
done

if [[ $(program_state "$BACKGROUND_PROGRAM") == RUNNING ]]; then
    step "restarting $BACKGROUND_PROGRAM"
    supervisorctl restart "$BACKGROUND_PROGRAM" | sed "s/^/$SCRIPT:     /"
fi
step "reloaded ${#processes[@]} API processes in ${SECONDS} s"
