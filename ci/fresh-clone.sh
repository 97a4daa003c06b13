#!/usr/bin/env bash
#! Runs CI the way CI does: a fresh clone of the committed HEAD, then .ci/run.
# A green run in a working tree can hide an untracked file or a cached build
# artifact; this catches both. The harness cache (~/.cache/xen-rt) is shared,
# as it is on a CI machine that ran before.
#   usage: ci/fresh-clone.sh
set -euo pipefail
src=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git clone -q "$src" "$dir/p"
cd "$dir/p"
echo "fresh clone of $(git rev-parse --short HEAD) in $dir/p"
start=$(date +%s)
CI=true bash .ci/run </dev/null
echo "fresh-clone CI run passed in $(( $(date +%s) - start )) s"
