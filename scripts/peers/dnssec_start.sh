#!/usr/bin/env bash
# Start an offline DNS for tests on 127.0.0.1: an authoritative Knot serving the zones in DIR/zones/, each
# DNSSEC-signed with ldns (ECDSAP256SHA256, a KSK and a ZSK), and a *validating* Unbound that trusts those
# zones' keys (there is no root here, so each signed zone is its own trust anchor). Answers from a signed
# zone carry the AD bit when queried through Unbound; a zone file named NAME.insecure.zone is served
# unsigned and marked insecure, so it resolves without AD (the "DNSSEC not available" case).
#
#   mkdir -p DIR/zones
#   cat > DIR/zones/remote.test.zone <<'Z'
#   $ORIGIN remote.test.
#   $TTL 300
#   @   SOA ns.remote.test. hostmaster.remote.test. 1 3600 600 86400 300
#   @   NS  ns.remote.test.
#   ns  A   127.0.0.53
#   @   MX  10 mx.remote.test.
#   mx  A   127.0.0.77
#   _25._tcp.mx TLSA 3 1 1 <sha256 of the MX certificate's public key, hex>
#   Z
#   ./dnssec_start.sh DIR      # prints AUTH=127.0.0.1:N RESOLVER=127.0.0.1:M KNOT_PID=.. UNBOUND_PID=..
#   kdig @127.0.0.1 -p M +dnssec mx.remote.test A    # flags: ... ad
#   ./dnssec_stop.sh DIR
#
# Re-run after editing a zone: it signs again. To test a broken chain, change a record in
# DIR/signed/NAME.zone.signed after signing and restart only Knot (answers then fail validation: SERVFAIL).
# Needs Debian packages knot, unbound, ldnsutils (scripts/test installs them with a policy-rc.d that exits 101 so the
# system services do not start), and python3 (for free ports).
set -euo pipefail
DIR=$(cd "${1:?usage: dnssec_start.sh DIR}" && pwd)
[ -d "$DIR/zones" ] || { echo "no $DIR/zones" >&2; exit 1; }
for b in knotd unbound ldns-signzone ldns-keygen; do command -v $b >/dev/null || { echo "missing $b" >&2; exit 1; }; done
read -r AUTH RES < <(python3 "$(dirname "$0")/free_port.py" 2)
mkdir -p "$DIR/keys" "$DIR/signed" "$DIR/knot-run" "$DIR/knot-db"
chmod 755 "$DIR" "$DIR/signed" "$DIR/knot-run" "$DIR/knot-db"
: > "$DIR/anchors"
zones_conf=""; stubs=""; insecure=""
for f in "$DIR"/zones/*.zone; do
  base=$(basename "$f" .zone)
  if [[ "$base" == *.insecure ]]; then
    zone=${base%.insecure}
    cp "$f" "$DIR/signed/$zone.zone.signed"
    insecure+="domain-insecure: \"$zone\""$'\n'
  else
    zone=$base
    ( cd "$DIR/keys"
      rm -f "K$zone."*
      ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$zone")
      zsk=$(ldns-keygen -a ECDSAP256SHA256 "$zone")
      ldns-signzone -n -f "$DIR/signed/$zone.zone.signed" "$f" "$zsk" "$ksk" >/dev/null
      cat "$ksk.key" >> "$DIR/anchors" )
  fi
  # Unbound answers RFC 6761 names (test., invalid., ...) itself unless told not to.
  insecure+="local-zone: \"${zone##*.}.\" nodefault"$'\n'
  zones_conf+="  - domain: $zone"$'\n'"    file: $DIR/signed/$zone.zone.signed"$'\n'
  stubs+="stub-zone:"$'\n'"  name: \"$zone\""$'\n'"  stub-addr: 127.0.0.1@$AUTH"$'\n'
done
chmod 644 "$DIR"/signed/*
cat > "$DIR/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$AUTH
  rundir: $DIR/knot-run
database:
  storage: $DIR/knot-db
log:
  - target: $DIR/knot.log
    any: info
zone:
$zones_conf
CONF
cat > "$DIR/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $RES
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$DIR"
  pidfile: "$DIR/unbound.pid"
  use-syslog: no
  logfile: "$DIR/unbound.log"
  do-not-query-localhost: no
  module-config: "validator iterator"
  trust-anchor-file: "$DIR/anchors"
  val-log-level: 2
  harden-dnssec-stripped: yes
  access-control: 127.0.0.0/8 allow
  cache-max-ttl: 5
$insecure
$stubs
CONF
[ -s "$DIR/anchors" ] || sed -i '/trust-anchor-file/d' "$DIR/unbound.conf"
knotd -c "$DIR/knot.conf" >"$DIR/knotd.out" 2>&1 & echo $! > "$DIR/knot.pid"
unbound -c "$DIR/unbound.conf" >"$DIR/unbound.out" 2>&1 & echo $! > "$DIR/unbound.pid.self"
for i in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$AUTH) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$RES) 2>/dev/null && break
  sleep 0.1
done
(exec 3<>/dev/tcp/127.0.0.1/$RES) 2>/dev/null || { echo "unbound did not start: $(tail -3 "$DIR/unbound.log" "$DIR/unbound.out" 2>/dev/null)" >&2; exit 1; }
echo "AUTH=127.0.0.1:$AUTH"
echo "RESOLVER=127.0.0.1:$RES"
echo "KNOT_PID=$(cat "$DIR/knot.pid")"
echo "UNBOUND_PID=$(cat "$DIR/unbound.pid.self")"
