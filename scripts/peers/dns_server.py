#!/usr/bin/env python3
"""Tiny authoritative DNS server for sponts tests (Python 3 stdlib only).

Serves UDP and TCP on 127.0.0.1:PORT from a JSON zone file, so tests can give the
gateway DNSBL, SPF, DKIM and DMARC answers without touching the network.

Usage: dns_server.py --zone ZONE.json [--port N] [--bind 127.0.0.1] [--ttl 0] [-v]
  --port 0 (default) picks a free port. The first line on stdout is always
  "DNS_PORT=N" (flushed); nothing else is ever written to stdout.
  -v logs each query to stderr.  SIGTERM/SIGINT: clean exit 0.  SIGHUP: reload.

Zone file: {"name.": [record, ...], ...}. Names are case-insensitive; the trailing dot
is optional. "*.zone." is a wildcard for any name below zone. that is not listed itself.
  {"type": "A",    "value": "127.0.0.2"}
  {"type": "AAAA", "value": "::1"}
  {"type": "TXT",  "value": "v=spf1 -all"}      (split into 255-octet strings;
                                                 a list value gives the strings explicitly)
  {"type": "MX",   "value": "10 mx.example.org."}   (or "priority": 10, "value": "mx...")
  {"type": "PTR",  "value": "mx.example.org."}
  {"type": "SERVFAIL"} / {"type": "REFUSED"}   answer that rcode for every query of the name
  {"type": "DROP"}                             never answer queries for the name (timeouts)
Any record may carry "ttl": N (default --ttl, 0 so that resolvers do not cache).
The file is re-read when its mtime/size/inode changes (checked on every query), so a
test can add entries while the server runs; write it atomically (temp file + rename).
A file that does not parse is reported on stderr and the previous zone stays in use.
Unknown name -> NXDOMAIN; known name without that type -> NOERROR, no answer (both with
a TTL-0 SOA in the authority section). Answers are authoritative (AA). EDNS0: an OPT in
the query gets an OPT (payload 1232) in the answer; too big for UDP -> TC set, retry TCP.
"""
import argparse, ipaddress, json, os, signal, socket, socketserver, struct, sys, threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
OPT, ANY = 41, 255
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
VERBOSE = False


def log(msg):
    print("dns_server: " + msg, file=sys.stderr, flush=True)


def norm(name):
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def enc_name(name):
    out = b""
    for label in norm(name).rstrip(".").split("."):
        if label:
            b = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(b)]) + b
    return out + b"\0"


def rdata(rec):
    t, v = rec["type"].upper(), rec.get("value")
    if t == "A":
        return ipaddress.IPv4Address(v).packed
    if t == "AAAA":
        return ipaddress.IPv6Address(v).packed
    if t == "TXT":
        parts = v if isinstance(v, list) else [v]
        out = b""
        for p in parts:
            b = p.encode()
            chunks = [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
            out += b"".join(bytes([len(c)]) + c for c in chunks)
        return out
    if t == "MX":
        if "priority" in rec:
            pref, host = int(rec["priority"]), v
        else:
            pref, host = v.split(None, 1)
        return struct.pack("!H", int(pref)) + enc_name(host)
    if t in ("PTR", "NS", "CNAME"):
        return enc_name(v)
    raise ValueError("unsupported record type %r" % t)


class Zone:
    def __init__(self, path, ttl):
        self.path, self.ttl, self.key, self.names = path, ttl, None, {}
        self.lock = threading.Lock()
        self.check()

    def check(self):
        """Re-read the zone file if it changed; keep the old zone if the new one is bad."""
        with self.lock:
            try:
                st = os.stat(self.path)
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                if key == self.key:
                    return
                with open(self.path, encoding="utf-8") as f:
                    raw = json.load(f)
                names = {}
                for name, recs in raw.items():
                    parsed = []
                    for r in recs:
                        t = r["type"].upper()
                        ttl = int(r.get("ttl", self.ttl))
                        if t in ("SERVFAIL", "REFUSED", "DROP"):
                            parsed.append((t, ttl, None))
                        else:
                            parsed.append((TYPES[t], ttl, rdata(r)))
                    names[norm(name)] = parsed
                self.names, self.key = names, key
                if VERBOSE:
                    log("loaded %d names from %s" % (len(names), self.path))
            except Exception as e:  # noqa: BLE001 - keep serving the old zone
                log("zone %s not (re)loaded: %s" % (self.path, e))

    def lookup(self, qname):
        self.check()
        names = self.names
        if qname in names:
            return names[qname]
        labels = qname.split(".")
        for i in range(1, len(labels) - 1):
            wild = "*." + ".".join(labels[i:])
            if wild in names:
                return names[wild]
        return None


def read_name(msg, off):
    labels, jumped, end, hops = [], False, None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if not jumped:
                end = off + 2
            off, jumped, hops = ((n & 0x3F) << 8) | msg[off + 1], True, hops + 1
            if hops > 20:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels) + ".", (end if jumped else off)


