#!/usr/bin/env python3
"""Fills a sponts database with N synthetic journal records (and recipients, attachments).

   gen_journal.py sqlite PATH N        |  gen_journal.py postgres URL N
One in 1000 records is addressed to bench-user@example.org; subjects come from a small vocabulary
plus a unique word, so searches for rare and common terms both have answers.
"""
import random, sys, time

kind, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(42)
words = "invoice report meeting lunch offer parcel order payment update newsletter security account reminder".split()
domains = ["partner.example", "shop.example", "bank.example", "news.example", "spam.example"]
now_us = int(time.time() * 1e6)

def rows():
    for i in range(n):
        jid = f"B{i:011d}"
        t = now_us - (n - i) * 2_000_000  # one message every 2 s back in time
        sender = f"user{random.randrange(5000)}@{random.choice(domains)}"
        rcpt = "bench-user@example.org" if i % 1000 == 0 else f"staff{random.randrange(2000)}@example.org"
        subject = f"{random.choice(words)} {random.choice(words)} w{i}"
        outcome = random.choice(["delivered"] * 8 + ["refused", "tempfailed"])
        search = f"{sender} {rcpt} {subject}".lower()
        yield (jid, t, f"192.0.2.{i % 250}", 40000, "mx.client.example", None, sender, subject, f"{jid}@x", 5000, outcome, "backend", "250 2.0.0 Ok", search), \
              (jid, 0, rcpt, True, "250 2.1.5 Ok"), ((jid, 0, "file.pdf", "application/pdf", 12345) if i % 10 == 0 else None), \
              [(sender, jid, t), (rcpt, jid, t)]

J = "INSERT INTO journal (id, time_us, client_ip, client_port, helo, tls, sender, subject, message_id, size, outcome, decided_by, final_reply, search_text) VALUES ({})"
P = "INSERT INTO journal_party (address, journal_id, time_us) VALUES (?,?,?)"
R = "INSERT INTO journal_rcpt (journal_id, position, address, accepted, reply) VALUES ({})"
# The search index takes new journal rows in bulk (sponts does the same every few hundred records).
FTS_CATCH_UP = ["INSERT INTO journal_fts (rowid, search_text) SELECT rowid, search_text FROM journal WHERE rowid > (SELECT upto FROM journal_fts_state) ORDER BY rowid",
                "UPDATE journal_fts_state SET upto = MAX(upto, (SELECT COALESCE(MAX(rowid), 0) FROM journal))"]
A = "INSERT INTO journal_attachment (journal_id, position, filename, mime_type, size) VALUES ({})"

if kind == "sqlite":
    import sqlite3
    db = sqlite3.connect(target)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=OFF")
    batch_j, batch_r, batch_a, batch_p = [], [], [], []
    def flush():
        db.executemany(J.format(",".join("?" * 14)), batch_j); db.executemany(R.format(",".join("?" * 5)), batch_r)
        db.executemany(A.format(",".join("?" * 5)), batch_a); db.executemany(P, batch_p)
        for q in FTS_CATCH_UP: db.execute(q)
        db.commit()
    for j, r, a, p in rows():
        batch_j.append(j); batch_r.append(r); batch_p.extend(p)
        if a: batch_a.append(a)
        if len(batch_j) >= 50000:
            flush(); batch_j, batch_r, batch_a, batch_p = [], [], [], []
    if batch_j:
        flush()
    db.execute("ANALYZE"); db.commit()
else:
    import subprocess, io
    def copy(table, cols, data):
        buf = io.StringIO()
        for row in data:
            buf.write("\t".join("\\N" if v is None else ("t" if v is True else str(v)) for v in row) + "\n")
        subprocess.run(["psql", target, "-q", "-c", f"COPY {table} ({cols}) FROM STDIN"], input=buf.getvalue(), text=True, check=True)
    js, rs, as_, ps = [], [], [], []
    for j, r, a, p in rows():
        js.append(j); rs.append(r); ps.extend(p)
        if a: as_.append(a)
    copy("journal", "id, time_us, client_ip, client_port, helo, tls, sender, subject, message_id, size, outcome, decided_by, final_reply, search_text", js)
    copy("journal_party", "address, journal_id, time_us", ps)
    copy("journal_rcpt", "journal_id, position, address, accepted, reply", rs)
    copy("journal_attachment", "journal_id, position, filename, mime_type, size", as_)
    subprocess.run(["psql", target, "-q", "-c", "ANALYZE"], check=True)
print(f"{n} records written", file=sys.stderr)
