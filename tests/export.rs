//! `sponts export`: a person's kept mail — received, sent, and to their aliases, nobody else's —
//! as an mbox and as a zip of `.eml` files, read back by Python's `mailbox` and `zipfile`, byte
//! for byte against the backup.

mod common;

use common::*;
use std::process::Command;

async fn send(gw: &Gateway, from: &str, to: &str, body: &str) -> String {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c.send_mail(from, &[to], body.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
    reply_id(&r)
}

fn python(script: &str, arg: &std::path::Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_persons_mail_exports_as_mbox_and_as_a_zip_of_eml_files() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, "[smtp]\nrelay_networks = [\"127.0.0.0/8\"]\n").await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    gw.store
        .add_alias("alice@example.org", "sales@example.org")
        .await
        .unwrap();
    let mine = [
        send(&gw, "p@partner.example", "alice@example.org", "Subject: one\r\nMessage-ID: <1@p>\r\n\r\nhello\r\n").await,
        send(&gw, "p@partner.example", "sales@example.org", "Subject: to the alias\r\nMessage-ID: <2@p>\r\n\r\nan offer\r\n").await,
        send(&gw, "alice@example.org", "x@elsewhere.example", "Subject: sent by her\r\nMessage-ID: <3@p>\r\n\r\nout\r\n").await,
        send(&gw, "p@partner.example", "alice@example.org", "Subject: quoting\r\nMessage-ID: <4@p>\r\n\r\nFrom the start of a line\r\n>From quoted already\r\n").await,
    ];
    send(
        &gw,
        "p@partner.example",
        "bob@example.org",
        "Subject: not hers\r\nMessage-ID: <5@p>\r\n\r\nbob's\r\n",
    )
    .await;
    // Her mail to another domain went out through the queue, not to the backend.
    cap.wait_for(4).await;
    let mut kept = Vec::new();
    for id in &mine {
        let body = gw.store.body(id).await.unwrap().unwrap();
        kept.push(String::from_utf8(sponts::modules::backup::decompress(&body).unwrap()).unwrap());
    }

    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[domains]\nlocal = [\"example.org\"]\n",
            gw.dir.path().display()
        ),
    )
    .unwrap();
    let export = |format: &str, out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_sponts"))
            .args([
                "export",
                "--user",
                "Alice@example.org",
                "--format",
                format,
                "--out",
            ])
            .arg(out)
            .env("SPONTS_CONFIG", &cfg)
            .output()
            .unwrap()
    };

    let zip = work.path().join("alice.zip");
    let out = export("eml-zip", &zip);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("4 messages of Alice@example.org"),
        "{out:?}"
    );
    let entries = python(
        "import sys, json, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(json.dumps([[i.filename, z.read(i).decode()] for i in z.infolist()]))",
        &zip,
    );
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    for (entry, (id, message)) in entries.iter().zip(mine.iter().zip(&kept)) {
        assert!(
            entry[0].as_str().unwrap().ends_with(&format!("-{id}.eml")),
            "oldest first: {entry}"
        );
        assert_eq!(entry[1].as_str().unwrap(), message, "byte for byte");
    }
    let again = export("eml-zip", &zip);
    assert!(
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("never overwritten")
    );

    let mbox = work.path().join("alice.mbox");
    assert!(export("mbox", &mbox).status.success());
    let read = python(
        "import sys, json, mailbox\nmb = mailbox.mbox(sys.argv[1])\nprint(json.dumps([mb.get_bytes(k).decode() for k in mb.keys()]))",
        &mbox,
    );
    let read = read.as_array().unwrap();
    assert_eq!(read.len(), 4, "{read:?}");
    for (got, message) in read.iter().zip(&kept).take(3) {
        assert_eq!(got.as_str().unwrap(), message);
    }
    // mboxrd: a `From ` line gets one more `>`, which sponts' own mbox reader (`sponts learn`) takes off.
    assert_eq!(
        read[3].as_str().unwrap(),
        kept[3]
            .replace("\r\nFrom the start", "\r\n>From the start")
            .replace("\r\n>From quoted", "\r\n>>From quoted")
    );
    assert!(
        !std::fs::read_to_string(&mbox).unwrap().contains("bob's"),
        "nobody else's mail"
    );
    gw.stop().await;
}
