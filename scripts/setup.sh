#!/usr/bin/env bash
# Quick start, step 1: install everything, then the main job: build the bundled example as a lab
# (network namespaces, real pod addresses, nftables in every node), send real connections
# between every pair of pods, and print what the kernel did beside what the engine predicts.
# The lab is always removed again, also when a step fails. Exit status 1: kernel and engine
# disagree somewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
kanal=.venv/bin/kanal
# Its own state directory and name prefix, so a lab you run yourself is never touched; what an
# interrupted earlier run left behind is removed first.
export KANAL_LAB_DIR="${KANAL_LAB_DIR:-/var/lib/kanal/setup}"
prefix=kl-setup-
"$kanal" lab down --prefix "$prefix" >/dev/null 2>&1
trap '"$kanal" lab down --prefix "$prefix" >/dev/null' EXIT
"$kanal" lab up -f examples/three-tier --prefix "$prefix"
echo
"$kanal" lab probe
