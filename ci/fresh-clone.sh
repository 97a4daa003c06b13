#!/usr/bin/env bash
#! Runs CI the way CI does: a fresh clone of the committed HEAD, then .ci/run.
# A green run in a working tree can hide an untracked file or a cached build
# artifact; this catches both. The harness cache (~/.cache/xen-rt) is shared,
# as it is on a CI machine that ran before.
#   usage: ci/fresh-clone.sh
set -euo pipefail
src=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
dir=$(mktemp -d)
keep="$src/target/fresh-clone"
# A failed run's guest consoles (serial logs) outlive the clone (in
# target/fresh-clone of the tree this was run from); a passing run leaves nothing.
cleanup() {
    rc=$?
    if [ "$rc" -ne 0 ] && [ -d "$dir/p/target/harness" ]; then
        rm -rf "$keep" && mkdir -p "$keep"
        (cd "$dir/p/target" && find harness -name '*.log' -exec cp --parents {} "$keep/" \;) || true
        echo "fresh-clone CI run failed (rc $rc): its harness logs are in $keep" >&2
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
git clone -q "$src" "$dir/p"
cd "$dir/p"
echo "fresh clone of $(git rev-parse --short HEAD) in $dir/p"
start=$(date +%s)
CI=true bash .ci/run </dev/null
echo "fresh-clone CI run passed in $(( $(date +%s) - start )) s"
