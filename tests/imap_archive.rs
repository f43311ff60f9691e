//! IMAP access to the archive with real clients: mbsync copies a person's whole archive into a
//! Maildir byte for byte; Python's imaplib checks SEARCH and FETCH details, sign-in only after
//! STARTTLS, and that a second person sees none of the first one's mail; fetchmail reads the
//! mail queued during an outage from INBOX; a target's retrievals are copied for interception.

mod common;

use common::*;
use sponts::storage::{JournalEntry, RcptEntry, StoredBody};

/// An IMAP-enabled gateway in front of a backend that is down (mail is queued).
async fn imap_gateway(extra: &str) -> (Gateway, u16, u16) {
    let gw = gateway(dead_address(), &format!("[queue]\nprobe = 30\n[archive]\nimap_listen = [\"127.0.0.1:0\"]\nimaps_listen = [\"127.0.0.1:0\"]\n[backup]\nretention_days = 36500\n{extra}")).await;
    let imap = gw.running.as_ref().unwrap().imap.as_ref().expect("IMAP on");
    let (plain, tls) = (imap.addrs[0].port(), imap.tls_addrs[0].port());
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    add_user(&gw.store, "bob@example.org", sponts::storage::Role::User).await;
    (gw, plain, tls)
}

/// Keeps a message in the archive as if it had passed at `day` (YYYY-MM-DD) 10:00 UTC.
async fn archive(
    store: &sponts::storage::Store,
    day: &str,
    sender: &str,
    rcpt: &str,
    outbound: bool,
    message: &[u8],
) -> String {
    let id = sponts::id::new_transaction_id();
    let time_us = sponts::clock::parse_date(day).unwrap() + 10 * 3_600_000_000;
    let subject = message
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Subject: "))
        .map(|s| String::from_utf8_lossy(s).trim().to_string());
    let entry = JournalEntry {
        id: id.clone(),
        time_us,
        client_ip: "192.0.2.1".into(),
        client_port: 25000,
        helo: "client.test".into(),
        tls: None,
        sender: sender.into(),
        recipients: vec![RcptEntry {
            address: rcpt.into(),
            accepted: true,
            reply: "250 ok".into(),
            delivered_to: None,
        }],
        subject,
        message_id: None,
        size: Some(message.len() as i64),
        attachments: vec![],
        outcome: "delivered".into(),
        decided_by: "backend".into(),
        final_reply: "250 ok".into(),
        replay_of: None,
        actor: None,
        flag: None,
        notes: None,
        outbound,
    };
    store.insert_journal(&[entry]).await.unwrap();
    let compressed = sponts::modules::backup::compress(message, 3).unwrap();
    store
        .insert_bodies(vec![StoredBody {
            id: id.clone(),
            time_us,
            size: message.len() as i64,
            compressed,
            digest: String::new(),
        }])
        .await
        .unwrap();
    id
}

const MULTIPART: &[u8] = b"From: Carol <carol@partner.example>\r\nTo: alice@example.org\r\nSubject: Contract draft\r\nDate: Mon, 05 Jan 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n--sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the draft attached.\r\n--sep\r\nContent-Type: application/pdf; name=\"draft.pdf\"\r\nContent-Disposition: attachment; filename=\"draft.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--sep--\r\n";

