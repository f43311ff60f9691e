#!/usr/bin/env python3
"""bench/spam-eval's Python half: corpus (build a DIR from the SpamAssassin data), split (the
halves), sink (the backend), send (the test phase and the report), scores (a threshold-free
summary of per-message scores). `python3 bench/spam_eval.py MODE ARGS...`."""
import asyncio, collections, hashlib, json, os, random, re, shutil, signal, smtplib, socket, sys, time
from concurrent.futures import ThreadPoolExecutor

EOL = re.compile(rb"\r\n|\r|\n")
PLAIN_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

def strip_from_line(raw):
    """The mbox separator `From addr date` is not part of the message."""
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return b"" if nl < 0 else raw[nl + 1:]
    return raw

def to_wire(raw):
    """CRLF line endings (CR, LF and CRLF all end a line), ending with CRLF."""
    msg = EOL.sub(b"\r\n", strip_from_line(raw))
    return msg if msg.endswith(b"\r\n") else msg + b"\r\n"

def split_message(msg):
    if msg.startswith(b"\r\n"):
        return b"", msg[2:]
    i = msg.find(b"\r\n\r\n")
    return (msg, b"") if i < 0 else (msg[:i + 2], msg[i + 4:])

def headers(head):
    """[(lower-case name, unfolded value)] of a CRLF header block."""
    out = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1][1] += b" " + line.strip()
        elif b":" in line:
            name, value = line.split(b":", 1)
            out.append([name.strip().lower(), value.strip()])
    return out

def keys(msg):
    """What the sender and the sink both know of a message whatever sponts adds to the header:
    (Message-ID + body, body) digests."""
    head, body = split_message(msg)
    body = body.rstrip(b"\r\n")
    mid = next((v for n, v in headers(head) if n == b"message-id"), b"")
    b = hashlib.sha1(body).hexdigest()
    return hashlib.sha1(b" ".join(mid.split()) + b"\0" + body).hexdigest(), b

def x_spam_names(msg):
    return sorted({n.decode("latin-1") for n, _ in headers(split_message(msg)[0]) if n.startswith(b"x-spam")})

def spam_flags(msg):
    return sum(1 for n, v in headers(split_message(msg)[0]) if n == b"x-spam-flag" and v.upper().startswith(b"YES"))

# ---- corpus: SpamAssassin data dir -> DIR/spam/*.eml, DIR/ham/*.eml ----
def corpus(src, dst):
    counts = collections.Counter()
    tmp = dst + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for label in ("spam", "ham"):
        os.makedirs(os.path.join(tmp, label))
    for group in sorted(os.listdir(src)):
        # spam-1, spam-2 -> spam; easy-ham-1, easy-ham-2, hard-ham-1 -> ham (spam, spam_2, easy_ham... alike)
        label = "spam" if group.startswith("spam") else "ham" if "ham" in group else None
        if label is None or not os.path.isdir(os.path.join(src, group)):
            continue
        for name in sorted(os.listdir(os.path.join(src, group))):
            if not name.endswith(".txt"):  # the .json twins are lossy re-encodings
                continue
            with open(os.path.join(src, group, name), "rb") as f:
                raw = strip_from_line(f.read())
            with open(os.path.join(tmp, label, f"{group}-{name[:-4]}.eml"), "wb") as f:
                f.write(raw)
            counts[label] += 1
    if not counts["spam"] or not counts["ham"]:
        sys.exit(f"no spam or no ham found under {src}")
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)
    print(f"corpus: {counts['spam']} spam, {counts['ham']} ham written to {dst}", file=sys.stderr)

def received_time(path):
    """When a message arrived: the date of its topmost Received header (written by the receiving
    server, unlike a spammer's Date), else its Date header; 0 when neither parses."""
    from email.utils import parsedate_to_datetime
    with open(path, "rb") as f:
        head = headers(split_message(to_wire(f.read()))[0])
    values = [v.rsplit(b";", 1)[-1] for n, v in head if n == b"received" and b";" in v][:1]
    values += [v for n, v in head if n == b"date"][:1]
    for v in values:
        try:
            return parsedate_to_datetime(v.decode("latin-1").strip()).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
    return 0

