#!/usr/bin/env bash
# System and npm pieces for the ComfyUI integration and browser tests (idempotent; safe to re-run).
# Chromium from apt (playwright-core drives /usr/bin/chromium; no browser download), and the pinned
# playwright-core in tests/comfy/pw. ComfyUI itself is provisioned from PyPI by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "comfy_deps.sh: $tool is missing (install Node.js >= 20)" >&2; exit 1; }
done
(cd tests/comfy/pw && npm ci --no-audit --no-fund --loglevel=error)

# Warm the ComfyUI install cache once, so the first test does not pay for it (about 30 s).
python3 -m tests.comfy.provision >/dev/null
