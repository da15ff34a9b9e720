#!/usr/bin/env bash
# The integration suite (tests/integration) against a CVAT server, and the differential check.
#
#   CVAT_AA_IT_URL=http://cvat.example:8080 CVAT_AA_IT_USER=me CVAT_AA_IT_PASSWORD=... \
#       bash scripts/integration.sh [PYTEST ARGS...]
#       runs the suite against that server (CVAT_AA_IT_URL=testserver: cvat-aa's test server).
#
#   CVAT_AA_IT_URL=... CVAT_AA_IT_USER=... CVAT_AA_IT_PASSWORD=... \
#       bash scripts/integration.sh --differential DIR [PYTEST ARGS...]
#       runs it twice, recording every request: against that server into DIR/cvat and
#       against cvat-aa's test server into DIR/testserver; then compares the recordings
#       (tests/integration/differential.py) and prints every unexplained difference.
#       The exit status is that of the comparison, or of a suite run that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=.venv/bin/python

if [[ "${1:-}" != "--differential" ]]; then
    exec "$PYTHON" -m pytest tests/integration -p no:cacheprovider "$@"
fi

DIR="${2:?--differential needs a folder for the recordings}"
shift 2
: "${CVAT_AA_IT_URL:?set CVAT_AA_IT_URL (and CVAT_AA_IT_USER, CVAT_AA_IT_PASSWORD) to the server to compare}"
rm -rf "$DIR/cvat" "$DIR/testserver"
status=0
CVAT_AA_IT_RECORD="$DIR/cvat" "$PYTHON" -m pytest tests/integration -p no:cacheprovider "$@" \
    || status=$?
CVAT_AA_IT_URL=testserver CVAT_AA_IT_RECORD="$DIR/testserver" \
    "$PYTHON" -m pytest tests/integration -p no:cacheprovider "$@" || status=$?
"$PYTHON" tests/integration/differential.py "$DIR/cvat" "$DIR/testserver" || status=$?
exit "$status"
