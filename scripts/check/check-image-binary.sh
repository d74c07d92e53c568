#!/usr/bin/env bash
# Build echo-svc and loadgen the way the Dockerfile does (static musl, release
# profile) and run them the way the images run them, since no container engine
# is available here:
#
#   * statically linked: no ELF interpreter, no shared libraries needed;
#   * in a root holding nothing but the two binaries (like distroless/static,
#     minus its CA certs and /etc/passwd): no shell, no libc, no /tmp, no /proc;
#   * as UID/GID 65532 (the image's USER) with a read-only root (a read-only
#     bind mount in a private mount namespace; if the kernel refuses that, the
#     root is a root-owned 0555 directory, which 65532 cannot write either);
#   * with an empty environment plus the settings the Deployment passes.
#
# Then echo-svc must serve /healthz and / on loopback with its identity headers,
# loadgen (from the same root) must run a small bounded load against it, and
# echo-svc must exit 0 on SIGTERM.
#
#   scripts/check/check-image-binary.sh        # release, as the Dockerfile
#   IMAGE_CHECK_PROFILE=dev scripts/check/check-image-binary.sh   # quicker
#
# Needs root (chroot), the x86_64-unknown-linux-musl Rust target, curl.
# Exit status: 0 all checks passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=x86_64-unknown-linux-musl
profile=${IMAGE_CHECK_PROFILE:-release}
uid=65532
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

fail() { echo "  FAIL $*" >&2; exit 1; }
ok() { echo "  ok   $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root for chroot and setting the UID"
for tool in curl chroot readelf; do command -v "$tool" >/dev/null || fail "missing $tool"; done
rustup target list --installed 2>/dev/null | grep -qx "$target" \
  || fail "Rust target $target missing: rustup target add $target"

echo "== cargo build --profile $profile --target $target (as the Dockerfile's build stage)"
cargo build --locked --profile "$profile" --target "$target" -p echo-svc -p loadgen --bins
dir=$CARGO_TARGET_DIR/$target/$([ "$profile" = dev ] && echo debug || echo "$profile")

root=$(mktemp -d)
echo_pid=
cleanup() {
  if [ -n "$echo_pid" ] && kill -0 "$echo_pid" 2>/dev/null; then kill -KILL "$echo_pid" 2>/dev/null || true; fi
  rm -rf "$root"
}
trap cleanup EXIT

echo "== static linking"
# Prints why a binary is not self-contained; silent for a static one.
not_static() {
  if readelf -lW "$1" | grep -q 'INTERP'; then echo "has an ELF interpreter"; fi
  readelf -dW "$1" | { grep '(NEEDED)' || true; } | tr -s ' ' | sed 's/^/needs /'
}
# The test must be able to fail: curl here is dynamically linked.
[ -n "$(not_static "$(command -v curl)")" ] || fail "self-test: the static check accepts $(command -v curl)"
for bin in echo-svc loadgen; do
  f=$dir/$bin
  [ -x "$f" ] || fail "$f was not built"
  why=$(not_static "$f")
  [ -z "$why" ] || fail "$bin is not static: $why"
  ok "$bin: static, $(du -h "$f" | cut -f1)"
done

# The image's filesystem: the binaries, root-owned, read and execute only.
mkdir -p "$root/usr/local/bin"
install -o 0 -g 0 -m 0555 "$dir/echo-svc" "$dir/loadgen" "$root/usr/local/bin/"
find "$root" -type d -exec chmod 0555 {} +

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# Runs a command inside the image root as the image's user.
ro_mode="read-only bind mount"
if ! unshare --mount --propagation private true 2>/dev/null; then
  ro_mode="root-owned 0555 directory (no mount namespaces here)"
fi
in_image() {
  if [ "$ro_mode" = "read-only bind mount" ]; then
    # shellcheck disable=SC2016 # $0 and $@ expand in the inner shell
    unshare --mount --propagation private sh -c \
      'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec chroot --userspec=65532:65532 "$0" "$@"' \
      "$root" "$@"
  else
    chroot --userspec="$uid:$uid" "$root" "$@"
  fi
}
echo "== run as the image would: UID $uid, root = binaries only, $ro_mode"

# The Deployment's literal settings (deploy/base/workload/deployment.yaml),
# bound to loopback for this check.
env -i PORT="$port" BIND_ADDRESS=127.0.0.1 REGION=us APP_VERSION=v1 POD_NAME=image-check \
  DRAIN_DELAY=1s SHUTDOWN_TIMEOUT=10s LOG_FORMAT=json WORKERS=1 \
  bash -c "$(declare -f in_image); root='$root' ro_mode='$ro_mode'; in_image /usr/local/bin/echo-svc" \
  > "$root.log" 2>&1 &
launcher=$!

deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
  kill -0 "$launcher" 2>/dev/null || { cat "$root.log" >&2; rm -f "$root.log"; fail "echo-svc exited before serving"; }
  [ $SECONDS -lt $deadline ] || { cat "$root.log" >&2; rm -f "$root.log"; fail "echo-svc did not serve /healthz within 60s"; }
  sleep 0.2
done
# The listening process, whatever launched it.
echo_pid=$(python3 - "$port" <<'PY'
import os, sys
port = int(sys.argv[1])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        for line in open(table).read().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
                inodes.add(f[9])
    except FileNotFoundError:
        pass
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                print(pid); sys.exit(0)
    except OSError:
        continue
PY
)
[ -n "$echo_pid" ] || fail "cannot find the process listening on port $port"
run_uid=$(awk '/^Uid:/ {print $2}' "/proc/$echo_pid/status")
[ "$run_uid" = "$uid" ] || fail "echo-svc runs as UID $run_uid, not $uid"
ok "echo-svc serves /healthz, pid $echo_pid, UID $run_uid, root $(readlink "/proc/$echo_pid/root")"

headers=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$port/")
grep -qi '^x-echo-region: us' <<<"$headers" || fail "GET / lacks x-echo-region: us; headers: $headers"
grep -qi '^x-echo-version: v1' <<<"$headers" || fail "GET / lacks x-echo-version: v1"
ok "GET / answers with identity headers ($(curl -fsS "http://127.0.0.1:$port/"))"

# loadgen as its image runs it: bounded (50 rps x 2s), loopback only.
if env -i bash -c "$(declare -f in_image); root='$root' ro_mode='$ro_mode'; in_image /usr/local/bin/loadgen \
     --target us=http://127.0.0.1:$port/ --rps 50 --duration 2s --no-progress" > "$root.lg" 2>&1; then
  ok "loadgen ran 50 rps x 2s against echo-svc from the image root: exit 0"
else
  code=$?
  cat "$root.lg" >&2; rm -f "$root.lg" "$root.log"
  fail "loadgen exited $code in the image root"
fi
rm -f "$root.lg"

kill -TERM "$echo_pid"
deadline=$((SECONDS + 30))
while kill -0 "$launcher" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "echo-svc did not exit within 30s of SIGTERM"
  sleep 0.2
done
if wait "$launcher"; then code=0; else code=$?; fi
echo_pid=
grep -qiE 'permission denied|read-only file system' "$root.log" && { cat "$root.log" >&2; rm -f "$root.log"; fail "echo-svc tried to write"; }
rm -f "$root.log"
[ "$code" -eq 0 ] || fail "echo-svc exited $code after SIGTERM"
ok "echo-svc exited 0 after SIGTERM"
echo "check-image-binary: all checks passed"
