#!/usr/bin/env bash
# Quick start, step 1: install everything, then run the main job on the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/kanal matrix -f examples/three-tier
