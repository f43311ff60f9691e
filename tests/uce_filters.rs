//! The uce module's filters against real peers on loopback: DNS lists and SPF/DMARC answered by
//! a DNS server with a test zone, SpamAssassin's spamd and rspamd, and the built-in learning
//! filter trained with `sponts learn`.

mod common;

use common::peers::{Dns, Engine};
use common::*;
use std::process::Command;

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn msg(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: u@example.org\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n{body}\r\n", sponts::id::new_transaction_id()).into_bytes()
}

#[tokio::test]
async fn dns_lists_refuse_listed_clients_and_links() {
    let dns = Dns::start(
        r#"{"2.0.0.127.bl.test.": [{"type": "A", "value": "127.0.0.2"}], "bad.example.uribl.test.": [{"type": "A", "value": "127.0.0.2"}], "3.0.0.127.wl.test.": [{"type": "A", "value": "127.0.0.10"}], "3.0.0.127.bl.test.": [{"type": "A", "value": "127.0.0.2"}]}"#,
    );
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[uce]\ntarpit_delay = \"0s\"\nresolver = \"{}\"\ndns_timeout = \"10s\"\ndnsbl = [{{ zone = \"bl.test\", weight = 10 }}]\ndnswl = [{{ zone = \"wl.test\", weight = 8 }}]\nuribl = [{{ zone = \"uribl.test\", weight = 10 }}]\n",
        dns.address()
    );
    let gw = gateway(cap.addr, &extra).await;
    // 127.0.0.2 is listed: its recipients "do not exist".
    let mut c = Client::connect_from(gw.addr, "127.0.0.2").await;
    c.expect("EHLO listed.test", 250).await;
    c.expect("MAIL FROM:<a@listed.example>", 250).await;
    let r = c.expect("RCPT TO:<u@example.org>", 550).await;
    assert_eq!(
        r,
        "550 5.1.1 <u@example.org>: Recipient address rejected: User unknown"
    );
    c.expect("QUIT", 221).await;

    // 127.0.0.1 is clean, but the message links to a listed domain: refused after DATA.
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO clean.test", 250).await;
    let reply = c
        .send_mail(
            "a@clean.example",
            &["u@example.org"],
            &msg(
                "a@clean.example",
                "look",
                "see https://www.bad.example/offer now",
            ),
        )
        .await;
    assert!(
        reply.starts_with("550 5.1.1 <u@example.org>: Recipient address rejected: User unknown"),
        "{reply}"
    );
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert_eq!(
        (e.outcome.as_str(), e.decided_by.as_str(), e.flag.as_deref()),
        ("refused", "uce", Some("spam"))
    );
    assert!(
        e.notes
            .as_deref()
            .unwrap()
            .contains("uribl uribl.test bad.example"),
        "{:?}",
        e.notes
    );
    assert!(
        gw.store.body(&e.id).await.unwrap().is_some(),
        "refused spam stays replayable"
    );
    let reply = c
        .send_mail(
            "a@clean.example",
            &["u@example.org"],
            &msg("a@clean.example", "hi", "see https://good.example/"),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    c.expect("QUIT", 221).await;

    // 127.0.0.3 is on the block list and the allow list: the allow list weighs it down to a tag.
    let mut c = Client::connect_from(gw.addr, "127.0.0.3").await;
    c.expect("EHLO both.test", 250).await;
    let reply = c
        .send_mail(
            "a@both.example",
            &["u@example.org"],
            &msg("a@both.example", "hi", "plain"),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert!(
        e.notes
            .as_deref()
            .unwrap()
            .contains("dnsbl bl.test +10.0, dnswl wl.test -8.0"),
        "{:?}",
        e.notes
    );
    gw.stop().await;
}

#[tokio::test]
async fn spf_dmarc_and_iprev_failures_count_and_results_are_recorded() {
    let dns = Dns::start(
        r#"{"forged.example.": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.1 -all"}],
            "_dmarc.forged.example.": [{"type": "TXT", "value": "v=DMARC1; p=reject"}],
            "good.example.": [{"type": "TXT", "value": "v=spf1 ip4:127.0.0.0/8 -all"}]}"#,
    );
    let cap = Capture::start(CaptureOptions::default()).await;
    let extra = format!(
        "[uce]\ntarpit_delay = \"0s\"\nresolver = \"{}\"\n[uce.auth]\nenabled = true\n",
        dns.address()
    );
    let gw = gateway(cap.addr, &extra).await;
    // The same message from 127.0.0.1, whose reverse name leads back to it, and from 127.0.0.3,
    // whose does not: the resolver answers a loopback address's reverse name itself (RFC 6761:
    // `localhost`, which leads back to 127.0.0.1 only). A loopback client is not held to it (no
    // points; only the internet's clients are), the header says it all the same. Which answers
    // count for a public client (none, not aligned, a server failure) is uce::auth's unit test.
    for (n, (client, iprev)) in [
        ("127.0.0.1", "iprev=pass policy.iprev=127.0.0.1"),
        (
            "127.0.0.3",
            "iprev=fail (policy not aligned) policy.iprev=127.0.0.3",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = Client::connect_from(gw.addr, client).await;
        c.expect("EHLO mx.good.example", 250).await;
        let reply = c
            .send_mail(
                "a@good.example",
                &["u@example.org"],
                &msg("a@good.example", "hi", "hello"),
            )
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
        let d = cap.wait_for(n + 1).await;
        let text = String::from_utf8_lossy(&d[n].data).to_string();
        assert!(
            text.contains("Authentication-Results: gw.test.example;")
                && text.contains("spf=pass")
                && text.contains(iprev),
            "{text}"
        );
        let notes = journal_entry(&gw.store, &id_of(&gw.store, &reply).await)
            .await
            .notes
            .unwrap_or_default();
        assert!(!notes.contains("iprev"), "{notes}");
    }
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO mx.good.example", 250).await;
    let reply = c
        .send_mail(
            "boss@forged.example",
            &["u@example.org"],
            &msg("boss@forged.example", "wire money", "now"),
        )
        .await;
    assert!(reply.starts_with("550 5.1.1 "), "{reply}");
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    let notes = e.notes.unwrap();
    assert!(
        notes.contains("spf fail +3.0")
            && notes.contains("dmarc fail p=reject forged.example +10.0")
            && !notes.contains("iprev"),
        "{notes}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_client_greeting_as_us_as_someone_else_or_as_no_host_counts() {
    let cap = Capture::start(CaptureOptions::default()).await;
    // With a resolver: a host of ours that greets as the domain it serves, from the address the
    // domain resolves to, is vindicated.
    let dns = Dns::start(r#"{"example.org.": [{"type": "A", "value": "127.0.0.1"}]}"#);
    let extra = format!(
        "[uce]\ntarpit_delay = \"0s\"\nresolver = \"{}\"\n[uce.auth]\nenabled = true\n",
        dns.address()
    );
    let gw = gateway(cap.addr, &extra).await;
    // (EHLO name, client address, the journal's reason or None, tagged)
    let cases = [
        (
            "gw.test.example",
            "127.0.0.1",
            Some("helo forged (gw.test.example is this gateway) +5.0"),
            true,
        ),
        (
            "example.org",
            "127.0.0.2",
            Some("helo forged (example.org is a domain this gateway receives mail for) +5.0"),
            true,
        ),
        ("example.org", "127.0.0.1", None, false),
        (
            "[203.0.113.9]",
            "127.0.0.1",
            Some("helo forged ([203.0.113.9] is not the client's address) +5.0"),
            true,
        ),
        // No host name at all: counted, not enough to tag on its own.
        (
            "127.0.0.1",
            "127.0.0.1",
            Some("helo invalid (bare address 127.0.0.1, not [127.0.0.1]) +2.0"),
            false,
        ),
        (
            "mx..sender.example",
            "127.0.0.1",
            Some("helo invalid (mx..sender.example is not a host name) +2.0"),
            false,
        ),
        (
            "[mx.sender.example]",
            "127.0.0.1",
            Some("helo invalid ([mx.sender.example] is no address literal) +2.0"),
            false,
        ),
        // Bare and someone else's: both.
        (
            "203.0.113.9",
            "127.0.0.1",
            Some("helo forged (203.0.113.9 is not the client's address) +5.0"),
            true,
        ),
        ("[127.0.0.1]", "127.0.0.1", None, false),
        ("client.test", "127.0.0.1", None, false),
        ("localhost", "127.0.0.1", None, false),
    ];
    for (n, (helo, client, reason, tagged)) in cases.into_iter().enumerate() {
        let (reply, notes) = greeted_as(&gw, helo, client).await;
        assert!(reply.starts_with("250 "), "{helo}: {reply}");
        let d = cap.wait_for(n + 1).await;
        let text = String::from_utf8_lossy(&d[n].data).to_string();
        match reason {
            Some(r) => assert!(notes.contains(r), "{helo}: {notes}"),
            None => assert!(!notes.contains("helo"), "{helo}: {notes}"),
        }
        assert_eq!(
            text.contains("X-Spam-Flag: YES"),
            tagged,
            "{helo}: {notes}: {text}"
        );
    }
    gw.stop().await;

    // Each check can be turned off.
    let gw = gateway(
        cap.addr,
        "[uce]\ntarpit_delay = \"0s\"\nhelo_invalid = 0.0\nhelo_forged = 0.0\n",
    )
    .await;
    let (_, notes) = greeted_as(&gw, "203.0.113.9", "127.0.0.1").await;
    assert!(!notes.contains("helo"), "{notes}");
    gw.stop().await;
}

/// Greets as `helo` from `client` and sends one message: the final reply and the journal's notes.
async fn greeted_as(gw: &Gateway, helo: &str, client: &str) -> (String, String) {
    let mut c = Client::connect_from(gw.addr, client).await;
    c.expect(&format!("EHLO {helo}"), 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &msg("a@sender.example", "hello", "see you"),
        )
        .await;
    let notes = journal_entry(&gw.store, &id_of(&gw.store, &reply).await)
        .await
        .notes
        .unwrap_or_default();
    (reply, notes)
}

#[tokio::test]
async fn spamd_and_rspamd_verdicts_and_fail_open() {
    let spamd = Engine::spamd();
    let rspamd = Engine::rspamd();
    let cap = Capture::start(CaptureOptions::default()).await;
    for (engine, address) in [("spamd", spamd.address()), ("rspamd", rspamd.address())] {
        let extra = format!(
            "[uce]\ntarpit_delay = \"0s\"\n[uce.{engine}]\naddress = \"{address}\"\ntag = 5.0\nreject = 15.0\ntimeout = \"10s\"\n"
        );
        let gw = gateway(cap.addr, &extra).await;
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let reply = c
            .send_mail(
                "a@sender.example",
                &["u@example.org"],
                &msg("a@sender.example", "test", GTUBE),
            )
            .await;
        assert!(
            reply.starts_with("550 5.1.1 <u@example.org>"),
            "{engine}: {reply}"
        );
        let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
        assert!(
            e.notes
                .as_deref()
                .unwrap()
                .contains(&format!("{engine} score")),
            "{engine}: {:?}",
            e.notes
        );
        let reply = c
            .send_mail(
                "a@sender.example",
                &["u@example.org"],
                &msg("a@sender.example", "lunch", "see you at noon"),
            )
            .await;
        assert!(reply.starts_with("250 "), "{engine}: {reply}");
        gw.stop().await;
    }
    // An engine that is down: the mail goes on, the journal says the scan was skipped.
    let extra = format!(
        "[uce]\ntarpit_delay = \"0s\"\n[uce.spamd]\naddress = \"{}\"\ntag = 5.0\nreject = 15.0\n",
        dead_address()
    );
    let gw = gateway(cap.addr, &extra).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "a@sender.example",
            &["u@example.org"],
            &msg("a@sender.example", "test", GTUBE),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    let e = journal_entry(&gw.store, &id_of(&gw.store, &reply).await).await;
    assert!(
        e.notes.as_deref().unwrap().contains("spamd skipped"),
        "{:?}",
        e.notes
    );
    // Every engine call is counted for /metrics: GTUBE found, the ham clean, the dead one an error.
    for engine in ["spamd", "rspamd"] {
        assert_eq!(
            (
                sponts::scanners::calls(engine, "found"),
                sponts::scanners::calls(engine, "clean")
            ),
            (1, 1),
            "{engine}"
        );
    }
    assert_eq!(sponts::scanners::calls("spamd", "error"), 1);
    gw.stop().await;
}

fn sponts(cfg: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sponts {args:?}: {text}");
    text
}

#[tokio::test]
async fn the_learning_filter_learns_from_files_and_from_replays() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = config(
        cap.addr,
        "[uce]\ntarpit_delay = \"0s\"\n[uce.learning]\nmin_messages = 5\n",
    );
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let corpus = tempfile::tempdir().unwrap();
    let (spam, ham) = (corpus.path().join("spam"), corpus.path().join("ham"));
    std::fs::create_dir_all(&spam).unwrap();
    std::fs::create_dir_all(&ham).unwrap();
    let spam_words = [
        "cheap", "pills", "casino", "winner", "bitcoin", "discount", "pharmacy", "lottery",
        "prize", "viagra",
    ];
    let ham_words = [
        "meeting",
        "agenda",
        "project",
        "invoice",
        "minutes",
        "budget",
        "review",
        "schedule",
        "report",
        "colleagues",
    ];
    for i in 0..12 {
        let pick = |w: &[&str]| {
            (0..6)
                .map(|k| w[(i + k * 3) % w.len()])
                .collect::<Vec<_>>()
                .join(" ")
        };
        std::fs::write(
            spam.join(format!("{i}.eml")),
            msg("promo@spam.example", &pick(&spam_words), &pick(&spam_words)),
        )
        .unwrap();
        std::fs::write(
            ham.join(format!("{i}.eml")),
            msg("boss@work.example", &pick(&ham_words), &pick(&ham_words)),
        )
        .unwrap();
    }
    let out = sponts(
        &cfg,
        &[
            "learn",
            "--spam",
            spam.to_str().unwrap(),
            "--ham",
            ham.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("12 learned as spam") && out.contains("12 learned as ham"),
        "{out}"
    );
    let again = sponts(&cfg, &["learn", "--spam", spam.to_str().unwrap()]);
    assert!(
        again.contains("0 learned as spam, 12 already known"),
        "{again}"
    );

    let gw = start_with(config.clone(), dir).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let reply = c
        .send_mail(
            "x@spam.example",
            &["u@example.org"],
            &msg(
                "x@spam.example",
                "casino winner prize",
                "cheap pills lottery bitcoin discount",
            ),
        )
        .await;
    // Word for word what an unknown user gets at RCPT: no `id=` tail to tell the two apart.
    assert_eq!(
        reply,
        "550 5.1.1 <u@example.org>: Recipient address rejected: User unknown"
    );
    let spam_id = id_of(&gw.store, &reply).await;
    let e = journal_entry(&gw.store, &spam_id).await;
    assert!(
        e.notes.as_deref().unwrap().contains("bayes"),
        "{:?}",
        e.notes
    );
    let reply = c
        .send_mail(
            "boss@work.example",
            &["u@example.org"],
            &msg(
                "boss@work.example",
                "project meeting agenda",
                "budget review schedule",
            ),
        )
        .await;
    assert!(reply.starts_with("250 "), "{reply}");

    // The user wants the refused message after all: it is delivered and learned as ham.
    let (before_spam, before_ham) = gw.store.learned_totals().await.unwrap();
    let r = sponts::replay::replay(&config, &gw.store, &spam_id, None, "web:u@example.org")
        .await
        .unwrap();
    assert!(r.delivered, "{r:?}");
    assert_eq!(
        gw.store.learned_totals().await.unwrap(),
        (before_spam, before_ham + 1)
    );
    gw.stop().await;
}

#[test]
fn cli_snippet_traps_penalties_and_disposables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(&cfg, format!("[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\"]\n[uce]\ntraps = [\"bait@example.org\"]\n", dir.path().display())).unwrap();
    let html = sponts(
        &cfg,
        &[
            "snippet",
            "alice@example.org",
            "--trap",
            "spider-food@example.org",
        ],
    );
    assert!(
        !html.contains("alice@example.org") && html.contains("&#97;&#108;"),
        "{html}"
    );
    assert!(html.contains("mailto:spider-food@example.org"), "{html}");
    sponts(&cfg, &["trap", "add", "Honey-*@example.org"]);
    let traps = sponts(&cfg, &["trap", "list"]);
    assert!(
        traps.contains("bait@example.org\t(config)") && traps.contains("honey-*@example.org"),
        "{traps}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["trap", "add", "nonsense"])
        .env("SPONTS_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(
        !bad.status.success()
            && String::from_utf8_lossy(&bad.stderr)
                .contains("is not an address or address pattern")
    );
    sponts(&cfg, &["trap", "del", "honey-*@example.org"]);
    assert!(!sponts(&cfg, &["trap", "list"]).contains("honey"));
    let unknown = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["disposable", "lock", "shop.3.u@example.org"])
        .env("SPONTS_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no such disposable address has been used yet")
    );
    let not = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["disposable", "lock", "u@example.org"])
        .env("SPONTS_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&not.stderr).contains("is not a disposable address"));
    assert!(sponts(&cfg, &["penalty", "list"]).starts_with("IP"));
}

#[test]
fn cli_sender_lists() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    sponts(
        &cfg,
        &["sender", "block", "--owner", "@example.org", "Junk.example"],
    );
    sponts(
        &cfg,
        &[
            "sender",
            "allow",
            "--owner",
            "alice@example.org",
            "friend@junk.example",
        ],
    );
    let all = sponts(&cfg, &["sender", "list"]);
    assert!(
        all.contains("@example.org")
            && all.contains("junk.example")
            && all.contains("block")
            && all.contains("friend@junk.example"),
        "{all}"
    );
    let alice = sponts(
        &cfg,
        &["sender", "list", "--owner", "alice@example.org", "--json"],
    );
    let entry: serde_json::Value = serde_json::from_str(alice.trim()).unwrap();
    assert_eq!(
        (
            entry["pattern"].as_str(),
            entry["verdict"].as_str(),
            entry["created_by"].as_str()
        ),
        (Some("friend@junk.example"), Some("allow"), Some("cli"))
    );
    let fails = |args: &[&str], says: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
            .args(args)
            .env("SPONTS_CONFIG", &cfg)
            .output()
            .unwrap();
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    fails(
        &[
            "sender",
            "block",
            "--owner",
            "@elsewhere.example",
            "junk.example",
        ],
        "is not at one of our domains",
    );
    fails(
        &["sender", "block", "--owner", "@example.org", "not a sender"],
        "is neither a sender address",
    );
    fails(
        &[
            "sender",
            "del",
            "--owner",
            "bob@example.org",
            "junk.example",
        ],
        "bob@example.org's list has no entry junk.example",
    );
    sponts(
        &cfg,
        &["sender", "del", "--owner", "@example.org", "junk.example"],
    );
    assert!(
        !sponts(&cfg, &["sender", "list"])
            .lines()
            .any(|l| l.starts_with("@example.org"))
    );
}

