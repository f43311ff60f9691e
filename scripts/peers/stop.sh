#!/usr/bin/env bash
# Stop a peer started by one of the scripts/peers/*_start.sh scripts (spamd, rspamd, clamd):
# SIGTERM to the PID saved in DIR/peer.pid (the main process stops its workers); SIGKILL to it
# and its children after 10 s.
# Usage: scripts/peers/stop.sh DIR
set -u
DIR="${1:?usage: stop.sh DIR}"
PID=$(cat "$DIR/peer.pid" 2>/dev/null) || exit 0
# Running and not a zombie (the daemon was reparented; its reaper may be slow).
alive() { local st; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
if alive "$PID"; then
  kill "$PID"
  for _ in $(seq 1 200); do alive "$PID" || break; sleep 0.05; done
  if alive "$PID"; then pkill -KILL -P "$PID"; kill -9 "$PID"; fi
fi
rm -f "$DIR/peer.pid"
