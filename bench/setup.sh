#!/usr/bin/env bash
# Installs what bench/run.py needs: wrk (Debian) and bench/.venv for the uvicorn and granian peers,
# and crud_peer.py's FastAPI peer (fastapi, SQLAlchemy 2, psycopg).
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
VENV="$BENCH/.venv"
PYTHON="${PYTHON:-python3}"

if ! command -v wrk >/dev/null; then
    apt-get update
    apt-get install -y wrk
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

# Kept apart from the repo's .venv so the package under test never sees uvicorn, granian or FastAPI.
if ! "$VENV/bin/python" -c 'import uvicorn, uvloop, httptools, gevent, orjson, granian' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet 'uvicorn[standard]' gevent orjson granian
fi
if ! "$VENV/bin/python" -c 'import fastapi, sqlalchemy, psycopg' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet fastapi 'sqlalchemy>=2' 'psycopg[binary]'
fi

echo "wrk: $(command -v wrk)"
"$VENV/bin/python" -c 'import uvicorn, gevent, orjson, granian; print("bench/.venv: uvicorn", uvicorn.__version__, "granian", granian.__version__, "gevent", gevent.__version__, "orjson", orjson.__version__)'
"$VENV/bin/python" -c 'import fastapi, sqlalchemy, psycopg; print("bench/.venv: fastapi", fastapi.__version__, "sqlalchemy", sqlalchemy.__version__, "psycopg", psycopg.__version__)'
