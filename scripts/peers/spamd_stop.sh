#!/usr/bin/env bash
# Stop the spamd started by spamd_start.sh for sponts tests: SIGTERM to the PID saved in
# DIR/peer.pid (the parent reaps its children); SIGKILL to it and its children after 10 s.
# Usage: scripts/peers/spamd_stop.sh DIR
set -u
DIR="${1:?usage: spamd_stop.sh DIR}"
PID=$(cat "$DIR/peer.pid" 2>/dev/null) || { echo "spamd_stop.sh: no pid file in $DIR" >&2; exit 0; }
# Running and not a zombie (the daemon was reparented; its reaper may be slow).
alive() { local st; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
if alive "$PID"; then
  kill "$PID"
  for _ in $(seq 1 200); do alive "$PID" || break; sleep 0.05; done
  if alive "$PID"; then pkill -KILL -P "$PID"; kill -9 "$PID"; fi
fi
rm -f "$DIR/peer.pid"
