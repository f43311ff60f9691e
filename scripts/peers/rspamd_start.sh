#!/usr/bin/env bash
# Start an offline rspamd (one normal worker, HTTP on 127.0.0.1:PORT) for sponts tests, state in DIR.
# Minimal self-written config: no Debian ruleset, no C filters, no DNS/HTTP/Redis, nothing fetched.
# Scores: GTUBE (XJS*C4...) -> 15, "reject"; its YJS... variant -> 6, "add header"; ZJS... ->
# "rewrite subject"; a body containing SPONTS-SPAM-TEST -> +20 (SPONTS_SPAM_TEST, "reject");
# SPONTS-HAM-TEST -> -5 (SPONTS_HAM_TEST); anything else -> 0, "no action".
# Actions: reject >= 15, add header >= 6, greylist >= 4.
#
# Usage: scripts/peers/rspamd_start.sh PORT DIR      (PORT 0 = pick a free port)
#   Waits (at most SPONTS_PEER_WAIT seconds, default 60) until GET /ping answers, then prints
#   RSPAMD_PORT=N, RSPAMD_PID=N, RSPAMD_DIR=..., RSPAMD_STARTUP_S=... one per line; exit 1 on failure.
#   Env SPONTS_RSPAMD_HSCACHE: hyperscan cache dir (default DIR/hs; a dir shared between runs
#   saves ~0.5 s per start).
# Test:  curl -s --data-binary @msg.eml http://127.0.0.1:PORT/checkv2
# Stop:  scripts/peers/stop.sh DIR
# Needs Debian packages rspamd and python3.
set -euo pipefail
PORT="${1:?usage: rspamd_start.sh PORT DIR}"
DIR="${2:?usage: rspamd_start.sh PORT DIR}"
WAIT="${SPONTS_PEER_WAIT:-60}"
if [ "$PORT" = 0 ]; then
  PORT=$(python3 "$(dirname "$0")/free_port.py")
fi
mkdir -p "$DIR/db" "$DIR/run"
DIR=$(cd "$DIR" && pwd)
HSCACHE="${SPONTS_RSPAMD_HSCACHE:-$DIR/hs}"
mkdir -p "$HSCACHE"
# Only the public-suffix list's well-known TLDs: compiling Debian's full list into a hyperscan
# database takes 13-35 s on 2 cores at the first start (no cache yet); this short one takes <1 s.
printf '%s\n' com org net edu gov int mil arpa info biz io de uk co.uk fr nl eu test example \
  invalid localhost > "$DIR/tld.dat"

cat > "$DIR/sponts_rules.lua" <<'LUA'
local function has(task, s)
  local c = task:get_content()
  return c ~= nil and tostring(c):find(s, 1, true) ~= nil
end
rspamd_config:register_symbol({ name = 'SPONTS_SPAM_TEST', score = 20.0, group = 'sponts',
  description = 'sponts test spam marker',
  callback = function(task) return has(task, 'SPONTS-SPAM-TEST') end })
rspamd_config:register_symbol({ name = 'SPONTS_HAM_TEST', score = -5.0, group = 'sponts',
  description = 'sponts test ham marker',
  callback = function(task) return has(task, 'SPONTS-HAM-TEST') end })
LUA

cat > "$DIR/rspamd.conf" <<CONF
options {
  pidfile = "$DIR/run/rspamd.pid";
  filters = "";
  cache_file = "$DIR/db/symbols.cache";
  control_socket = "$DIR/run/rspamd.sock mode=0600";
  history_file = "$DIR/db/rspamd.history";
  dynamic_conf = "$DIR/db/rspamd_dynamic";
  tempdir = "$DIR/run";
  hs_cache_dir = "$HSCACHE";
  enable_test_patterns = true;  # YJS.. GTUBE -> add header, ZJS.. -> rewrite subject
  local_addrs = "127.0.0.0/8, ::1";
  dns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 0; sockets = 1; }
  url_tld = "$DIR/tld.dat";
}
logging { type = "file"; filename = "$DIR/rspamd.log"; level = "notice"; }
actions { reject = 15; add_header = 6; greylist = 4; }
worker "normal" { bind_socket = "127.0.0.1:$PORT"; count = 1; task_timeout = 8s; }
lua = "$DIR/sponts_rules.lua";
CONF

# rspamd refuses to run as root: as root it runs as _rspamd, which must reach DIR and HSCACHE.
USER_ARGS=()
if [ "$(id -u)" = 0 ]; then
  USER_ARGS=(-u _rspamd -g _rspamd)
  chown -R _rspamd:_rspamd "$DIR" "$HSCACHE"
  chmod 755 "$DIR"
  if ! runuser -u _rspamd -- test -w "$DIR/run"; then
    echo "rspamd_start.sh: user _rspamd cannot write $DIR/run (a parent dir is not o+x?)" >&2; exit 1
  fi
fi

T0=$(date +%s.%N)
nohup /usr/bin/rspamd -f "${USER_ARGS[@]}" -c "$DIR/rspamd.conf" </dev/null >"$DIR/stdout.log" 2>&1 &
PID=$!
echo "$PID" > "$DIR/peer.pid"
ping_rspamd() {
  timeout 2 python3 - "$PORT" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b"pong" in s.recv(1000) else 1)
PY
}
alive() { local st; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
END=$(( $(date +%s) + WAIT ))
until ping_rspamd; do
  if ! alive "$PID" || [ "$(date +%s)" -ge "$END" ]; then
    echo "rspamd_start.sh: rspamd exited or did not answer on 127.0.0.1:$PORT within ${WAIT}s; log:" >&2
    cat "$DIR/stdout.log" "$DIR/rspamd.log" >&2 2>/dev/null || true
    kill "$PID" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
done
T1=$(date +%s.%N)
echo "RSPAMD_PORT=$PORT"
echo "RSPAMD_PID=$PID"
echo "RSPAMD_DIR=$DIR"
echo "RSPAMD_STARTUP_S=$(awk "BEGIN{printf \"%.2f\", $T1-$T0}")"
