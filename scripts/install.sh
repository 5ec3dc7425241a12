#!/usr/bin/env bash
# Installs everything Kanal needs on a Debian machine (as root): the kernel-side tools from Debian
# and a virtual environment with kanal and its development tools. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(nftables libnftables1 iproute2 iperf3 conntrack python3-venv procps)
missing=()
for p in "${debs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=.venv/.kanal-installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "install: Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
