#!/usr/bin/env bash
# Self-test of the sponts test peers: starts dns_server.py, spamd (both rule sets) and rspamd on
# free loopback ports, checks GTUBE / SPONTS-SPAM-TEST / ham verdicts and A/TXT/NXDOMAIN answers,
# prints startup times, stops everything. Exit 0 = all good.
# Usage: scripts/peers/selftest.sh          (needs rspamd, spamd, python3; run as root or the user
#                                            the daemons may run as)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/sponts-peers.XXXXXX); chmod 755 "$T"
DNS_PID=""
cleanup() {
  [ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null
  for d in "$T"/spamd-* "$T"/rspamd; do
    [ -d "$d" ] || continue
    "$HERE/stop.sh" "$d"
  done
  rm -rf "$T"
}
trap cleanup EXIT
fail=0
ok() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
cmp() { awk "BEGIN{exit !($1)}"; }   # cmp "1000.0 >= 900"

mk() { printf 'From: a@example.org\r\nTo: b@example.net\r\nSubject: t\r\nMessage-ID: <%s@example.org>\r\nDate: Sat, 28 Nov 2026 03:50:00 +0000\r\n\r\n%s\r\n' "$1" "$2"; }
mk gtube 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X' > "$T/gtube.eml"
mk marker 'Hello SPONTS-SPAM-TEST bye' > "$T/marker.eml"
mk ham $'Hi Bob,\r\nlunch tomorrow at noon?\r\nAlice' > "$T/ham.eml"

# spamd CHECK -> prints the score
spamd_score() { python3 - "$1" "$2" <<'PY'
import socket, sys
body = open(sys.argv[2], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(body) + body)
r = b""
while (d := s.recv(4096)):
    r += d
print(r.split(b"Spam: ")[1].split(b";")[1].split(b"/")[0].strip().decode())
PY
}
# rspamd /checkv2 -> prints "score action"
rspamd_verdict() { python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/checkv2" % sys.argv[1], data=open(sys.argv[2], "rb").read(),
                             headers={"IP": "127.0.0.1", "From": "a@example.org", "Rcpt": "b@example.net"})
j = json.load(urllib.request.urlopen(req, timeout=30))
print(j["score"], j["action"])
PY
}

echo '{"2.0.0.127.zen.test.":[{"type":"A","value":"127.0.0.2"}],"example.org.":[{"type":"TXT","value":"v=spf1 -all"}]}' > "$T/zone.json"
exec 3< <(python3 "$HERE/dns_server.py" --zone "$T/zone.json" --port 0)
DNS_PID=$!
read -r -t 10 line <&3; DNS_PORT=${line#DNS_PORT=}
dns() { python3 - "$DNS_PORT" "$1" "$2" <<'PY'
import socket, struct, sys
port, name, qtype = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
q = struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0" + struct.pack("!HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.sendto(q, ("127.0.0.1", port))
r = s.recv(4096)
print("rcode=%d an=%d" % (r[3] & 15, struct.unpack("!H", r[6:8])[0]))
PY
}
ok "dns A listed"     '[ "$(dns 2.0.0.127.zen.test 1)" = "rcode=0 an=1" ]'
ok "dns TXT"          '[ "$(dns example.org 16)" = "rcode=0 an=1" ]'
ok "dns NXDOMAIN"     '[ "$(dns 3.0.0.127.zen.test 1)" = "rcode=3 an=0" ]'
ok "dns no such type" '[ "$(dns example.org 1)" = "rcode=0 an=0" ]'

for rules in debian minimal; do
  out=$(SPONTS_SPAMD_RULES=$rules "$HERE/spamd_start.sh" 0 "$T/spamd-$rules"); eval "$out"
  echo "spamd ($rules rules) startup ${SPAMD_STARTUP_S}s"
  ok "spamd/$rules GTUBE"  'cmp "$(spamd_score "$SPAMD_PORT" "$T/gtube.eml") >= 900"'
  ok "spamd/$rules marker" 'cmp "$(spamd_score "$SPAMD_PORT" "$T/marker.eml") >= 15"'
  ok "spamd/$rules ham"    'cmp "$(spamd_score "$SPAMD_PORT" "$T/ham.eml") < 5"'
done

out=$("$HERE/rspamd_start.sh" 0 "$T/rspamd"); eval "$out"
echo "rspamd startup ${RSPAMD_STARTUP_S}s"
ok "rspamd GTUBE"  '[ "$(rspamd_verdict "$RSPAMD_PORT" "$T/gtube.eml")" = "15.0 reject" ]'
ok "rspamd marker" '[ "$(rspamd_verdict "$RSPAMD_PORT" "$T/marker.eml")" = "20.0 reject" ]'
ok "rspamd ham"    '[ "$(rspamd_verdict "$RSPAMD_PORT" "$T/ham.eml")" = "0.0 no action" ]'
[ "$fail" = 0 ] && echo "peers selftest: all ok" || { echo "peers selftest: FAILED"; exit 1; }
