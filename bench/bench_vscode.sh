#!/usr/bin/env bash
# The VS Code extension's figures, measured in the e2e harness (code-server + headless Chromium +
# kflow-testcluster): panel open → first rows with 5,000 jobs in the namespace (made through the
# cluster's REST API), wizard open time, Run → first log line on screen. Prints medians and writes
# target/vscode-artifacts/bench/bench-vscode.json. Build first: vscode-contrib/ci.sh --no-e2e.
# Needs KFLOW_TESTCLUSTER_BIN, <repo>/.venv with kflow, code-server (CODE_SERVER or ci.sh's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${KFLOW_VSCODE_TOOLS:-${TMPDIR:-/tmp}/kflow-vscode-tools}
export CODE_SERVER=${CODE_SERVER:-$tools/code-server/bin/code-server}
export KFLOW_VSIX=${KFLOW_VSIX:-$repo/vscode-contrib/kflow-0.1.0.vsix}
exec timeout 600 node "$repo/tests/vscode/e2e.js" --bench