#[tokio::test]
async fn the_smtp_callback_counts_clients_that_do_not_answer_smtp() {
    let cap = Capture::start(CaptureOptions::default()).await;
    // The "client's own mail server" is looked for on this port of the client's address.
    let answers =
        Capture::start_on("127.0.0.5:0".parse().unwrap(), CaptureOptions::default()).await;
    for (port, expect_points) in [(dead_address().port(), true), (answers.addr.port(), false)] {
        let extra = format!(
            "[uce]\ntarpit_delay = \"0s\"\n[uce.callback]\nenabled = true\nport = {port}\ntimeout = \"10s\"\nweight = 3.0\n"
        );
        let gw = gateway(cap.addr, &extra).await;
        // From another address than sponts' own (sponts never probes itself).
        let mut c = Client::connect_from(gw.addr, "127.0.0.5").await;
        c.expect("EHLO client.test", 250).await;
        let reply = c
            .send_mail(
                "a@sender.example",
                &["u@example.org"],
                &msg("a@sender.example", "hi", "hello"),
            )
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
        let notes = journal_entry(&gw.store, &id_of(&gw.store, &reply).await)
            .await
            .notes
            .unwrap();
        assert_eq!(
            notes.contains("callback none +3.0"),
            expect_points,
            "port {port}: {notes}"
        );
        assert_eq!(
            gw.store.callback_cached("127.0.0.5").await.unwrap(),
            Some(!expect_points),
            "cached"
        );
        // A client on sponts' own address is not probed.
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let reply = c
            .send_mail(
                "a@sender.example",
                &["u@example.org"],
                &msg("a@sender.example", "hi", "hello"),
            )
            .await;
        assert!(
            !journal_entry(&gw.store, &id_of(&gw.store, &reply).await)
                .await
                .notes
                .unwrap()
                .contains("callback")
        );
        assert_eq!(gw.store.callback_cached("127.0.0.1").await.unwrap(), None);
        gw.stop().await;
    }
}

