#!/usr/bin/env bash
# Stop the clamd started by scripts/peers/clamd_start.sh DIR (TERM, then KILL after 10 s).
set -u
DIR="${1:?usage: clamd_stop.sh DIR}"
PID=$(cat "$DIR/peer.pid" 2>/dev/null) || exit 0
kill "$PID" 2>/dev/null || exit 0
for _ in $(seq 1 100); do
  { kill -0 "$PID" 2>/dev/null && ! grep -q ' Z ' "/proc/$PID/stat" 2>/dev/null; } || break
  sleep 0.1
done
kill -9 "$PID" 2>/dev/null || true
rm -f "$DIR/peer.pid"
