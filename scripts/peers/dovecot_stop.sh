#!/usr/bin/env bash
# Stop a Dovecot started by scripts/peers/dovecot_start.sh DIR: SIGTERM to the master (it stops
# its services; takes about 1 s), SIGKILL after 10 s. IMAP and POP3 sessions of connected clients
# outlive the master: SIGTERM to every process of that instance still there (their titles are
# "dovecot-DIR/imap" etc., instance_name = DIR), SIGKILL after 0.5 s.
# Usage: scripts/peers/dovecot_stop.sh DIR
set -u
DIR="${1:?usage: dovecot_stop.sh DIR}"
DIR=$(cd "$DIR" 2>/dev/null && pwd) || exit 0
TITLE="^dovecot-$(printf '%s' "$DIR" | sed 's/[][\.*^$+?(){}|]/\\&/g')/"
alive() { local st; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
PID=$(cat "$DIR/peer.pid" 2>/dev/null || cat "$DIR/run/master.pid" 2>/dev/null || true)
# Only the master started with this DIR's config (a stale pid file may name another process).
if [ -n "$PID" ] && alive "$PID" && tr '\0' ' ' < "/proc/$PID/cmdline" | grep -qF -- "-c $DIR/dovecot.conf"; then
  kill "$PID"
  for _ in $(seq 1 200); do alive "$PID" || break; sleep 0.05; done
  alive "$PID" && kill -9 "$PID"
fi
for i in $(seq 1 40); do
  LEFT=$(pgrep -f "$TITLE") || break
  if [ "$i" = 1 ]; then kill $LEFT 2>/dev/null; elif [ "$i" -ge 10 ]; then kill -9 $LEFT 2>/dev/null; fi
  sleep 0.05
done
rm -f "$DIR/peer.pid"
