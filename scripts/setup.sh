#!/usr/bin/env bash
# Quick start, step 1: install everything, then the main job: build the bundled example as a lab
# (network namespaces, real pod addresses, nftables in every node), send real connections
# between every pair of pods, print what the kernel did beside what the engine predicts, and the
# last flows the lab's collectors recorded (pod names, the rule that decided, bytes).
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
echo
echo "The last flows recorded (\`kanal flows --last 10\`; connections still open or in TIME_WAIT"
echo "have no bytes yet):"
sleep 1  # a record made from conntrack alone waits 0.5 s for the NFLOG events it might get
"$kanal" flows --last 10
