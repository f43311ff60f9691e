#!/usr/bin/env bash
# A separate Postfix instance (own config and queue dirs) as the organisation's mail server
# listens on LISTEN (default 127.0.0.1:2525), relays everything from 127.0.0.0/8
# to RELAYHOST (default 127.0.0.1:2526, e.g. smtp-sink). No local delivery, no DNS.
# Usage: postfix_relay_start.sh [LISTEN] [RELAYHOST] [STATE_DIR]
# Prints: POSTFIX_PID=<master pid> POSTFIX_LISTEN=... POSTFIX_RELAYHOST=... POSTFIX_DIR=...
# Stop:  postfix_relay_stop.sh STATE_DIR
# Env POSTFIX_EXTRA="param=value ..." : extra main.cf overrides (postconf -e syntax).
# Env POSTFIX_TLS=1 : offer STARTTLS with a fresh self-signed cert ($DIR/tls/cert.pem).
set -euo pipefail
LISTEN="${1:-127.0.0.1:2525}"
RELAY="${2:-127.0.0.1:2526}"
DIR="${3:-$(mktemp -d /tmp/peer-postfix.XXXXXX)}"
RHOST="${RELAY%:*}"; RPORT="${RELAY##*:}"
mkdir -p "$DIR/etc" "$DIR/queue" "$DIR/data"
chmod 755 "$DIR"
chown root:root "$DIR/queue"; chown postfix:postfix "$DIR/data"
cp /etc/postfix/master.cf "$DIR/etc/master.cf"
cp /usr/share/postfix/main.cf.debian "$DIR/etc/main.cf" 2>/dev/null || : > "$DIR/etc/main.cf"
PC="postconf -c $DIR/etc"
$PC -e \
  "compatibility_level=3.6" \
  "queue_directory=$DIR/queue" \
  "data_directory=$DIR/data" \
  "myhostname=relay.peer.test" "mydomain=peer.test" "myorigin=\$myhostname" \
  "inet_interfaces=127.0.0.1" "inet_protocols=ipv4" \
  "mydestination=" "local_recipient_maps=" "local_transport=error:local delivery disabled" \
  "alias_maps=" "alias_database=" "relay_domains=" \
  "mynetworks=127.0.0.0/8" \
  "smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination" \
  "smtpd_recipient_restrictions=" \
  "relayhost=[$RHOST]:$RPORT" \
  "default_transport=smtp" "relay_transport=smtp" \
  "smtp_dns_support_level=disabled" "disable_dns_lookups=yes" \
  "smtpd_peername_lookup=no" \
  "smtpd_tls_security_level=none" "smtp_tls_security_level=none" \
  "smtpd_tls_cert_file=" "smtpd_tls_key_file=" \
  "syslog_name=postfix-peer" "maillog_file_prefixes=/var,/dev/stdout,$DIR" "maillog_file=$DIR/maillog" \
  "biff=no" "append_dot_mydomain=no" "readme_directory=no" \
  "multi_instance_enable=no"
if [ "${POSTFIX_TLS:-0}" = 1 ]; then
  mkdir -p "$DIR/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=relay.peer.test" \
    -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" >/dev/null 2>&1
  chmod 600 "$DIR/tls/key.pem"
  $PC -e "smtpd_tls_security_level=may" "smtpd_tls_chain_files=$DIR/tls/key.pem,$DIR/tls/cert.pem" \
         "smtpd_tls_loglevel=1"
fi
# shellcheck disable=SC2086
[ -n "${POSTFIX_EXTRA:-}" ] && $PC -e ${POSTFIX_EXTRA}
# master.cf: no chroot (temp queue dir has no chroot files); replace the public
# "smtp inet" listener by one on $LISTEN.
$PC -M -X smtp/inet
$PC -M "$LISTEN/inet=$LISTEN inet n - n - - smtpd"
$PC -F '*/*/chroot = n'
# Create queue subdirs with the right owners, then start (daemonizes; master writes pid).
postfix -c "$DIR/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$DIR/etc" check || { echo "postfix check failed; rerun under script(1) to see the error (postfix logs only to tty/syslog before postlogd runs)" >&2; exit 1; }
postfix -c "$DIR/etc" start
for i in $(seq 1 100); do [ -s "$DIR/queue/pid/master.pid" ] && break; sleep 0.05; done
PID=$(tr -d ' \n' < "$DIR/queue/pid/master.pid")
echo "$PID" > "$DIR/peer.pid"
LH="${LISTEN%:*}"; LP="${LISTEN##*:}"
for i in $(seq 1 100); do (exec 3<>"/dev/tcp/$LH/$LP") 2>/dev/null && break; sleep 0.05; done
echo "POSTFIX_PID=$PID POSTFIX_LISTEN=$LISTEN POSTFIX_RELAYHOST=$RELAY POSTFIX_DIR=$DIR"
