//! The backend's certificate verified against a configured CA (`backend.tls_ca`,
//! `*_proxy.backend_ca`): a backend whose certificate chains to the CA and names its host gets
//! the mail and the logins; one with a certificate from another CA gets nothing, and the client
//! is told to try again later. The SMTP backend is Debian's aiosmtpd with STARTTLS; the POP3 and
//! IMAP backend is Dovecot; both show a certificate for 127.0.0.1 from a CA made by rcgen.

mod common;

use common::agency::{Agency, Pki};
use common::dovecot::Dovecot;
use common::*;

fn backend_config(ca: &std::path::Path) -> String {
    format!(
        "[backend]\nstarttls = \"required\"\ntls_ca = \"{}\"\n",
        ca.display()
    )
}

#[tokio::test]
async fn the_smtp_backend_gets_mail_only_over_a_link_that_verifies() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let backend = Agency::start(&pki, 0);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", backend.port).parse().unwrap();

    // Trusted: the mail reaches the backend over TLS.
    let gw = gateway(addr, &backend_config(&pki.ca)).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let r = c
        .send_mail(
            "a@partner.example",
            &["u@example.org"],
            b"Subject: verified\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    c.expect("QUIT", 221).await;
    let received = backend.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0["tls"], true);
    assert!(String::from_utf8_lossy(&received[0].1).contains("Subject: verified"));
    gw.stop().await;

    // A certificate from another CA: nothing is sent, the client hears "later".
    let gw = gateway(addr, &backend_config(&stranger.ca)).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.cmd("MAIL FROM:<a@partner.example>").await;
    let r = c.cmd("RCPT TO:<u@example.org>").await;
    assert!(
        r.starts_with('4'),
        "a backend that does not verify is a backend that is not there: {r}"
    );
    c.expect("QUIT", 221).await;
    assert_eq!(
        backend.received().len(),
        1,
        "nothing more reached the untrusted backend"
    );
    gw.stop().await;
}

const LOGIN: &str = r#"
import imaplib, poplib, ssl, sys, json
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
pops, imaps = int(sys.argv[1]), int(sys.argv[2])
out = {}
try:
    p = poplib.POP3_SSL("127.0.0.1", pops, context=ctx, timeout=20)
    p.user("other"); p.pass_("other-pass"); out["pop"] = "stat %d %d" % p.stat(); p.quit()
except Exception as e:
    out["pop"] = "failed: %r" % (e,)
try:
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=20)
    m.login("other", "other-pass"); out["imap"] = m.select("INBOX")[0]; m.logout()
except Exception as e:
    out["imap"] = "failed: %r" % (e,)
print(json.dumps(out))
"#;

/// Logs in as the Dovecot user `other` through both proxies' TLS listeners.
async fn log_in(gw: &Gateway) -> serde_json::Value {
    let proxies = &gw.running.as_ref().unwrap().proxies;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(LOGIN)
        .arg(proxies.pop3_tls[0].port().to_string())
        .arg(proxies.imap_tls[0].port().to_string());
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_pop3_and_imap_backends_get_logins_only_over_links_that_verify() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let dovecot = tokio::task::spawn_blocking({
        let (cert, key) = (pki.cert.clone(), pki.key.clone());
        move || Dovecot::start_with(Some((&cert, &key)))
    })
    .await
    .unwrap();
    dovecot.deliver("other", b"Subject: one\r\n\r\nx\r\n");
    let cap = Capture::start(CaptureOptions::default()).await;
    let proxies = |ca: &std::path::Path| {
        format!(
            "[pop3_proxy]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"tls\"\nbackend_ca = \"{ca}\"\n\
             [imap_proxy]\ntls_listen = [\"127.0.0.1:0\"]\nbackend = \"{}\"\nbackend_tls = \"starttls\"\nbackend_ca = \"{ca}\"\n",
            dovecot.pop3s,
            dovecot.imap,
            ca = ca.display()
        )
    };

    let gw = gateway(cap.addr, &proxies(&pki.ca)).await;
    let out = log_in(&gw).await;
    assert!(
        out["pop"].as_str().unwrap().starts_with("stat 1 "),
        "POP3S to the backend, verified: {out}"
    );
    assert_eq!(
        out["imap"], "OK",
        "IMAP STARTTLS to the backend, verified: {out}"
    );
    gw.stop().await;

    let gw = gateway(cap.addr, &proxies(&stranger.ca)).await;
    let out = log_in(&gw).await;
    assert!(
        out["pop"].as_str().unwrap().starts_with("failed"),
        "no password goes to a backend that does not verify: {out}"
    );
    assert!(out["imap"].as_str().unwrap().starts_with("failed"), "{out}");
    gw.stop().await;
}
