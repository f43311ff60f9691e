#!/usr/bin/env bash
# Stop a Dovecot started by scripts/peers/dovecot_start.sh DIR: SIGTERM to the master (it stops
# its services and, with shutdown_clients, their IMAP/POP3 sessions); after 10 s SIGKILL to the
# master and to every process it had started. Every process of that instance carries DIR in its
# title (instance_name), which is checked last.
# Usage: scripts/peers/dovecot_stop.sh DIR
set -u
DIR="${1:?usage: dovecot_stop.sh DIR}"
DIR=$(cd "$DIR" 2>/dev/null && pwd) || exit 0
PID=$(cat "$DIR/peer.pid" 2>/dev/null || cat "$DIR/run/master.pid" 2>/dev/null) || exit 0
alive() { local st; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
# Processes of this instance: the master and its children (titles "dovecot-DIR/imap-login" etc.).
ours() { { echo "$PID"; pgrep -P "$PID"; pgrep -f "^dovecot-$DIR/"; } 2>/dev/null | sort -u; }
if alive "$PID"; then
  KIDS=$(ours)
  kill "$PID"
  for _ in $(seq 1 200); do alive "$PID" || break; sleep 0.05; done
  for p in $KIDS $(ours); do alive "$p" && kill -9 "$p" 2>/dev/null; done
fi
for _ in $(seq 1 100); do
  LEFT=$(pgrep -f "^dovecot-$DIR/" || true)
  [ -z "$LEFT" ] && break
  if [ "$_" = 40 ]; then kill -9 $LEFT 2>/dev/null; fi
  sleep 0.05
done
rm -f "$DIR/peer.pid"
