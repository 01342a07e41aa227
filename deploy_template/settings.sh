# shellcheck shell=bash disable=SC2034  # the scripts that source this use its variables
# The settings of myproduct's deployment, in one place: deploy.sh writes them
# into the supervisor and nginx configs, and the other scripts read them.
# Each can also come from the environment, for one run:
#     LISTEN=8080 ./deploy.sh
# Edit the defaults here to keep them for every run.

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

# Where nginx listens: a port (80: every address) or ADDRESS:PORT.
: "${LISTEN:=80}"

# nginx's server_name: your domain(s), space-separated; _ answers any name.
: "${SERVER_NAME:=_}"

# The largest request body, for nginx (client_max_body_size) and apiphant
# (--max-body-size) alike, so that both answer 413 at the same size: bytes,
# or a number with K, M or G.
: "${MAX_BODY_SIZE:=1M}"

# What pip installs as apiphant into /opt/myproduct/venv: apiphant (from
# PyPI), a pinned apiphant==1.0.0, or the path of a checkout of apiphant.
: "${APIPHANT_SOURCE:=apiphant}"