/// `sponts learn` takes mail as people keep it: a folder of symlinks to message files, an mbox
/// file, a Maildir (cur/ and new/, not tmp/). It says what it skipped and why, and a path with
/// nothing to learn is an error, not a silent "0 learned".
#[test]
fn learn_reads_symlinked_folders_mbox_files_and_maildirs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let corpus = dir.path().join("corpus");
    let (files, links) = (corpus.join("files"), corpus.join("links"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&links).unwrap();
    for i in 0..5 {
        std::fs::write(
            files.join(format!("{i}.eml")),
            msg(
                "promo@spam.example",
                &format!("cheap pills {i}"),
                "casino winner",
            ),
        )
        .unwrap();
        std::os::unix::fs::symlink(files.join(format!("{i}.eml")), links.join(format!("{i}")))
            .unwrap();
    }
    std::os::unix::fs::symlink(corpus.join("missing.eml"), links.join("broken")).unwrap();
    std::fs::write(links.join("notes.txt"), "just some words, no mail").unwrap();
    let out = sponts(&cfg, &["learn", "--spam", links.to_str().unwrap()]);
    assert!(out.contains("5 learned as spam, 0 already known; skipped: 1 broken links or unreadable entries, 1 files that are no mail message"), "{out}");

    let mut mbox = Vec::new();
    for i in 0..4 {
        mbox.extend_from_slice(
            format!("From boss@work.example Mon Jan  1 00:00:0{i} 2024\n").as_bytes(),
        );
        mbox.extend_from_slice(&msg(
            "boss@work.example",
            &format!("agenda {i}"),
            "budget review\r\n>From the minutes",
        ));
        mbox.extend_from_slice(b"\n");
    }
    std::fs::write(corpus.join("ham.mbox"), &mbox).unwrap();
    let maildir = corpus.join("Maildir");
    for (sub, n) in [("cur", 3), ("new", 2), ("tmp", 1)] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
        for i in 0..n {
            std::fs::write(
                maildir
                    .join(sub)
                    .join(format!("1700000000.{sub}{i}.host:2,S")),
                msg(
                    "lena@customer.example",
                    &format!("order {sub} {i}"),
                    "delivery date",
                ),
            )
            .unwrap();
        }
    }
    let out = sponts(
        &cfg,
        &["learn", "--ham", corpus.join("ham.mbox").to_str().unwrap()],
    );
    assert!(out.contains("4 learned as ham"), "{out}");
    let out = sponts(&cfg, &["learn", "--ham", maildir.to_str().unwrap()]);
    assert!(
        out.contains("5 learned as ham")
            && out.contains("the filter knows 5 spam and 9 ham messages"),
        "cur/ and new/, never tmp/: {out}"
    );

    let nothing = dir.path().join("nothing");
    std::fs::create_dir_all(&nothing).unwrap();
    std::fs::write(nothing.join("photo.jpg"), b"\xff\xd8\xff\xe0 binary").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(["learn", "--spam", nothing.to_str().unwrap()])
        .env("SPONTS_CONFIG", &cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success()
            && text.contains("nothing could be learned")
            && text.contains("1 files that are no mail message"),
        "{text}"
    );
}
