#!/usr/bin/env python3
"""Fills a sponts SQLite database with N kept messages of one person (journal records and their
zstd-compressed bodies), for bench/imap.

   gen_archive.py PATH N ADDRESS
Received mail over the last 300 days (so one year folder holds most of it), every tenth message
sent by ADDRESS to the outside; 64 distinct bodies of about 2-8 KB, compressed with the zstd tool.
"""
import random, sqlite3, subprocess, sys, time

path, n, me = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(7)
words = "invoice report meeting lunch offer parcel order payment update newsletter security account reminder".split()
now_us = int(time.time() * 1e6)
bodies = []
for k in range(64):
    text = " ".join(random.choice(words) for _ in range(300 + 100 * (k % 8)))
    lines = "\r\n".join(text[i:i + 72] for i in range(0, len(text), 72))
    raw = f"From: sender{k}@partner.example\r\nTo: {me}\r\nSubject: {words[k % len(words)]} number {k}\r\nMessage-ID: <body{k}@bench>\r\n\r\n{lines}\r\n".encode()
    z = subprocess.run(["zstd", "-q", "-3", "-c"], input=raw, capture_output=True, check=True).stdout
    bodies.append((raw, z))

db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=OFF")
J, R, P, B = [], [], [], []
def flush():
    db.executemany("INSERT INTO journal (id, time_us, client_ip, client_port, helo, sender, subject, size, outcome, decided_by, final_reply, search_text, direction) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", J)
    db.executemany("INSERT INTO journal_rcpt (journal_id, position, address, accepted, reply) VALUES (?,?,?,?,?)", R)
    db.executemany("INSERT INTO journal_party (address, journal_id, time_us) VALUES (?,?,?)", P)
    # The search index takes new journal rows in bulk (as sponts does every few hundred records).
    db.execute("INSERT INTO journal_fts (rowid, search_text) SELECT rowid, search_text FROM journal WHERE rowid > (SELECT upto FROM journal_fts_state) ORDER BY rowid")
    db.execute("UPDATE journal_fts_state SET upto = MAX(upto, (SELECT COALESCE(MAX(rowid), 0) FROM journal))")
    db.executemany("INSERT INTO backup (id, time_us, size, stored_size, body) VALUES (?,?,?,?,?)", B)
    db.commit(); J.clear(); R.clear(); P.clear(); B.clear()
for i in range(n):
    jid = f"A{i:011d}"
    t = now_us - int((n - i) * (300 * 86400e6 / max(n, 1)))
    raw, z = bodies[i % 64]
    sent = i % 10 == 5
    sender, rcpt = (me, f"peer{i % 500}@elsewhere.example") if sent else (f"sender{i % 64}@partner.example", me)
    subject = f"{words[i % 64 % len(words)]} number {i % 64} w{i}"
    J.append((jid, t, "192.0.2.1", 25000, "client.example", sender, subject, len(raw), "delivered", "backend", "250 ok", f"{sender} {rcpt} {subject}".lower(), "out" if sent else "in"))
    R.append((jid, 0, rcpt, True, "250 ok"))
    P.extend([(sender, jid, t), (rcpt, jid, t)])
    B.append((jid, t, len(raw), len(z), z))
    if len(J) >= 20000:
        flush()
flush()
db.execute("ANALYZE"); db.commit()
