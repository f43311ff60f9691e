//! The API keeps its contract: Schemathesis (from PyPI) reads docs/openapi.yaml and fuzzes a
//! running gateway with an admin's and a user's token. Any 5xx, an answer the spec does not
//! describe (status, content type, body schema), or bad input that is accepted fails the test.

mod common;

use common::http::login;
use common::*;
use std::process::Command;

/// Examples per operation and phase: enough to find what the spec and the code disagree on,
/// few enough to stay well under a minute per token. `SPONTS_CONTRACT_EXAMPLES=500` digs deeper.
fn examples() -> String {
    std::env::var("SPONTS_CONTRACT_EXAMPLES").unwrap_or_else(|_| "25".into())
}

const WITH_ATTACHMENT: &str = "From: shop@partner.example\r\nTo: alice@example.org\r\nSubject: your invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/pdf; name=invoice.pdf\r\nContent-Disposition: attachment; filename=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

/// Schemathesis' command line (run as a module: it does not depend on where pip put `st`), or a
/// clear word on how to get it.
fn schemathesis() -> Command {
    let st = || {
        let mut c = Command::new("python3");
        c.args(["-m", "schemathesis.cli"]);
        c
    };
    let found = st()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "Schemathesis is needed for this test: `python3 -m pip install schemathesis==4.32.5` (scripts/test installs it)"
    );
    st()
}

/// One fuzzing run with `token`; the test fails with Schemathesis' report.
async fn fuzz(web: std::net::SocketAddr, who: &str, token: &str, report: &std::path::Path) {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let mut st = schemathesis();
    st.args(["run", spec, "--url", &format!("http://{web}")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Signing out would end the token's session half-way through the run.
        .args(["--exclude-path", "/api/v1/logout"])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,unsupported_method"])
        // One worker: Python 3.11's `ast.parse` is not thread-safe, and Hypothesis calls it.
        .args(["--max-examples", &examples(), "--seed", "1", "--workers", "1", "--request-timeout", "10"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--report-dir")
        .arg(report)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(report);
    let out = output(st).await;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Schemathesis found the API and docs/openapi.yaml disagreeing ({who}'s token):\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_openapi_contract_under_fuzzing_on_sqlite() {
    contract("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_openapi_contract_under_fuzzing_on_postgres() {
    let db = common::pg::TestDb::create().await;
    contract(&format!("[storage]\ndatabase = \"{}\"\n", db.url)).await;
    db.drop_db().await;
}

/// A gateway on the store of `extra` with some mail in it, fuzzed with both tokens.
async fn contract(extra: &str) {
    let cap = Capture::start(CaptureOptions::default()).await;
    let gw = gateway(cap.addr, extra).await;
    add_user(&gw.store, "alice@example.org", sponts::storage::Role::User).await;
    add_user(&gw.store, "admin@example.org", sponts::storage::Role::Admin).await;
    for (rcpt, body) in [
        (
            "alice@example.org",
            "Subject: hello alice\r\n\r\nhello\r\n".to_string(),
        ),
        (
            "bob@example.org",
            "Subject: for bob\r\n\r\nhello\r\n".to_string(),
        ),
        ("alice@example.org", WITH_ATTACHMENT.to_string()),
    ] {
        let mut c = Client::connect(gw.addr).await;
        c.expect("EHLO client.test", 250).await;
        let r = c
            .send_mail("news@partner.example", &[rcpt], body.as_bytes())
            .await;
        assert!(r.starts_with("250"), "{r}");
    }
    let alice = login(gw.web, "alice@example.org", PASSWORD).await.unwrap();
    let admin = login(gw.web, "admin@example.org", PASSWORD).await.unwrap();
    let report = tempfile::tempdir().unwrap();
    let store = gw.store.kind();
    fuzz(
        gw.web,
        &format!("admin, {store}"),
        &admin.token,
        report.path(),
    )
    .await;
    fuzz(
        gw.web,
        &format!("user, {store}"),
        &alice.token,
        report.path(),
    )
    .await;
    gw.stop().await;
}