/// Alice's archive: received and sent mail over two years, and one message for Bob only.
async fn fill(store: &sponts::storage::Store) -> Vec<(String, Vec<u8>)> {
    let mut kept = Vec::new();
    let plain = |from: &str, to: &str, subject: &str, body: &str| {
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n{body}",
            subject.replace(' ', ".")
        )
        .into_bytes()
    };
    let mail = [
        (
            "2025-03-10",
            "news@partner.example",
            "alice@example.org",
            false,
            plain(
                "news@partner.example",
                "alice@example.org",
                "Spring news",
                "line one\r\n.\r\nFrom the start\r\n",
            ),
        ),
        (
            "2025-11-02",
            "dave@partner.example",
            "alice@example.org",
            false,
            plain(
                "Dave <dave@partner.example>",
                "alice@example.org",
                "Invoice 2025-11",
                "amount due: 12 EUR\r\n",
            ),
        ),
        (
            "2025-07-01",
            "alice@example.org",
            "erin@elsewhere.example",
            true,
            plain(
                "alice@example.org",
                "erin@elsewhere.example",
                "Summer plans",
                "see you\r\n",
            ),
        ),
        (
            "2026-01-05",
            "carol@partner.example",
            "alice@example.org",
            false,
            MULTIPART.to_vec(),
        ),
        (
            "2026-06-01",
            "news@partner.example",
            "alice@example.org",
            false,
            plain(
                "news@partner.example",
                "alice@example.org",
                "June news",
                &"a long line ".repeat(200),
            ),
        ),
        (
            "2026-02-02",
            "alice@example.org",
            "frank@elsewhere.example",
            true,
            plain(
                "alice@example.org",
                "frank@elsewhere.example",
                "Re: Contract draft",
                "agreed\r\n",
            ),
        ),
    ];
    for (day, sender, rcpt, out, message) in mail {
        let id = archive(store, day, sender, rcpt, out, &message).await;
        kept.push((id, message));
    }
    archive(
        store,
        "2026-03-03",
        "news@partner.example",
        "bob@example.org",
        false,
        &plain(
            "news@partner.example",
            "bob@example.org",
            "For Bob only",
            "private\r\n",
        ),
    )
    .await;
    kept
}

fn python(script: String) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("{key} missing in {out}"))
}

#[tokio::test]
async fn mbsync_copies_the_whole_archive_byte_for_byte() {
    let (gw, port, _) = imap_gateway("").await;
    let kept = fill(&gw.store).await;
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount arch\nHost 127.0.0.1\nPort {port}\nUser alice@example.org\nPass \"{PASSWORD}\"\nSSLType STARTTLS\nCertificateFile {}\n\nIMAPStore far\nAccount arch\n\nMaildirStore near\nPath {m}/\nInbox {m}/INBOX\nSubFolders Verbatim\n\nChannel all\nFar :far:\nNear :near:\nPatterns *\nCreate Near\nSync Pull\nExpunge None\nSyncState *\n",
            gw.dir.path().join("tls/cert.pem").display(),
            m = maildir.display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("/usr/bin/mbsync");
    cmd.arg("-c").arg(&rc).arg("-a");
    let out = output(cmd).await;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let mut folders: Vec<String> = std::fs::read_dir(&maildir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders, ["Archive", "INBOX", "Sent"], "{log}");
    let read = |folder: &str| -> Vec<Vec<u8>> {
        let cur = maildir.join(folder).join("cur");
        let new = maildir.join(folder).join("new");
        let mut files: Vec<Vec<u8>> = [cur, new]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| strip_tuid(&std::fs::read(e.path()).unwrap()))
            .collect();
        files.sort();
        files
    };
    let sorted = |ids: &[usize]| {
        let mut v: Vec<Vec<u8>> = ids.iter().map(|&i| lf(&kept[i].1)).collect();
        v.sort();
        v
    };
    assert_eq!(
        read("Archive/2025"),
        sorted(&[0, 1]),
        "received in 2025, byte for byte"
    );
    assert_eq!(read("Archive/2026"), sorted(&[3, 4]));
    assert_eq!(read("Sent/2025"), sorted(&[2]));
    assert_eq!(read("Sent/2026"), sorted(&[5]));
    assert!(
        read("INBOX").is_empty(),
        "nothing queued, nothing delivered lately"
    );
    // A second run finds nothing new: the UIDs and UIDVALIDITY held.
    let mut cmd = std::process::Command::new("/usr/bin/mbsync");
    cmd.arg("-c").arg(&rc).arg("-a");
    let out = output(cmd).await;
    assert!(out.status.success());
    assert_eq!(read("Archive/2026").len(), 2);
    gw.stop().await;
}

/// mbsync marks its copies with an `X-TUID:` line and writes Maildir files with the local line
/// end (LF); everything else is the server's bytes. So the copy is compared with the stored
/// message with its CRLFs made LF (the octets over IMAP are checked exactly by imaplib below).
fn strip_tuid(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in m.split_inclusive(|&b| b == b'\n') {
        if !l.starts_with(b"X-TUID: ") {
            out.extend_from_slice(l);
        }
    }
    out
}

