//! Replay: the kept message delivered again, byte-exact under one documented trace header,
//! journaled with who asked; and the CLI for users and replays.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

const MSG: &[u8] = b"From: a@sender.example\r\nSubject: lost in the mailbox\r\n\r\nplease replay\r\n.starts with a dot\r\n";

async fn deliver(gw: &Gateway, rcpts: &[&str]) -> String {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c.send_mail("a@sender.example", rcpts, MSG).await;
    c.expect("QUIT", 221).await;
    assert!(r.starts_with("250") || r.starts_with("554"), "{r}");
    reply_id(&r)
}

#[tokio::test]
async fn replay_delivers_the_original_bytes_under_a_trace_header() {
    let cap = Capture::start(CaptureOptions {
        unknown: ["gone@example.org".to_string()].into(),
        ..Default::default()
    })
    .await;
    let (config, dir) = config(cap.addr, "");
    let gw = start_with(config.clone(), dir).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@sender.example>", 250).await;
    c.expect("RCPT TO:<u@example.org>", 250).await;
    c.expect("RCPT TO:<gone@example.org>", 550).await;
    c.expect("RCPT TO:<v@example.net>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&common::client::stuff(MSG)).await;
    c.send(b".\r\n").await;
    let id = reply_id(&c.reply().await);

    let r = sponts::replay::replay(&config, &gw.store, &id, None, "cli:tester")
        .await
        .unwrap();
    assert!(r.delivered, "{r:?}");
    assert_eq!(
        r.recipients
            .iter()
            .map(|x| x.address.as_str())
            .collect::<Vec<_>>(),
        vec!["u@example.org", "v@example.net"],
        "only the accepted ones"
    );
    let d = cap.wait_for(2).await;
    assert_eq!(d[1].rcpts, vec!["u@example.org", "v@example.net"]);
    assert_eq!(
        d[1].mail,
        format!("<a@sender.example> SIZE={}", d[1].data.len())
    );
    let text = String::from_utf8(d[1].data.clone()).unwrap();
    let header_end = text
        .find("\r\n\t")
        .map(|p| p + text[p + 3..].find("\r\n").unwrap() + 5)
        .unwrap();
    let (trace, rest) = text.split_at(header_end);
    assert!(
        trace.starts_with(&format!(
            "X-Sponts-Replay: of={id}; id={}; by=cli:tester;\r\n\t",
            r.id
        )),
        "{trace}"
    );
    assert_eq!(rest.as_bytes(), MSG, "byte-exact below the trace header");

    let e = journal_entry(&gw.store, &r.id).await;
    assert_eq!(e.replay_of.as_deref(), Some(id.as_str()));
    assert_eq!(e.actor.as_deref(), Some("cli:tester"));
    assert_eq!(
        (e.outcome.as_str(), e.decided_by.as_str()),
        ("delivered", "replay")
    );
    assert_eq!(e.subject.as_deref(), Some("lost in the mailbox"));
    gw.stop().await;
}

#[tokio::test]
async fn replay_to_one_address_must_stay_local() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = config(cap.addr, "");
    let gw = start_with(config.clone(), dir).await;
    let id = deliver(&gw, &["u@example.org"]).await;
    for bad in [
        "x@elsewhere.example",
        "x%elsewhere.example@example.org",
        "nonsense",
    ] {
        let e = sponts::replay::replay(&config, &gw.store, &id, Some(bad), "cli:t")
            .await
            .unwrap_err();
        assert!(
            matches!(e, sponts::replay::ReplayError::NotLocal(_)),
            "{bad}: {e}"
        );
    }
    let r = sponts::replay::replay(&config, &gw.store, &id, Some("boss@example.net"), "cli:t")
        .await
        .unwrap();
    assert!(r.delivered);
    assert_eq!(cap.wait_for(2).await[1].rcpts, vec!["boss@example.net"]);
    let e = sponts::replay::replay(&config, &gw.store, "NOSUCHID", None, "cli:t")
        .await
        .unwrap_err();
    assert!(matches!(e, sponts::replay::ReplayError::NotFound(_)));
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_message_can_be_replayed_once_the_backend_wants_it() {
    let refusing = Capture::start(CaptureOptions {
        data_reply: Some("554 5.7.1 Looks like spam".into()),
        ..Default::default()
    })
    .await;
    let (config, dir) = config(refusing.addr, "");
    let gw = start_with(config, dir).await;
    let id = deliver(&gw, &["u@example.org"]).await;
    assert_eq!(journal_entry(&gw.store, &id).await.outcome, "refused");
    let accepting = Capture::start(CaptureOptions::default()).await;
    let (config2, _dir2) = common::config(accepting.addr, "");
    let r = sponts::replay::replay(&config2, &gw.store, &id, None, "cli:t")
        .await
        .unwrap();
    assert!(r.delivered, "{r:?}");
    assert!(accepting.wait_for(1).await[0].data.ends_with(MSG));
    gw.stop().await;
}

fn sponts(cfg: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn cli_users_and_replays() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = config(cap.addr, "");
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n",
            cap.addr,
            dir.path().display()
        ),
    )
    .unwrap();
    let gw = start_with(config, dir).await;

    let run = |args: &'static [&'static str], stdin: Option<&'static str>| {
        let cfg = cfg.clone();
        async move {
            tokio::task::spawn_blocking(move || sponts(&cfg, args, stdin))
                .await
                .unwrap()
        }
    };
    let (ok, out) = run(
        &["user", "add", "Alice@Example.org", "--password-stdin"],
        Some("correct horse battery\n"),
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(
        &[
            "user",
            "add",
            "boss@example.org",
            "--admin",
            "--password-stdin",
        ],
        Some("another good one\n"),
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(
        &["user", "add", "alice@example.org", "--password-stdin"],
        Some("whatever123\n"),
    )
    .await;
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = run(
        &["user", "add", "carol@example.org", "--password-stdin"],
        Some("short\n"),
    )
    .await;
    assert!(!ok && out.contains("at least 8"), "{out}");
    let (ok, out) = run(
        &["user", "alias", "alice@example.org", "sales@example.org"],
        None,
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = run(&["user", "list"], None).await;
    assert!(ok);
    assert_eq!(
        out,
        "user   alice@example.org  (also sales@example.org)\nadmin  boss@example.org\n"
    );
    let alice = gw.store.user("alice@example.org").await.unwrap().unwrap();
    assert!(sponts::auth::verify_password(
        "correct horse battery",
        Some(&alice.password_hash)
    ));
    let (ok, _) = run(
        &["user", "passwd", "alice@example.org", "--password-stdin"],
        Some("a new password\n"),
    )
    .await;
    assert!(ok);
    let alice = gw.store.user("alice@example.org").await.unwrap().unwrap();
    assert!(sponts::auth::verify_password(
        "a new password",
        Some(&alice.password_hash)
    ));
    let (ok, out) = run(&["user", "del", "nobody@example.org"], None).await;
    assert!(!ok && out.contains("no user"), "{out}");

    // Three messages for alice, one for bob; a bulk replay re-delivers alice's three to her only.
    for rcpts in [
        &["alice@example.org", "bob@example.org"][..],
        &["alice@example.org"],
        &["bob@example.org"],
        &["alice@example.org"],
    ] {
        deliver(&gw, rcpts).await;
    }
    cap.wait_for(4).await;
    let (ok, out) = run(
        &[
            "replay",
            "--rcpt",
            "alice@example.org",
            "--since",
            "1h",
            "--json",
        ],
        None,
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("replayed 3 of 3 messages to alice@example.org"),
        "{out}"
    );
    let d = cap.wait_for(7).await;
    assert_eq!(d.len(), 7);
    assert!(d[4..].iter().all(|m| m.rcpts == vec!["alice@example.org"]));

    let first = gw
        .store
        .query_journal(&sponts::storage::JournalFilter {
            rcpt: Some("bob@".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let bob_only = first
        .iter()
        .find(|e| e.recipients.len() == 1 && e.replay_of.is_none())
        .unwrap()
        .id
        .clone();
    let (ok, out) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            sponts(
                &cfg,
                &["replay", "--id", &bob_only, "--to", "alice@example.org"],
                None,
            )
        }
    })
    .await
    .unwrap();
    assert!(ok && out.starts_with("replayed "), "{out}");
    let (ok, out) = run(&["replay", "--id", "NOSUCH"], None).await;
    assert!(!ok && out.contains("no transaction NOSUCH"), "{out}");
    let (ok, out) = run(&["replay", "--rcpt", "alice@example.org"], None).await;
    assert!(!ok && out.contains("--since"), "{out}");
    gw.stop().await;
}

/// A replay from the command line names the account that ran it: `SUDO_USER` under sudo, else
/// the real uid's name — never `$USER`, which anyone sets (and runuser sets to the service
/// account), and never `unknown` when it is missing.
#[tokio::test]
async fn cli_replays_name_the_invoking_account_not_user() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = config(cap.addr, "");
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(&cfg, format!("[backend]\naddress = \"{}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n", cap.addr, dir.path().display())).unwrap();
    let gw = start_with(config, dir).await;
    let id = deliver(&gw, &["alice@example.org"]).await;
    // Who this test runs as: the session's login account if the kernel knows one, else the uid's.
    let login = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|u| u != "4294967295");
    let me = {
        let mut id_un = Command::new("id");
        id_un.arg("-un");
        if let Some(uid) = &login {
            id_un.arg(uid);
        }
        String::from_utf8(output(id_un).await.stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    let cases: [(&[(&str, &str)], String); 4] = [
        (&[], me.clone()),
        (&[("USER", "mallory")], me.clone()),
        (
            &[("SUDO_USER", "alice")],
            if login.is_some() {
                me.clone()
            } else {
                "alice".into()
            },
        ),
        (&[("SUDO_USER", "x\r\nX-Injected: 1")], me.clone()),
    ];
    for (env, who) in cases {
        let mut run = Command::new(env!("CARGO_BIN_EXE_sponts"));
        run.args(["replay", "--id", &id, "--json"])
            .env("SPONTS_CONFIG", &cfg)
            .env_remove("USER")
            .env_remove("SUDO_USER");
        for (k, v) in env {
            run.env(k, v);
        }
        let out = output(run).await;
        assert!(
            out.status.success(),
            "{env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let e = journal_entry(&gw.store, replayed["id"].as_str().unwrap()).await;
        assert_eq!(
            e.actor.as_deref(),
            Some(format!("cli:{who}").as_str()),
            "{env:?}"
        );
    }
    gw.stop().await;
}
