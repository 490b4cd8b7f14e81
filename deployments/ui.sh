#!/usr/bin/env bash
# Start a local Prefect server (SQLite, bound to 127.0.0.1) and serve crawl2gpt's deployments,
# so runs started or scheduled in the UI execute here. Ctrl-C stops both.
set -euo pipefail
VENV=${VENV:-.venv}
HOST=${PREFECT_HOST:-127.0.0.1}   # loopback only, unless you choose otherwise
PORT=${PREFECT_PORT:-4200}
export PREFECT_API_URL="http://$HOST:$PORT/api"
export PREFECT_UI_API_URL="$PREFECT_API_URL"

"$VENV/bin/prefect" server start --host "$HOST" --port "$PORT" > "${PREFECT_LOG:-/tmp/crawl2gpt-prefect-server.log}" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fs "$PREFECT_API_URL/health" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fs "$PREFECT_API_URL/health" >/dev/null || { echo "Prefect server did not start; see ${PREFECT_LOG:-/tmp/crawl2gpt-prefect-server.log}"; exit 1; }
echo "Prefect UI: http://$HOST:$PORT  (API $PREFECT_API_URL)"
# SERVE_LIMIT: flow runs at once (crawl2gpt serve --limit; default one per core)
"$VENV/bin/crawl2gpt" serve --workdir "${RUN_DIR:-runs/scheduled}" ${SERVE_LIMIT:+--limit "$SERVE_LIMIT"}