# ---- split: each label's sorted file list shuffled with the seed (or ordered by time, older
# first); the first half trains ----
def split(src, work, seed):
    with open(os.path.join(work, "test.tsv"), "w") as test:
        for label in ("spam", "ham"):
            d = os.path.join(src, label)
            files = sorted(n for n in os.listdir(d) if n.endswith(".eml") and os.path.isfile(os.path.join(d, n))) if os.path.isdir(d) else []
            if not files:
                sys.exit(f"{d}/*.eml: no messages")
            if seed == "time":
                files.sort(key=lambda n: (received_time(os.path.join(d, n)), n))
            else:
                random.Random(f"{seed}:{label}").shuffle(files)
            half = len(files) // 2
            os.makedirs(os.path.join(work, "train", label))
            for n in files[:half]:  # copies: `learn` reads regular files, symlinks may not count
                shutil.copyfile(os.path.join(d, n), os.path.join(work, "train", label, n))
            for n in files[half:]:
                test.write(f"{label}\t{os.path.abspath(os.path.join(d, n))}\n")
            print(f"{label}: {len(files)} messages, {half} to train, {len(files) - half} to test", file=sys.stderr)

# ---- sink: an SMTP server that accepts everything and notes X-Spam-Flag per message ----
def sink(addr, records):
    host, port = addr.rsplit(":", 1)
    out = open(records, "a", buffering=1)
    seq = [0]

    async def session(reader, writer):
        async def reply(text):
            writer.write(text.encode() + b"\r\n")
            await writer.drain()
        mail, rcpts = None, []
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            await reply("220 sink.bench.test ESMTP spam-eval sink")
            while True:
                line = await reader.readline()
                if not line:
                    return
                cmd = line.rstrip(b"\r\n").decode("latin-1")
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    await reply("250-sink.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 209715200\r\n250 ENHANCEDSTATUSCODES")
                elif verb == "HELO":
                    await reply("250 sink.bench.test")
                elif verb == "MAIL":
                    mail, rcpts = cmd[10:].split(">", 1)[0].lstrip(" <"), []
                    await reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    if mail is None:
                        await reply("503 5.5.1 MAIL first")
                    else:
                        rcpts.append(cmd[8:].split(">", 1)[0].lstrip(" <"))
                        await reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    if mail is None or not rcpts:
                        await reply("503 5.5.1 MAIL and RCPT first")
                        continue
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while True:
                        l = await reader.readline()
                        if not l:
                            return
                        if l in (b".\r\n", b".\n"):
                            break
                        lines.append(l[1:] if l.startswith(b".") else l)
                    msg = b"".join(lines)
                    seq[0] += 1
                    full, body = keys(msg)
                    out.write(json.dumps({"n": seq[0], "peer": peer, "key": full, "bkey": body, "flags": spam_flags(msg),
                                          "x_spam": x_spam_names(msg),
                                          "from": mail, "rcpt": rcpts, "size": len(msg)}) + "\n")
                    mail, rcpts = None, []
                    await reply(f"250 2.0.0 Ok: queued as {seq[0]}")
                elif verb == "RSET":
                    mail, rcpts = None, []
                    await reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    await reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    await reply("221 2.0.0 Bye")
                    return
                else:
                    await reply("502 5.5.1 Command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(session, host, int(port), limit=1 << 26, backlog=1024)
        async with server:
            await server.serve_forever()
    asyncio.run(main())

# ---- send: the test half through TARGET, then the report ----
def classify(code, text):
    """A 5xx for the message's form, not its content, makes it not evaluable."""
    if 200 <= code < 300:
        return "delivered"
    if not 500 <= code < 600:
        return "other"
    m = ENHANCED.match(text)
    enh = m.group(0).strip() if m else ""
    if enh.startswith(("5.5.", "5.6.")) or enh == "5.3.4" or re.search(r"(?i)line too long|longer than 1000|bare (CR|LF)|size exceeds", text):
        return "noteval"
    if re.search(r"(?i)relay access denied", text):  # the bench's config is wrong, not a verdict
        return "other"
    return "refused"

def shape(code, text):
    return f"{code} " + re.sub(r"<[^<>]*>", "<...>", re.sub(r"\s+", " ", text)).strip()[:120]

def envelope_sender(msg):
    head = headers(split_message(msg)[0])
    rp = next((v for n, v in head if n == b"return-path"), None)
    if rp is not None:
        v = rp.decode("latin-1").strip()
        if v == "<>":
            return "", "return-path"
        a = v[1:-1].strip() if v.startswith("<") and v.endswith(">") else v
        if len(a) <= 254 and PLAIN_ADDR.fullmatch(a):
            return a, "return-path"
    return "sender@example.net", "fixed"

def send(target, work):
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop at once, not after the sessions under way
        signal.signal(sig, lambda n, _: os._exit(128 + n))
    env = os.environ
    conc, limit, timeout = int(env["CONC"]), int(env["LIMIT"]), float(env["TIMEOUT"])
    direct = env["DIRECT"] == "1"
    records = os.path.join(work, "sink", "records.jsonl")
    host, port = target.rsplit(":", 1)
    rcpt, helo = "user@example.org", "client.bench.test"

    items, per_label = [], collections.Counter()
    for line in open(os.path.join(work, "test.tsv")):
        label, path = line.rstrip("\n").split("\t")
        if limit and per_label[label] >= limit:
            continue
        per_label[label] += 1
        msg = to_wire(open(path, "rb").read())
        sender, how = envelope_sender(msg)
        items.append({"label": label, "path": path, "msg": msg, "sender": sender, "sender_from": how, "x_spam": x_spam_names(msg),
                      "eightbit": any(b > 127 for b in msg), "keys": keys(msg), "preflagged": spam_flags(msg) > 0})

    # One loopback source address per message (127.1.0.1 ...), if the system lets us bind them.
    try:
        with socket.socket() as s:
            s.bind(("127.1.0.1", 0))
        source = lambda i: (socket.inet_ntoa((0x7F010001 + i).to_bytes(4, "big")), 0)
    except OSError:
        print("warning: cannot bind 127.1.0.1; every message comes from the same address", file=sys.stderr)
        source = lambda i: None

    def one(i):
        it = items[i]
        t0 = time.monotonic()
        res = {"stage": "CONNECT", "code": 0, "text": ""}
        s = None
        try:
            for attempt in range(4):  # a full listener or a 421 greeting: try again a little later
                try:
                    s = smtplib.SMTP(host, int(port), local_hostname=helo, timeout=timeout, source_address=source(i))
                    break
                except (OSError, smtplib.SMTPException) as e:
                    res["text"] = f"{type(e).__name__}: {e}"
                    time.sleep(0.2 * (attempt + 1))
            if s is None:
                raise ConnectionError(res["text"])
            res["stage"] = "EHLO"
            code, text = s.ehlo()
            if not 200 <= code < 300:
                raise smtplib.SMTPHeloError(code, text)
            opts = []
            if s.has_extn("size"):
                opts.append(f"SIZE={len(it['msg'])}")
            if it["eightbit"] and s.has_extn("8bitmime"):
                opts.append("BODY=8BITMIME")
            for stage, call in (("MAIL", lambda: s.mail(it["sender"], opts)), ("RCPT", lambda: s.rcpt(rcpt)),
                                ("DATA", lambda: s.data(it["msg"]))):
                res["stage"] = stage
                try:
                    code, text = call()
                except smtplib.SMTPDataError as e:  # the DATA command itself refused
                    code, text = e.smtp_code, e.smtp_error
                res["code"], res["text"] = code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
                if not 200 <= code < 300:
                    break
        except (OSError, smtplib.SMTPException) as e:
            res["code"], res["text"] = getattr(e, "smtp_code", 0), f"{type(e).__name__}: {getattr(e, 'smtp_error', e)}"
        finally:
            if s is not None:
                try:
                    s.quit()
                except (OSError, smtplib.SMTPException):
                    s.close()
        res["outcome"] = classify(res["code"], res["text"])
        res["ms"] = (time.monotonic() - t0) * 1000
        return res

    t0 = time.monotonic()
    with ThreadPoolExecutor(conc) as pool:
        results = list(pool.map(one, range(len(items))))
    elapsed = time.monotonic() - t0

    # Delivered messages reach the sink before sponts says 250; wait a little in case of a queue.
    delivered = sum(r["outcome"] == "delivered" for r in results)
    deadline = time.monotonic() + 30
    recs = []
    while True:
        with open(records) as f:
            recs = [json.loads(l) for l in f if l.endswith("\n")]
        if len(recs) >= delivered or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    by_key, by_body = collections.defaultdict(list), collections.defaultdict(list)
    for r in recs:
        by_key[r["key"]].append(r)
        by_body[r["bkey"]].append(r)
    used = set()
    def take(pool):
        while pool:
            r = pool.pop()
            if r["n"] not in used:
                used.add(r["n"])
                return r
        return None
    added = collections.Counter()  # X-Spam-* header names found at the sink and not sent
    for it, r in zip(items, results):
        if r["outcome"] != "delivered":
            continue
        rec = take(by_key[it["keys"][0]]) or take(by_body[it["keys"][1]])
        if rec is None:
            r["outcome"] = "unseen"
        else:
            r["outcome"] = "tagged" if rec["flags"] > 0 else "clean"
            added.update(set(rec["x_spam"]) - set(it["x_spam"]))

    with open(os.path.join(work, "results.jsonl"), "w") as f:
        for it, r in zip(items, results):
            f.write(json.dumps({"label": it["label"], "path": it["path"], "sender": it["sender"], **r}) + "\n")
    report(items, results, elapsed, added, direct)

def report(items, results, elapsed, added, direct):
    env = os.environ
    c = {l: collections.Counter() for l in ("spam", "ham")}
    shapes = collections.defaultdict(collections.Counter)
    for it, r in zip(items, results):
        c[it["label"]][r["outcome"]] += 1
        if r["outcome"] in ("refused", "noteval", "other"):
            shapes[r["outcome"]][(it["label"], r["stage"], shape(r["code"], r["text"]))] += 1
    sent = {l: sum(c[l].values()) for l in c}
    ev = {l: sent[l] - c[l]["noteval"] for l in c}
    pct = lambda n, l: 100.0 * n / ev[l] if ev[l] else float("nan")
    noteval = c["spam"]["noteval"] + c["ham"]["noteval"]
    rate = len(results) / elapsed if elapsed > 0 else 0.0
    ms = sorted(r["ms"] for r in results)
    q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))] if ms else 0.0
    caught, caught_t = pct(c["spam"]["refused"], "spam"), pct(c["spam"]["refused"] + c["spam"]["tagged"], "spam")
    ham_ref, ham_tag = pct(c["ham"]["refused"], "ham"), pct(c["ham"]["tagged"], "ham")
    via = "straight to the sink (SPAM_EVAL_DIRECT=1: baseline, no sponts)" if direct else f"through sponts (modules {env['MODULES']})"
    senders = collections.Counter(it["sender_from"] for it in items)

    print(f"\ncorpus {env['CORPUS']}, seed {env['SEED']}; test half sent {via}, {env['CONC']} clients at a time")
    print(f"training: {env['TRAIN_SPAM']} spam, {env['TRAIN_HAM']} ham" + ("" if env.get("LEARNED") == "1" else " (not learned)"))
    print(f"test:     {sent['spam']} spam, {sent['ham']} ham; envelope sender from Return-Path for {senders['return-path']}, sender@example.net for {senders['fixed']}")
    print(f"\n{'':24}{'spam':>15}{'ham':>16}")
    for key, name in (("refused", "refused"), ("tagged", "tagged (delivered)"), ("clean", "clean (delivered)"),
                      ("noteval", "not evaluable"), ("other", "other (4xx, errors)"), ("unseen", "delivered, not at sink")):
        if key in ("other", "unseen") and not (c["spam"][key] or c["ham"][key]):
            continue
        row = f"{name:<24}"
        for l, digits in (("spam", 1), ("ham", 2)):
            n = c[l][key]
            row += f"{n:>7}" + (f"{pct(n, l):>7.{digits}f}%" if key != "noteval" else " " * 8) + " "
        print(row)
    print()
    ok = lambda good: "" if direct else "ok" if good else "MISSED"
    print(f"spam caught (refused):     {caught:6.1f} %   target >= 97 %   {ok(caught >= 97)}")
    print(f"spam caught incl. tagged:  {caught_t:6.1f} %")
    print(f"ham wrongly refused:       {ham_ref:6.2f} %   target <= 0.2 %  {ok(ham_ref <= 0.2)}")
    print(f"ham tagged:                {ham_tag:6.2f} %")
    print(f"not evaluable:             {noteval} ({c['spam']['noteval']} spam, {c['ham']['noteval']} ham; refused for their form, left out of the percentages)")
    print(f"send phase:                {len(results)} messages in {elapsed:.1f} s = {rate:.0f} msgs/s; "
          f"per message median {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms, max {ms[-1] if ms else 0:.0f} ms")
    if added:
        print("X-Spam-* headers added on the way (messages): " + ", ".join(f"{n} ({k})" for n, k in sorted(added.items())))
    for outcome, title in (("refused", "refusals"), ("noteval", "not evaluable"), ("other", "other")):
        if shapes[outcome]:
            print(f"\n{title} by reply (label, stage, reply; at most 8):")
            for (l, stage, s), n in shapes[outcome].most_common(8):
                print(f"  {n:6} {l:4} {stage:5} {s}")
    wrong = [it["path"] for it, r in zip(items, results) if it["label"] == "ham" and r["outcome"] == "refused"]
    if wrong:
        print(f"\nham refused ({len(wrong)}; at most 10 shown):")
        for p in wrong[:10]:
            print("  " + p)
    pre = sum(it["preflagged"] for it in items)
    if pre:
        print(f"\nwarning: {pre} test messages already carried X-Spam-Flag: YES before sending; their tag count means nothing")
    if c["spam"]["other"] + c["ham"]["other"]:
        print("\nwarning: some messages got neither a verdict nor a delivery (see \"other\"); the figures are doubtful")
    if c["spam"]["unseen"] + c["ham"]["unseen"]:
        print("\nwarning: some delivered messages were not found at the sink (body or Message-ID changed on the way?)")
    print(f"\nsummary: spam-eval {env['CORPUS_SHORT']} seed {env['SEED']}, trained {env['TRAIN_SPAM']} spam/{env['TRAIN_HAM']} ham, "
          f"tested {ev['spam']} spam/{ev['ham']} ham: spam refused {caught:.1f}% (incl. tagged {caught_t:.1f}%), "
          f"ham refused {ham_ref:.2f}% (tagged {ham_tag:.2f}%), {rate:.0f} msgs/s with {env['CONC']} clients, "
          f"{noteval} not evaluable" + (" [direct to sink, no sponts]" if direct else ""))

