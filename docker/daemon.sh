#!/usr/bin/env bash
# A project-local Docker daemon for `make docker` / `make docker-stop`.
#   docker/daemon.sh start   start dockerd unless one already answers on DOCKER_HOST
#   docker/daemon.sh stop    stop the dockerd this script started (its pid file), nothing else
#   docker/daemon.sh host    print the DOCKER_HOST to use (the caller's daemon when it answers)
# The daemon listens on a Unix socket under .docker/ only (no TCP), adds no iptables rules and no
# NAT: containers reach the host's Docker bridge address and each other, not the network. Published
# ports (SAM publishes each Lambda container's on 127.0.0.1) go through docker-proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/.docker"
SOCK="$ROOT/docker.sock"
PIDFILE="$ROOT/dockerd.pid"
PROJECT_HOST="unix://$SOCK"
# overlay2 where the kernel and the data folder's file system allow it (measured: README, "Develop
# with SAM"); fuse-overlayfs, then vfs (a full copy of every layer per container) as fallbacks.
DRIVERS="${DOCKER_STORAGE_DRIVER:-overlay2 fuse-overlayfs vfs}"

answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The daemon to use: the caller's (DOCKER_HOST or the default socket) when it answers, else ours.
use_daemon() {
  if answers; then
    export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
    return 0
  fi
  export DOCKER_HOST="$PROJECT_HOST"
  answers
}

need() {
  echo "make docker: $1" >&2
  exit 1
}

start_one() {  # $1 = storage driver; returns 0 once the daemon answers
  local driver="$1"
  mkdir -p "$ROOT/data" "$ROOT/exec"
  echo "starting dockerd (storage driver $driver, data in $ROOT/data)"
  # setsid: its own session, so a Ctrl-C in the calling terminal does not stop it.
  export DOCKER_HOST="$PROJECT_HOST"
  setsid dockerd --storage-driver="$driver" --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
    --host "$DOCKER_HOST" --pidfile "$PIDFILE" --iptables=false --ip-masq=false --ip6tables=false \
    --log-level warn >"$ROOT/dockerd-$driver.log" 2>&1 </dev/null &
  local pid=$!
  for _ in $(seq 60); do
    if answers; then
      # Up only counts with the driver asked for: dockerd may have come up on another one.
      if docker info --format '{{.Driver}}' | grep -qx "$driver"; then return 0; fi
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  return 1
}

start() {
  if use_daemon; then
    echo "docker answers on $DOCKER_HOST ($(docker info --format '{{.Driver}}'))"
    return 0
  fi
  [ "$(id -u)" = 0 ] || need "dockerd must run as root here (no rootless setup); run it as root or start your own daemon and set DOCKER_HOST"
  command -v dockerd >/dev/null || need "no dockerd: apt-get install docker.io (Debian's Docker engine)"
  command -v docker >/dev/null || need "no docker CLI: apt-get install docker.io"
  for driver in $DRIVERS; do
    if start_one "$driver"; then
      echo "docker ready on $DOCKER_HOST (storage driver $driver)"
      return 0
    fi
    echo "storage driver $driver does not work here (log: $ROOT/dockerd-$driver.log)" >&2
    stop_quietly
  done
  need "dockerd did not start with any of: $DRIVERS (logs in $ROOT)"
}

stop_quietly() {
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$PIDFILE"
}

unmount_leftovers() {  # dockerd leaves its network namespace mounted under its exec root
  # grep finds nothing once all is clean: not an error (pipefail would make it one).
  { grep -o " $ROOT/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mount; do umount "$mount" || true; done
}

stop() {
  if [ ! -f "$PIDFILE" ]; then
    unmount_leftovers
    echo "no project dockerd to stop ($PIDFILE absent)"
    return 0
  fi
  # Containers first, so no Lambda container outlives the daemon.
  export DOCKER_HOST="$PROJECT_HOST"
  if answers; then
    ids="$(docker ps -aq)"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
  fi
  stop_quietly
  unmount_leftovers
  echo "dockerd stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  host) use_daemon || true; echo "$DOCKER_HOST" ;;
  *) echo "usage: $0 start|stop|host" >&2; exit 2 ;;
esac
