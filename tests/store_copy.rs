//! `sponts backup DIR` while sponts runs and `sponts restore DIR` into an empty data directory on
//! "another machine": the copy holds the journal, the kept messages and the accounts — search and
//! replay work on it — and restore never overwrites a store.

mod common;

use common::*;
use std::process::Command;

fn sponts(cfg: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn config_file(
    dir: &std::path::Path,
    data: &std::path::Path,
    backend: std::net::SocketAddr,
) -> std::path::PathBuf {
    let cfg = dir.join("sponts.toml");
    std::fs::write(&cfg, format!("[backend]\naddress = \"{backend}\"\nstarttls = \"off\"\n[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n", data.display())).unwrap();
    cfg
}

#[tokio::test]
async fn a_backup_taken_while_running_restores_on_a_fresh_machine() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let old = tempfile::tempdir().unwrap();
    let (first, dir) = config(
        cap.addr,
        &format!("[storage]\ndata_dir = \"{}\"\n", old.path().display()),
    );
    let gw = start_with(first, dir).await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    let mut ids = Vec::new();
    for subject in ["Quarterly invoice", "Minutes", "Holiday plans"] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail(
                "a@partner.example",
                &["alice@example.org"],
                format!("Subject: {subject}\r\n\r\nbody of {subject}\r\n").as_bytes(),
            )
            .await;
        ids.push(reply_id(&r));
    }
    let originals = cap.wait_for(3).await;

    // Online: the gateway keeps running.
    let work = tempfile::tempdir().unwrap();
    let cfg_old = config_file(work.path(), old.path(), cap.addr);
    let copy = work.path().join("copy");
    let (ok, out) = sponts(&cfg_old, &["backup", copy.to_str().unwrap()]);
    assert!(
        ok && out.contains("backup written to")
            && copy.join("sponts.db").is_file()
            && copy.join("tls/cert.pem").is_file(),
        "{out}"
    );
    let (ok, out) = sponts(&cfg_old, &["backup", copy.to_str().unwrap()]);
    assert!(
        !ok && out.contains("exists already"),
        "a backup never overwrites another: {out}"
    );
    gw.stop().await;

    // The new machine: an empty data directory.
    let new = tempfile::tempdir().unwrap();
    let data = new.path().join("data");
    let cfg_new = config_file(new.path(), &data, cap.addr);
    let (ok, out) = sponts(&cfg_new, &["restore", copy.to_str().unwrap()]);
    assert!(ok && out.contains("1 account(s)"), "{out}");
    let (ok, out) = sponts(&cfg_new, &["restore", copy.to_str().unwrap()]);
    assert!(
        !ok && out.contains("restore goes into an empty data directory"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(data.join("tls/cert.pem")).unwrap(),
        std::fs::read(copy.join("tls/cert.pem")).unwrap()
    );

    let (restored, dir) = config(
        cap.addr,
        &format!("[storage]\ndata_dir = \"{}\"\n", data.display()),
    );
    let gw = start_with(restored.clone(), dir).await;
    let found = gw
        .store
        .query_journal(&sponts::storage::JournalFilter {
            text: Some("invoice".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str()],
        "search works on the copy"
    );
    sponts::replay::replay(&restored, &gw.store, &ids[0], None, "cli:test")
        .await
        .unwrap();
    let all = cap.wait_for(4).await;
    let replayed = String::from_utf8_lossy(&all[3].data).to_string();
    let sent = "Subject: Quarterly invoice\r\n\r\nbody of Quarterly invoice\r\n";
    assert!(String::from_utf8_lossy(&originals[0].data).ends_with(sent));
    assert!(
        replayed.ends_with(sent) && all[3].rcpts == ["alice@example.org"],
        "the kept message, byte for byte, under its trace header: {replayed}"
    );
    gw.stop().await;
}

#[test]
fn postgresql_is_backed_up_with_its_own_tools() {
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("sponts.toml");
    let url = std::env::var("SPONTS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    std::fs::write(&cfg, format!("[storage]\ndata_dir = \"{}\"\ndatabase = \"{url}\"\n[domains]\nlocal = [\"example.org\"]\n", work.path().display())).unwrap();
    let (ok, out) = sponts(&cfg, &["restore", work.path().to_str().unwrap()]);
    assert!(!ok && out.contains("pg_restore"), "{out}");
}