def scores(path, required, engine):
    """A threshold-free summary of per-message scores (`label<TAB>score` lines, higher is
    spammier): spam and ham at the engine's own threshold `required`, and the spam caught at
    the best threshold that refuses at most 0.2 % of ham (how well the scores separate)."""
    rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    unscored = [r for r in rows if len(r) < 2 or not r[1]]
    rows = [(r[0] == "spam", float(r[1])) for r in rows if len(r) >= 2 and r[1]]
    spam = [v for s, v in rows if s]
    ham = sorted((v for s, v in rows if not s), reverse=True)
    if not spam or not ham:
        sys.exit("scores: need spam and ham")
    pct = lambda xs, t: 100.0 * sum(v >= t for v in xs) / len(xs)
    at = ham[int(len(ham) * 0.002)]
    print(f"summary engine={engine} spam={len(spam)} ham={len(ham)} unscored={len(unscored)} "
          f"at_required={required} spam_caught={pct(spam, float(required)):.1f}% "
          f"ham_caught={pct(ham, float(required)):.2f}% "
          f"at_0.2%_ham: above={at} spam_caught={100.0 * sum(v > at for v in spam) / len(spam):.1f}% "
          f"ham_caught={100.0 * sum(v > at for v in ham) / len(ham):.2f}%")

if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"corpus": corpus, "split": lambda s, w: split(s, w, os.environ["SEED"]), "sink": sink, "send": send,
     "scores": scores}[mode](*args)
