#!/usr/bin/env bash
# Start an offline clamd for sponts tests on 127.0.0.1:PORT (and a unix socket DIR/clamd.sock),
# with only the signatures the project ships (scripts/peers/clamav: the EICAR test file, as an
# MD5 of the whole file and as a byte pattern found anywhere, e.g. inside a MIME attachment).
# Signature downloads are not possible in CI, and not needed.
#
# Usage: scripts/peers/clamd_start.sh PORT DIR      (PORT 0 = pick a free port)
#   Waits (at most SPONTS_PEER_WAIT seconds, default 60) until clamd answers PING, then prints
#   CLAMD_PORT=N, CLAMD_PID=N, CLAMD_SOCKET=PATH, CLAMD_DIR=... one per line; exit 1 on failure.
# Stop:  scripts/peers/stop.sh DIR
# Needs the Debian package clamav-daemon and python3.
set -euo pipefail
PORT="${1:?usage: clamd_start.sh PORT DIR}"
DIR="${2:?usage: clamd_start.sh PORT DIR}"
WAIT="${SPONTS_PEER_WAIT:-60}"
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$PORT" = 0 ]; then
  PORT=$(python3 "$(dirname "$0")/free_port.py")
fi
mkdir -p "$DIR/db"
DIR=$(cd "$DIR" && pwd)
chmod 755 "$DIR" "$DIR/db"
cp "$HERE"/clamav/*.hdb "$HERE"/clamav/*.ndb "$DIR/db/"
cat > "$DIR/clamd.conf" <<CONF
Foreground yes
DatabaseDirectory $DIR/db
TCPSocket $PORT
TCPAddr 127.0.0.1
LocalSocket $DIR/clamd.sock
LocalSocketMode 666
PidFile $DIR/clamd.pid
LogFile $DIR/clamd.log
User root
StreamMaxLength 50M
MaxThreads 4
ScanMail yes
ScanArchive yes
Bytecode no
OfficialDatabaseOnly no
SelfCheck 0
CONF
nohup /usr/sbin/clamd --config-file="$DIR/clamd.conf" >"$DIR/stdout.log" 2>&1 &
PID=$!
echo "$PID" > "$DIR/peer.pid"
for _ in $(seq 1 $((WAIT * 10))); do
  if python3 - "$PORT" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"zPING\0"); sys.exit(0 if s.recv(64).startswith(b"PONG") else 1)
PY
  then
    printf 'CLAMD_PORT=%s\nCLAMD_PID=%s\nCLAMD_SOCKET=%s\nCLAMD_DIR=%s\n' "$PORT" "$PID" "$DIR/clamd.sock" "$DIR"
    exit 0
  fi
  if ! kill -0 "$PID" 2>/dev/null || grep -q ' Z ' "/proc/$PID/stat" 2>/dev/null; then
    echo "clamd died; log:" >&2; cat "$DIR/stdout.log" "$DIR/clamd.log" >&2 || true; exit 1
  fi
  sleep 0.1
done
echo "clamd did not answer within $WAIT s; log:" >&2; cat "$DIR/stdout.log" "$DIR/clamd.log" >&2 || true
kill "$PID" 2>/dev/null || true
exit 1
