#!/usr/bin/env bash
# Quick start, step 2: the whole test suite: ruff, mypy (strict) and pytest (kernel tests included
# when run as root). Fails if any of them fails.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
status=0
echo "== ruff"; .venv/bin/ruff check src tests bench || status=1
echo "== mypy"; .venv/bin/mypy || status=1
echo "== pytest"; .venv/bin/pytest "$@" || status=1
exit $status
