#!/usr/bin/env bash
# quick-test.sh: POST {"hello": "world"} to /api/v0/echo/read through nginx,
# as a client would, and check that the answer is 200 and echoes it:
#
#     deploy/quick-test.sh
#
# deploy.sh ends with it. It gives nginx and the API 10 s to answer, as they
# may still be starting.
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

[[ -x $VENV/bin/python ]] || fail "no $VENV: run deploy.sh"
url="$(nginx_url)/api/v0/echo/read"
host=
if [[ $SERVER_NAME != _ && ${SERVER_NAME%% *} != *'*'* ]]; then
    host=${SERVER_NAME%% *}
fi

deadline=$((SECONDS + 10))
until answer=$(http POST "$url" '{"hello": "world"}' "$host" 2>&1) && [[ $answer == '200 '*'"hello":"world"'* ]]; do
    ((SECONDS < deadline)) || fail "POST $url {\"hello\": \"world\"} answered: $answer"
    sleep 0.5
done
step "POST $url {\"hello\": \"world\"} -> $answer"
