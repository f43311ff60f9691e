//! Running the real fetchmail against sponts' POP3 (STLS, certificate not checked, messages kept
//! on the server, UIDL remembered in the given directory) or its IMAP (STARTTLS, all messages).

use std::path::{Path, PathBuf};

/// Fetches the new mail of `user` into `dir/mail/`; returns fetchmail's exit code and stderr.
pub async fn fetch(
    pop3_port: u16,
    user: &str,
    password: &str,
    dir: &Path,
) -> (Option<i32>, String) {
    fetch_with(
        &format!("service {pop3_port} protocol pop3 uidl"),
        "keep",
        user,
        password,
        dir,
    )
    .await
}

/// The same over IMAP: every message of INBOX (`fetchall`: the archive keeps no \Seen flags).
pub async fn fetch_imap(
    imap_port: u16,
    user: &str,
    password: &str,
    dir: &Path,
) -> (Option<i32>, String) {
    fetch_with(
        &format!("service {imap_port} protocol imap"),
        "keep fetchall",
        user,
        password,
        dir,
    )
    .await
}

async fn fetch_with(
    service: &str,
    options: &str,
    user: &str,
    password: &str,
    dir: &Path,
) -> (Option<i32>, String) {
    assert!(
        Path::new("/usr/bin/fetchmail").exists(),
        "fetchmail is needed (scripts/test installs it)"
    );
    let maildir = dir.join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let rc: PathBuf = dir.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\nset idfile \"{}/fetchids\"\npoll 127.0.0.1 {service}\n  user \"{user}\" password \"{password}\"\n  sslproto \"tls1.2+\" no sslcertck {options}\n  mda \"/bin/sh -c 'cat > {}/msg.$(date +%s%N)'\"\n",
            dir.display(),
            maildir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let home = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/fetchmail")
            .arg("-f")
            .arg(&rc)
            .arg("--nodetach")
            .env("FETCHMAILHOME", &home)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The files fetchmail delivered so far.
pub fn fetched(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("mail"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
