# Sourced by the bench scripts: `start_echo` runs the release echo-svc (one worker) on
# core 0 on a free loopback port, sets `port` and `echo_pid`, and returns once it
# accepts. The caller's EXIT trap stops it.
start_echo() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  taskset -c 0 "$target/release/echo-svc" --bind 127.0.0.1 --port "$port" --workers 1 \
    --drain-delay 0s --log-level warn &
  echo_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "echo-svc did not accept on port $port" >&2
  return 1
}
