# shellcheck shell=bash disable=SC2034  # the scripts that source this use its variables
# The settings of myproduct's deployment, in one place: deploy.sh writes them
# into the supervisor and nginx configs, and the other scripts read them.
# Each can also come from the environment, for one run:
#     LISTEN=8080 ./deploy.sh
# Edit the defaults here to keep them for every run. This file goes into git
# with the product: no password here. Secrets live in /etc/myproduct/secrets.env
# (see deploy.sh), on the server only.

# The package, the system user, /opt/myproduct and every file name deploy.sh
# installs. (`apiphant new NAME` wrote NAME here and everywhere else.)
PRODUCT=myproduct

# How many API processes supervisor runs. apiphant serves each request in a
# greenlet of one process, on one core: one process per core uses the
# machine, and at least two let reload.sh restart one while another serves.
: "${API_PROCESSES:=2}"

# The first API process listens on 127.0.0.1:API_PORT, the next ones on the
# following ports; nginx is the only way in.
: "${API_PORT:=8001}"

# Where nginx listens for HTTP: a port (80: every address) or ADDRESS:PORT.
# With TLS, HTTP only redirects to HTTPS (and answers certbot's challenges).
: "${LISTEN:=80}"

# TLS: the paths of a certificate (with its chain, e.g. Let's Encrypt's
# fullchain.pem) and of its private key, readable by root. Given both, nginx
# serves HTTPS on LISTEN_TLS (TLS 1.2 and 1.3, HSTS) and redirects HTTP to it;
# without them it serves plain HTTP.
: "${TLS_CERTIFICATE:=}"
: "${TLS_KEY:=}"
: "${LISTEN_TLS:=443}"

# nginx's server_name: your domain(s), space-separated; _ answers any name.
: "${SERVER_NAME:=_}"

# The largest request body, for nginx (client_max_body_size) and apiphant
# (--max-body-size) alike, so that both answer 413 at the same size: bytes,
# or a number with K, M or G.
: "${MAX_BODY_SIZE:=1M}"

# The database of the product's tables, for the API and the scheduler alike
# (with PostgreSQL, the schedulers of several hosts then run each task once
# per tick): the SQLite file in /opt/myproduct/var by default, or
# postgresql://USER@HOST:PORT/DB. A URL with a password goes into
# /etc/myproduct/secrets.env instead, as APIPHANT_DATABASE_URL=..., which
# takes precedence over this one.
: "${DATABASE_URL:=sqlite:////opt/myproduct/var/myproduct.sqlite3}"

# The apiphant that pip installs into /opt/myproduct/venv: empty for the
# wheel in deploy/wheels/ (the apiphant that wrote the product, replaced by
# `apiphant upgrade`), or the path of another wheel or of a checkout. Never
# the name "apiphant": on PyPI, that is an unrelated 0.2 release.
: "${APIPHANT_SOURCE:=}"
