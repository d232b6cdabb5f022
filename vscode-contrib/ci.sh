#!/usr/bin/env bash
# The VS Code extension's CI, from a fresh Debian machine (as root for apt): npm ci, compile
# (tsc --strict), unit tests (mocha), bundle (esbuild), .vsix (vsce); then the end-to-end test in
# code-server driven by headless Chromium against kflow-testcluster (tests/vscode/e2e.js).
#
#   vscode-contrib/ci.sh            everything
#   vscode-contrib/ci.sh --no-e2e   build and unit tests only
#   vscode-contrib/ci.sh --bench    everything, then the measurements (bench/bench_vscode.sh)
#
# Needs for the e2e: KFLOW_TESTCLUSTER_BIN (the built kflow-testcluster), KFLOW_CRD_DIR
# (optional), <repo>/.venv/bin/python with kflow installed. Tools (code-server) are installed
# once under KFLOW_VSCODE_TOOLS (default: $TMPDIR/kflow-vscode-tools).
set -euo pipefail
cd "$(dirname "$0")"
ext=$(pwd)
repo=$(cd .. && pwd)
shared=${KFLOW_SHARED_DIR:-$repo/../shared}
tools=${KFLOW_VSCODE_TOOLS:-${TMPDIR:-/tmp}/kflow-vscode-tools}
e2e=1 bench=0
for a in "$@"; do
  case "$a" in
    --no-e2e) e2e=0 ;;
    --bench) bench=1 ;;
    *) echo "usage: $0 [--no-e2e] [--bench]" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
step() { echo; echo "== vscode: $* ($(( $(date +%s) - start ))s)"; }

step "node"
node --version | grep -q '^v2[0-9]\.' || { echo "Node 20+ is needed (found $(node --version 2>/dev/null || echo none))" >&2; exit 1; }

step "npm ci"
npm ci --no-audit --no-fund

step "compile (tsc --strict)"
npm run --silent compile

step "unit tests (mocha)"
npm test --silent

step "bundle (esbuild) and .vsix (vsce)"
npm run --silent bundle
npm run --silent package
ls -l "$ext/kflow-0.1.0.vsix"

[ "$e2e" = 1 ] || { step "done (no e2e)"; exit 0; }

step "system packages (chromium, build tools for code-server)"
need=()
for p in chromium build-essential python3 pkg-config libkrb5-dev ripgrep curl; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing Debian packages (run as root to install): ${need[*]}" >&2; exit 1
  fi
fi

step "code-server"
cs="$tools/code-server/bin/code-server"
if [ ! -x "$cs" ] || ! "$cs" --version >/dev/null 2>&1; then
  mkdir -p "$tools/home"
  # node-gyp builds code-server's native modules against Debian's Node headers, not a download
  [ -f /usr/include/node/node_api.h ] && export npm_config_nodedir=${npm_config_nodedir:-/usr}
  # its --version writes a config file: keep it (and npm's cache use) out of the real HOME
  HOME="$tools/home" XDG_CONFIG_HOME="$tools/home/.config" XDG_DATA_HOME="$tools/home/.local/share" \
    npm_config_cache="${npm_config_cache:-$HOME/.npm}" npm_config_userconfig="${npm_config_userconfig:-$HOME/.npmrc}" \
    bash "$shared/tools/vscode/install-code-server.sh" "$tools/code-server"
fi
HOME="$tools/home" XDG_CONFIG_HOME="$tools/home/.config" "$cs" --version | head -1

: "${KFLOW_TESTCLUSTER_BIN:?set KFLOW_TESTCLUSTER_BIN to the built kflow-testcluster}"
[ -x "$repo/.venv/bin/python" ] || { echo "$repo/.venv/bin/python is missing (the venv with kflow)" >&2; exit 1; }

step "end-to-end in code-server (tests/vscode/e2e.js)"
CODE_SERVER="$cs" KFLOW_VSIX="$ext/kflow-0.1.0.vsix" timeout 420 node "$repo/tests/vscode/e2e.js"

if [ "$bench" = 1 ]; then
  step "bench (bench/bench_vscode.sh)"
  CODE_SERVER="$cs" KFLOW_VSIX="$ext/kflow-0.1.0.vsix" "$repo/bench/bench_vscode.sh"
fi
step "done"
