#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60) on the stable toolchain and
# exits non-zero if any target crashes. Crashing inputs are kept under
# fuzz/artifacts/<target>/ for a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"

# cargo-fuzz needs nightly flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

status=0
for target in answer request longpoll_form message_http sl_json route; do
    mkdir -p "corpus/$target"
    echo "== fuzzing $target for ${seconds}s"
    if ! cargo fuzz run "$target" "corpus/$target" seeds/"$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1; then
        echo "== $target: crash or failure, see fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
