#!/usr/bin/env bash
# A local Redis Cluster of three masters (Debian's redis-server), for the cluster test suites,
# `npm run cluster` and trying Stampede on a cluster by hand. Nothing is saved to disk.
#
#   scripts/redis-cluster.sh start [PORT PORT PORT]   start it (if not already up) and print its nodes
#   scripts/redis-cluster.sh stop  [PORT PORT PORT]   shut it down and remove its directory
#
# Ports default to 7101 7102 7103 (each also uses its port + 10000 for the cluster bus); the
# directory is $STAMPEDE_REDIS_CLUSTER_DIR or /tmp/stampede-redis-cluster-<first port>.
# `start` prints one line, the nodes as REDIS_CLUSTER_NODES wants them: 127.0.0.1:7101,...
set -euo pipefail

cmd="${1:-}"
shift || true
ports=("$@")
[ ${#ports[@]} -eq 0 ] && ports=(7101 7102 7103)
dir="${STAMPEDE_REDIS_CLUSTER_DIR:-/tmp/stampede-redis-cluster-${ports[0]}}"

say() { echo "redis-cluster: $*" >&2; }
answers() { redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1; }
cluster_ok() { redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
nodes() {
  local IFS=,
  local list=()
  for p in "${ports[@]}"; do list+=("127.0.0.1:$p"); done
  echo "${list[*]}"
}

stop() {
  for p in "${ports[@]}"; do
    answers "$p" && redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 50); do answers "$p" || break; sleep 0.1; done
  done
  rm -rf "$dir"
}

start() {
  local all_ok=1
  for p in "${ports[@]}"; do cluster_ok "$p" || all_ok=0; done
  if [ "$all_ok" = 1 ]; then
    # Up already (an earlier start): the same three masters, or someone else's cluster on these ports.
    local masters
    masters=$(redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster nodes | grep -c master || true)
    if [ "$masters" = "${#ports[@]}" ]; then
      nodes
      return 0
    fi
  fi
  # Half up (a crashed run, a node left over): start clean.
  stop
  for p in "${ports[@]}"; do
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --save "" --appendonly no --dir "$dir/$p" --logfile "$dir/$p/redis.log" --pidfile "$dir/$p/redis.pid"
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 50); do answers "$p" && break; sleep 0.1; done
    answers "$p" || { say "redis-server on port $p did not start; see $dir/$p/redis.log"; exit 1; }
  done
  local addrs=()
  for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 || {
    say "redis-cli --cluster create failed:"
    cat "$dir/create.log" >&2
    exit 1
  }
  for _ in $(seq 1 100); do
    local ok=1
    for p in "${ports[@]}"; do cluster_ok "$p" || ok=0; done
    [ "$ok" = 1 ] && { nodes; return 0; }
    sleep 0.1
  done
  say "the cluster did not reach cluster_state:ok in 10 s"
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop [PORT PORT PORT]" >&2
    exit 64
    ;;
esac