def soa_rr(qname, serial):
    labels = qname.rstrip(".").split(".")
    owner = ".".join(labels[-2:]) + "." if labels != [""] else "."
    rd = enc_name("ns." + owner) + enc_name("hostmaster." + owner) + struct.pack("!5I", serial, 60, 60, 60, 0)
    return enc_name(owner) + struct.pack("!HHIH", 6, 1, 0, len(rd)) + rd


def handle(zone, data, tcp):
    """Return the response bytes for one query, or None to stay silent."""
    if len(data) < 12:
        return None
    qid, flags, qd, an, ns, ar = struct.unpack("!6H", data[:12])
    if flags & 0x8000:
        return None  # a response, not a query
    opcode, rd = (flags >> 11) & 0xF, flags & 0x0100
    try:
        if qd != 1:
            raise ValueError("qdcount %d" % qd)
        qname, off = read_name(data, 12)
        qtype, qclass = struct.unpack("!HH", data[off:off + 4])
        question = data[12:off + 4]
        off += 4
        edns = None
        for _ in range(an + ns + ar):  # look for OPT in the additional section
            _, off = read_name(data, off)
            rtype, rclass, rttl, rdlen = struct.unpack("!HHIH", data[off:off + 10])
            off += 10 + rdlen
            if rtype == OPT:
                edns = (rclass, (rttl >> 16) & 0xFF)
    except Exception:  # noqa: BLE001
        return struct.pack("!6H", qid, 0x8000 | (opcode << 11) | rd | 1, 0, 0, 0, 0)
    qn = qname.lower()
    answers, auth, rcode, ext = [], [], 0, 0
    if opcode != 0:
        rcode = RCODES["NOTIMP"]
    elif edns and edns[1] != 0:
        ext = 1  # BADVERS (16) = ext 1, rcode 0
    elif qclass not in (1, ANY):
        rcode = RCODES["REFUSED"]
    else:
        recs = zone.lookup(qn)
        specials = [r[0] for r in recs or [] if isinstance(r[0], str)]
        if "DROP" in specials:
            return None
        if specials:
            rcode = RCODES[specials[0]]
        elif recs is None:
            rcode = RCODES["NXDOMAIN"]
            auth.append(soa_rr(qn, 1))
        else:
            for t, ttl, rd_ in recs:
                if t == qtype or qtype == ANY:
                    answers.append(b"\xc0\x0c" + struct.pack("!HHIH", t, 1, ttl, len(rd_)) + rd_)
            if not answers:
                auth.append(soa_rr(qn, 1))
    if VERBOSE:
        log("%s %s type=%d -> rcode=%d answers=%d" % ("tcp" if tcp else "udp", qname, qtype, rcode, len(answers)))
    opt = b""
    limit = 65535 if tcp else 512
    if edns:
        opt = b"\0" + struct.pack("!HHIH", OPT, 1232, ext << 24, 0)
        limit = 65535 if tcp else max(512, min(edns[0], 1232))
    rflags = 0x8000 | (opcode << 11) | 0x0400 | rd | rcode

    def build(fl, ans, au):
        return (struct.pack("!6H", qid, fl, 1, len(ans), len(au), 1 if opt else 0)
                + question + b"".join(ans) + b"".join(au) + opt)

    resp = build(rflags, answers, auth)
    if len(resp) > limit:
        resp = build(rflags | 0x0200, [], [])  # TC: the client retries over TCP
    return resp


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description="authoritative test DNS server (sponts tests)")
    ap.add_argument("--zone", required=True, help="JSON zone file")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--ttl", type=int, default=0, help="default TTL of answers")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    VERBOSE = args.verbose
    zone = Zone(args.zone, args.ttl)

    class UDP(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            resp = handle(zone, data, False)
            if resp:
                sock.sendto(resp, self.client_address)

    class TCP(socketserver.BaseRequestHandler):
        def handle(self):
            f = self.request
            f.settimeout(10)
            try:
                while True:
                    hdr = f.recv(2, socket.MSG_WAITALL)
                    if len(hdr) < 2:
                        return
                    (n,) = struct.unpack("!H", hdr)
                    data = f.recv(n, socket.MSG_WAITALL)
                    if len(data) < n:
                        return
                    resp = handle(zone, data, True)
                    if resp:
                        f.sendall(struct.pack("!H", len(resp)) + resp)
            except OSError:
                return

    class UDPServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
        daemon_threads = True

    class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    for attempt in range(20):  # UDP and TCP must share the port number
        udp = UDPServer((args.bind, args.port), UDP)
        port = udp.server_address[1]
        try:
            tcp = TCPServer((args.bind, port), TCP)
            break
        except OSError:
            udp.server_close()
            if args.port or attempt == 19:
                raise
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)  # threads inherit the mask; main takes them
    for srv in (udp, tcp):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("DNS_PORT=%d" % port, flush=True)
    while signal.sigwait(sigs) == signal.SIGHUP:
        zone.key = None  # force a reload on the next query
    udp.server_close()
    tcp.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