fn lf(m: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(m)
        .replace("\r\n", "\n")
        .into_bytes()
}

#[tokio::test]
async fn imaplib_searches_and_fetches_and_each_person_sees_only_their_own() {
    imaplib_checks("").await;
}

/// The same on PostgreSQL: the folders' SQL, the UID sequence and UIDVALIDITY there.
#[tokio::test]
async fn imaplib_checks_on_postgres() {
    let db = pg::TestDb::create().await;
    imaplib_checks(&format!("[storage]\ndatabase = \"{}\"\n", db.url)).await;
    db.drop_db().await;
}

async fn imaplib_checks(extra: &str) {
    let (gw, port, tls_port) = imap_gateway(extra).await;
    let kept = fill(&gw.store).await;
    let script = format!(
        r#"
import imaplib, ssl, hashlib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4("127.0.0.1", {port})
print("CAPS", " ".join(sorted(M.capabilities)))
try:
    M.login("alice@example.org", "{PASSWORD}"); print("PLAINLOGIN accepted")
except imaplib.IMAP4.error as e:
    print("PLAINLOGIN refused", e)
M.starttls(ssl_context=ctx)
try:
    M.login("alice@example.org", "wrong"); print("WRONG accepted")
except imaplib.IMAP4.error as e:
    print("WRONG refused", e)
M.login("alice@example.org", "{PASSWORD}")
typ, boxes = M.list()
print("LIST", sorted(b.decode().split(' "/" ')[1] for b in boxes))
print("STATUS", M.status('"Archive/2026"', "(MESSAGES UIDVALIDITY UIDNEXT UNSEEN)")[1][0].decode())
typ, data = M.select('"Archive/2026"', readonly=True)
print("SELECT", typ, data[0].decode(), M.response("READ-ONLY")[1])
print("UIDALL", M.uid("SEARCH", "ALL")[1][0].decode())
print("FROM", M.uid("SEARCH", "FROM", "carol@partner.example")[1][0].decode())
print("SUBJECT", M.uid("SEARCH", "SUBJECT", '"contract"')[1][0].decode())
print("SINCE", M.uid("SEARCH", "SINCE", "1-Mar-2026")[1][0].decode())
print("BEFORE", M.uid("SEARCH", "NOT", "SINCE", "1-Mar-2026")[1][0].decode())
print("BODY", M.uid("SEARCH", "BODY", '"draft attached"')[1][0].decode())
print("LARGER", M.search(None, "LARGER", "1000")[1][0].decode())
print("OR", M.search(None, "OR", "FROM", "carol", "SUBJECT", "june")[1][0].decode())
typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("HEADER", repr(data[0][1].decode()))
typ, data = M.fetch("1", "(BODY.PEEK[]<0.20>)")
print("PARTIAL", repr(data[0][1].decode()))
typ, data = M.fetch("1", "(BODY.PEEK[2.MIME] BODY.PEEK[1])")
print("PART1", repr(data[1][1].decode()))
typ, data = M.fetch("1", "(BODYSTRUCTURE ENVELOPE FLAGS)")
print("STRUCT", data[0].decode())
typ, data = M.fetch("1", "(RFC822)")
print("RFC822", hashlib.sha256(data[0][1]).hexdigest())
print("FLAGS", M.fetch("1", "(FLAGS)")[1][0].decode())
print("STORE", *M.store("1", "+FLAGS", "\\Deleted"))
M.logout()
B = imaplib.IMAP4_SSL("127.0.0.1", {tls_port}, ssl_context=ctx)
B.login("bob@example.org", "{PASSWORD}")
print("BOBLIST", sorted(b.decode().split(' "/" ')[1] for b in B.list()[1]))
print("BOBSELECT", *B.select('"Archive/2025"', readonly=True))
B.select('"Archive/2026"', readonly=True)
print("BOBALL", B.uid("SEARCH", "ALL")[1][0].decode())
print("BOBFETCH", B.uid("FETCH", "1:*", "(UID)")[1])
print("BOBFROM", B.uid("SEARCH", "FROM", "carol")[1][0].decode())
B.logout()
"#
    );
    let out = tokio::task::spawn_blocking(move || python(script))
        .await
        .unwrap();
    assert!(
        line(&out, "CAPS").contains("LOGINDISABLED")
            && line(&out, "CAPS").contains("STARTTLS")
            && !line(&out, "CAPS").contains("AUTH=PLAIN"),
        "{out}"
    );
    assert!(
        line(&out, "PLAINLOGIN").starts_with("PLAINLOGIN refused"),
        "no sign-in before TLS: {out}"
    );
    assert!(
        line(&out, "WRONG").contains("refused")
            && line(&out, "WRONG").contains("AUTHENTICATIONFAILED"),
        "{out}"
    );
    assert_eq!(
        line(&out, "LIST"),
        r#"LIST ['"Archive"', '"Archive/2025"', '"Archive/2026"', '"INBOX"', '"Sent"', '"Sent/2025"', '"Sent/2026"']"#
    );
    // UIDs: given in the order of arrival in the archive, per folder ascending.
    let uids: Vec<u32> = line(&out, "UIDALL")[7..]
        .split(' ')
        .map(|u| u.parse().unwrap())
        .collect();
    assert_eq!(uids.len(), 2, "{out}");
    let (contract, june) = (uids[0], uids[1]);
    let validity = gw.store.imap_uidvalidity().await.unwrap();
    assert_eq!(
        line(&out, "STATUS"),
        format!(
            "STATUS \"Archive/2026\" (MESSAGES 2 UIDVALIDITY {validity} UIDNEXT {} UNSEEN 2)",
            june + 1
        )
    );
    // The tagged OK carried [READ-ONLY] (imaplib keeps the code with empty data).
    assert!(
        line(&out, "SELECT").starts_with("SELECT OK 2 [b'']"),
        "{out}"
    );
    assert_eq!(line(&out, "FROM"), format!("FROM {contract}"));
    assert_eq!(
        line(&out, "SUBJECT"),
        format!("SUBJECT {contract}"),
        "the journal's subject search, case-insensitive"
    );
    assert_eq!(line(&out, "SINCE"), format!("SINCE {june}"));
    assert_eq!(line(&out, "BEFORE"), format!("BEFORE {contract}"));
    assert_eq!(line(&out, "BODY"), format!("BODY {contract}"));
    assert_eq!(line(&out, "LARGER"), "LARGER 2");
    assert_eq!(line(&out, "OR"), "OR 1 2");
    assert_eq!(
        line(&out, "HEADER"),
        r"HEADER 'Subject: Contract draft\r\n\r\n'"
    );
    assert_eq!(line(&out, "PARTIAL"), r"PARTIAL 'From: Carol <carol@p'");
    assert_eq!(
        line(&out, "PART1"),
        r"PART1 'Please find the draft attached.'"
    );
    let s = line(&out, "STRUCT");
    assert!(s.contains(r#"BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 31 1 NIL NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "draft.pdf") NIL NIL "BASE64" 12 NIL ("ATTACHMENT" ("FILENAME" "draft.pdf")) NIL NIL) "MIXED" ("BOUNDARY" "sep") NIL NIL NIL)"#), "{s}");
    assert!(s.contains(r#"ENVELOPE ("Mon, 05 Jan 2026 10:00:00 +0000" "Contract draft" (("Carol" NIL "carol" "partner.example"))"#), "{s}");
    assert!(s.contains("FLAGS ()"), "{s}");
    let digest: String = ring::digest::digest(&ring::digest::SHA256, &kept[3].1)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        line(&out, "RFC822"),
        format!("RFC822 {digest}"),
        "the stored octets exactly"
    );
    assert!(
        line(&out, "FLAGS").contains("\\Seen"),
        "reading sets \\Seen for the session: {out}"
    );
    assert!(
        line(&out, "STORE").starts_with("STORE NO [b'[CANNOT] STORE: the archive is read-only"),
        "{out}"
    );
    // Bob: his own folder only; Alice's UIDs are not his.
    assert_eq!(
        line(&out, "BOBLIST"),
        r#"BOBLIST ['"Archive"', '"Archive/2026"', '"INBOX"']"#
    );
    assert_eq!(
        line(&out, "BOBSELECT"),
        "BOBSELECT NO [b'[NONEXISTENT] no such folder']"
    );
    let bob: Vec<u32> = line(&out, "BOBALL")[7..]
        .split(' ')
        .map(|u| u.parse().unwrap())
        .collect();
    assert_eq!(bob.len(), 1);
    assert!(!uids.contains(&bob[0]));
    assert_eq!(
        line(&out, "BOBFETCH"),
        format!("BOBFETCH [b'1 (UID {})']", bob[0]),
        "only his own message, whatever UIDs are asked for"
    );
    assert_eq!(
        line(&out, "BOBFROM"),
        "BOBFROM ",
        "Alice's mail from Carol is not found in Bob's folder"
    );
    gw.stop().await;
}

/// fetchmail over IMAP during an outage: the queued mail is in INBOX.
#[tokio::test]
async fn fetchmail_reads_the_mail_queued_during_an_outage_from_inbox() {
    let (gw, port, _) = imap_gateway("[pop3]\nrecent_days = 0\n").await;
    for i in 0..3 {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "news@partner.example",
                &["alice@example.org"],
                format!("Subject: queued {i}\r\nFrom: news@partner.example\r\n\r\nbody {i}\r\n")
                    .as_bytes(),
            )
            .await;
        assert!(r.contains("queued"), "{r}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = fetchmail::fetch_imap(port, "alice@example.org", PASSWORD, dir.path()).await;
    assert_eq!(code, Some(0), "{log}");
    let files = fetchmail::fetched(dir.path());
    let mut subjects: Vec<String> = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "Subject: queued 0",
            "Subject: queued 1",
            "Subject: queued 2"
        ],
        "{log}"
    );
    assert_eq!(
        gw.store.queue_list(None).await.unwrap().len(),
        3,
        "reading takes nothing out of the queue"
    );
    gw.stop().await;
}

/// A target's sign-in and retrieval over the archive's IMAP are copied, with the message.
#[tokio::test]
async fn a_targets_imap_retrieval_is_copied() {
    let (gw, _, tls_port) = imap_gateway("").await;
    let kept = fill(&gw.store).await;
    let now = sponts::clock::now_us();
    let export = tempfile::tempdir().unwrap();
    gw.store
        .add_order(&sponts::storage::intercept::Order {
            id: "LIMAP".into(),
            reference: "AG Musterstadt LIMAP".into(),
            target: "alice@example.org".into(),
            login: None,
            from_us: now - 3_600_000_000,
            until_us: now + 3_600_000_000,
            deliver: format!("dir:{}", export.path().display()),
            deliver_to: None,
            notes: String::new(),
            created_by: "cli:officer".into(),
            created_us: now,
            ended_us: None,
        })
        .await
        .unwrap();
    gw.reload_orders().await;
    let script = format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4_SSL("127.0.0.1", {tls_port}, ssl_context=ctx)
M.login("alice@example.org", "{PASSWORD}")
M.select('"Sent/2025"', readonly=True)
print("GOT", len(M.fetch("1", "(BODY.PEEK[])")[1][0][1]))
M.logout()
"#
    );
    let out = tokio::task::spawn_blocking(move || python(script))
        .await
        .unwrap();
    assert_eq!(line(&out, "GOT"), format!("GOT {}", kept[2].1.len()));
    let mut copies = Vec::new();
    for _ in 0..100 {
        copies = gw.store.copies(Some("LIMAP"), 10).await.unwrap();
        if copies.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let kinds: Vec<(String, String)> = copies
        .iter()
        .map(|c| (c.service.clone(), c.event.clone()))
        .collect();
    assert!(
        kinds.contains(&("imap".into(), "login".into()))
            && kinds.contains(&("imap".into(), "retrieve".into())),
        "{kinds:?}"
    );
    let retrieve = copies.iter().find(|c| c.event == "retrieve").unwrap();
    assert_eq!(
        retrieve.content_size,
        kept[2].1.len() as i64,
        "the message itself goes with the copy"
    );
    gw.stop().await;
}

/// The protocol's corners over implicit TLS, as a transcript: AUTHENTICATE PLAIN with a
/// continuation, IDLE until DONE, commands out of place, a literal too big, writes refused.
#[tokio::test]
async fn transcript_of_the_protocols_corners() {
    let (gw, _, tls_port) = imap_gateway("").await;
    fill(&gw.store).await;
    let script = format!(
        r#"
import socket, ssl, base64
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {tls_port}), timeout=20))
f = s.makefile("rb")
def say(line):
    s.sendall(line.encode() + b"\r\n")
def upto(tag):
    out = []
    while True:
        l = f.readline().decode().rstrip("\r\n")
        out.append(l)
        if l.startswith(tag + " ") or l.startswith("+"):
            return out
print("GREETING", f.readline().decode().strip())
say("a1 FETCH 1 FLAGS"); print("EARLY", upto("a1")[-1])
say("a2 AUTHENTICATE PLAIN"); print("CONT", upto("a2")[-1])
say(base64.b64encode(b"\0alice@example.org\0{PASSWORD}").decode()); print("AUTH", upto("a2")[-1])
say("a3 FETCH 1 FLAGS"); print("NOSELECT", upto("a3")[-1])
say("a4 EXAMINE Archive/2025"); print("EXAMINE", " | ".join(upto("a4")))
say("a5 IDLE"); print("IDLE", upto("a5")[-1])
say("DONE"); print("DONE", upto("a5")[-1])
say("a6 SEARCH CHARSET KOI8-R ALL"); print("CHARSET", upto("a6")[-1])
say("a7 LOGIN {{99999}}"); print("TOOBIG", upto("a7")[-1])
say("a8 APPEND INBOX {{3}}"); print("APPEND", upto("a8")[-1])
say("a9 COPY 1 INBOX"); print("COPY", upto("a9")[-1])
say("b1 XYZZY"); print("UNKNOWN", upto("b1")[-1])
say("b2 FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (To From Message-ID)] INTERNALDATE)"); print("NOT", " | ".join(upto("b2")))
say("b3 LOGOUT"); print("LOGOUT", " | ".join(upto("b3")))
"#
    );
    let out = tokio::task::spawn_blocking(move || python(script))
        .await
        .unwrap();
    assert!(
        line(&out, "GREETING").starts_with("GREETING * OK [CAPABILITY IMAP4rev1 ")
            && line(&out, "GREETING").contains("AUTH=PLAIN"),
        "{out}"
    );
    assert!(
        line(&out, "EARLY").starts_with("EARLY a1 BAD sign in first"),
        "{out}"
    );
    assert_eq!(line(&out, "CONT"), "CONT + ");
    assert!(line(&out, "AUTH").starts_with("AUTH a2 OK"), "{out}");
    assert!(
        line(&out, "NOSELECT").starts_with("NOSELECT a3 BAD no folder selected"),
        "{out}"
    );
    let examine = line(&out, "EXAMINE");
    assert!(
        examine.contains("* 2 EXISTS")
            && examine.contains("[UIDVALIDITY ")
            && examine.ends_with("a4 OK [READ-ONLY] EXAMINE completed"),
        "{examine}"
    );
    assert_eq!(line(&out, "IDLE"), "IDLE + idling");
    assert_eq!(line(&out, "DONE"), "DONE a5 OK IDLE terminated");
    assert!(
        line(&out, "CHARSET").starts_with("CHARSET a6 NO [BADCHARSET"),
        "{out}"
    );
    assert_eq!(
        line(&out, "TOOBIG"),
        "TOOBIG a7 BAD [TOOBIG] literal too big"
    );
    // APPEND's literal is refused before it is sent: the client gets a NO, not a continuation.
    assert_eq!(
        line(&out, "APPEND"),
        "APPEND a8 NO [CANNOT] APPEND: the archive is read-only"
    );
    assert!(
        line(&out, "COPY").starts_with("COPY a9 NO [CANNOT]"),
        "{out}"
    );
    assert!(line(&out, "UNKNOWN").starts_with("UNKNOWN b1 BAD"), "{out}");
    let not = line(&out, "NOT");
    assert!(
        not.contains("Subject: Spring news")
            && !not.contains("To:")
            && not.contains("INTERNALDATE \"10-Mar-2025 10:00:00 +0000\""),
        "{not}"
    );
    assert!(
        line(&out, "LOGOUT").contains("* BYE")
            && line(&out, "LOGOUT").ends_with("b3 OK LOGOUT completed"),
        "{out}"
    );
    gw.stop().await;
}
