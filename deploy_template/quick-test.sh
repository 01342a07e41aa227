#!/usr/bin/env bash
# quick-test.sh: POST {"hello": "world"} to /api/v0/echo/read, as a client
# would, and check that the answer is 200 and echoes it:
#
#     deploy/quick-test.sh [--insecure] [URL]
#
# URL is where myproduct is served, by this deploy or any other, over HTTP or
# HTTPS: https://api.example.com, http://127.0.0.1:8001 (an API process
# itself). Without it, the nginx of this machine as deploy.sh configured it
# (HTTPS when settings.sh has TLS_CERTIFICATE), with its certificate
# unverified: the check names 127.0.0.1, not the certificate's host.
# deploy.sh ends with it. It gives nginx and the API 10 s to answer, as they
# may still be starting. Needs no root.
#
#     --insecure, -k   do not verify the certificate of an https URL
#                      (a self-signed one)
#     --help, -h       this
#
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
source "$DEPLOY_DIR/settings.sh"
source "$DEPLOY_DIR/functions.sh"

url='' insecure='' host=''
for argument; do
    case $argument in
        --help | -h) usage; exit 0 ;;
        --insecure | -k) insecure=1 ;;
        http://* | https://*)
            [[ -z $url ]] || refuse "$argument"
            url=${argument%/}
            ;;
        *) refuse "$argument" ;;
    esac
done
if [[ -z $url ]]; then
    url=$(nginx_url)
    if tls; then insecure=1; fi
    if [[ $SERVER_NAME != _ && ${SERVER_NAME%% *} != *'*'* ]]; then
        host=${SERVER_NAME%% *}
    fi
fi
url+=/api/v0/echo/read

deadline=$((SECONDS + 10))
until answer=$(http POST "$url" '{"hello": "world"}' "$host" "$insecure" 2>&1) &&
    [[ $answer == '200 '*'"hello":"world"'* ]]; do
    # A certificate does not get better by waiting.
    if [[ $answer == *CERTIFICATE_VERIFY_FAILED* ]]; then
        fail "POST $url: the certificate is not trusted here (--insecure for a self-signed one): $answer"
    fi
    ((SECONDS < deadline)) || fail "POST $url {\"hello\": \"world\"} answered: $answer"
    sleep 0.5
done
step "POST $url {\"hello\": \"world\"} -> $answer"
