#!/usr/bin/env bash
# Start an offline SpamAssassin spamd on 127.0.0.1:PORT for sponts tests, state in DIR.
# Offline: local tests only (-L), no DNS/Razor/Pyzor/DCC, no AWL/TxRep, no user config; no Bayes
# unless SPONTS_SPAMD_BAYES is set (below).
# Test rules: body SPONTS-SPAM-TEST -> +20 (SPONTS_SPAM_TEST), SPONTS-HAM-TEST -> -5
# (SPONTS_HAM_TEST); GTUBE -> +1000. required_score 5.
#
# Usage: scripts/peers/spamd_start.sh PORT DIR      (PORT 0 = pick a free port)
#   Env SPONTS_SPAMD_RULES=debian (default): Debian's shipped rules + the test rules (realistic).
#                         =minimal: only GTUBE + the test rules (faster start; ham scores 0).
#   Env SPONTS_SPAMD_BAYES=DIR: use Bayes with its database in DIR (DIR/bayes_*), learned
#                         beforehand with sa-learn --siteconfigpath=DIR_OF_SPAMD/site; no auto-learning.
#   Waits (at most SPONTS_PEER_WAIT seconds, default 60) until spamd answers PING, then prints
#   SPAMD_PORT=N, SPAMD_PID=N, SPAMD_DIR=..., SPAMD_STARTUP_S=... one per line; exit 1 on failure.
# Stop:  scripts/peers/stop.sh DIR
# Needs Debian packages spamd (Debian 12; spamassassin on older releases) and python3.
set -euo pipefail
PORT="${1:?usage: spamd_start.sh PORT DIR}"
DIR="${2:?usage: spamd_start.sh PORT DIR}"
WAIT="${SPONTS_PEER_WAIT:-60}"
if [ "$PORT" = 0 ]; then
  PORT=$(python3 "$(dirname "$0")/free_port.py")
fi
mkdir -p "$DIR/site" "$DIR/home"
DIR=$(cd "$DIR" && pwd)
cp /etc/spamassassin/*.pre "$DIR/site/"          # plugin loaders
# Plugins that would use the network: not loaded.
sed -i -E 's/^(loadplugin\s+Mail::SpamAssassin::Plugin::(Razor2|Pyzor|DCC|URIDNSBL|AskDNS|SPF|DKIM|DMARC|TxRep|AWL|FromNameSpoof|HashBL|URILocalBL))/# \1/' "$DIR/site/"*.pre
cat > "$DIR/site/local.cf" <<'CF'
dns_available no
skip_rbl_checks 1
use_bayes 0
bayes_auto_learn 0
use_razor2 0
use_pyzor 0
use_dcc 0
use_auto_whitelist 0
use_txrep 0
required_score 5.0
body     SPONTS_SPAM_TEST  /SPONTS-SPAM-TEST/
score    SPONTS_SPAM_TEST  20.0
describe SPONTS_SPAM_TEST  sponts test spam marker
body     SPONTS_HAM_TEST   /SPONTS-HAM-TEST/
score    SPONTS_HAM_TEST   -5.0
describe SPONTS_HAM_TEST   sponts test ham marker
CF
if [ -n "${SPONTS_SPAMD_BAYES:-}" ]; then
  mkdir -p "$SPONTS_SPAMD_BAYES"
  BAYES=$(cd "$SPONTS_SPAMD_BAYES" && pwd)
  sed -i "s|^use_bayes 0|use_bayes 1\nbayes_path $BAYES/bayes\nbayes_auto_expire 0|" "$DIR/site/local.cf"
fi
RULES=()
if [ "${SPONTS_SPAMD_RULES:-debian}" = minimal ]; then
  mkdir -p "$DIR/rules"
  cat > "$DIR/rules/10_gtube.cf" <<'CF'
body     GTUBE  /XJS\*C4JDBQADN1\.NSBN3\*2IDNEN\*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL\*C\.34X/
describe GTUBE  Generic Test for Unsolicited Bulk Email
score    GTUBE  1000.0
CF
  RULES=(--configpath="$DIR/rules")
fi

# spamd refuses to stay root: as root it runs as debian-spamd, which must reach DIR.
USER_ARGS=()
if [ "$(id -u)" = 0 ]; then
  USER_ARGS=(-u debian-spamd -g debian-spamd)
  chown -R debian-spamd:debian-spamd "$DIR"
  chmod 755 "$DIR"
  if ! runuser -u debian-spamd -- test -r "$DIR/site/local.cf"; then
    echo "spamd_start.sh: user debian-spamd cannot read $DIR (a parent dir is not o+x?)" >&2; exit 1
  fi
fi

T0=$(date +%s.%N)
# No --daemonize: $! is the spamd parent, which kills its children on TERM.
nohup /usr/sbin/spamd -L --listen="127.0.0.1:$PORT" --allowed-ips=127.0.0.1 \
  --siteconfigpath="$DIR/site" "${RULES[@]}" --nouser-config "${USER_ARGS[@]}" \
  -H "$DIR/home" --max-children="${SPONTS_SPAMD_CHILDREN:-3}" --min-children=1 \
  --pidfile="$DIR/spamd.pid" --syslog="$DIR/spamd.log" </dev/null >"$DIR/stdout.log" 2>&1 &
PID=$!
echo "$PID" > "$DIR/peer.pid"
ping_spamd() {
  timeout 2 python3 - "$PORT" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING SPAMC/1.5\r\n\r\n")
sys.exit(0 if b"PONG" in s.recv(100) else 1)
PY
}
alive() { local st; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
END=$(( $(date +%s) + WAIT ))
until ping_spamd; do
  if ! alive "$PID" || [ "$(date +%s)" -ge "$END" ]; then
    echo "spamd_start.sh: spamd exited or did not answer on 127.0.0.1:$PORT within ${WAIT}s; log:" >&2
    cat "$DIR/stdout.log" "$DIR/spamd.log" >&2 2>/dev/null || true
    kill "$PID" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
done
T1=$(date +%s.%N)
echo "SPAMD_PORT=$PORT"
echo "SPAMD_PID=$PID"
echo "SPAMD_DIR=$DIR"
echo "SPAMD_STARTUP_S=$(awk "BEGIN{printf \"%.2f\", $T1-$T0}")"
