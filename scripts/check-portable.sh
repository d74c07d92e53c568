#!/bin/sh
# Type-checks the code paths macOS builds, on Linux: a copy of the tracked tree
# with every `target_os = "linux"` of the workspace's own sources made false,
# checked with warnings as errors (the one allowed: that cfg value is unknown).
# No Apple standard library can be installed here; loadgen/tests/portable.rs
# checks the other half (no libc item Apple lacks outside a Linux cfg), and CI's
# macOS job builds for real.
#
#   scripts/check-portable.sh [cargo args, e.g. test -p loadgen]   # default: check
#
# Exit status: cargo's.
set -eu
cd "$(dirname "$0")/.."
copy=${PORTABLE_COPY:-target/portable-src}
rm -rf "$copy"
mkdir -p "$copy"
git ls-files | tar cf - -T - | tar xf - -C "$copy"
# Uncommitted edits count too: copy what the working tree has.
for f in $(git diff --name-only); do
  [ -f "$f" ] && cp "$f" "$copy/$f"
done
find "$copy/loadgen" "$copy/echo-svc" "$copy/benches" -name '*.rs' -exec \
  sed -i.orig 's/target_os = "linux"/target_os = "not-linux-here"/g' {} +
find "$copy" -name '*.rs.orig' -exec rm {} +
cd "$copy"
if [ $# -eq 0 ]; then set -- check --workspace --all-targets --locked; fi
CARGO_TARGET_DIR=${PORTABLE_TARGET:-../portable-target} RUSTFLAGS="-D warnings -A unexpected_cfgs" cargo "$@"
