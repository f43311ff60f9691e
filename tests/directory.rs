//! People from a directory sign in everywhere with the password they already have. LDAP: a real
//! OpenLDAP shaped like Active Directory (scripts/peers/slapd_start.sh: proxyAddresses, memberOf,
//! StartTLS and LDAPS from a throwaway CA, a read-only service account). The mail server: a real
//! Dovecot with a certificate from a test CA. Sign-in through Chromium, the JSON API and POP3
//! (Python's poplib); leavers and group changes take effect at the refresh; while LDAP is down
//! the cached password still opens emergency POP3.

mod common;

use common::agency::Pki;
use common::browser::Browser;
use common::dovecot::Dovecot;
use common::http::{login, request};
use common::*;
use std::process::Command;

fn script(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/peers")
        .join(name)
}

struct Slapd {
    dir: tempfile::TempDir,
    ldap: u16,
    ldaps: u16,
    ca: String,
}

impl Slapd {
    fn start() -> Slapd {
        assert!(
            std::path::Path::new("/usr/sbin/slapd").exists(),
            "slapd is needed (Debian packages slapd, ldap-utils)"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script("slapd_start.sh"))
            .arg(dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "slapd did not start:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("{k}: {stdout}"))
                .to_string()
        };
        Slapd {
            ldap: get("LDAP_PORT").parse().unwrap(),
            ldaps: get("LDAPS_PORT").parse().unwrap(),
            ca: get("CA"),
            dir,
        }
    }

    fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script("slapd_stop.sh"))
            .arg(self.dir.path())
            .output();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

trait OutputWith {
    fn output_with(&mut self, input: &str);
}

impl OutputWith for Command {
    /// Runs with `input` on standard input; it must succeed.
    fn output_with(&mut self, input: &str) {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn ldap_config(url: &str, ca: &str) -> String {
    format!(
        "[domains]\nlocal = [\"example.test\"]\n[pop3]\nallow_plaintext_auth = true\n[directory]\nrefresh = \"1h\"\n[directory.ldap]\nurl = \"{url}\"\nca = \"{ca}\"\n\
         bind_dn = \"cn=sponts,ou=services,dc=example,dc=test\"\nbind_password = \"sponts-pass\"\nbase = \"dc=example,dc=test\"\n\
         filter = \"(&(objectClass=inetOrgPerson)(|(mail={{addr}})(proxyAddresses=smtp:{{addr}})))\"\n\
         admin_group = \"cn=mail-admins, ou=groups, dc=example, dc=test\"\n"
    )
}

async fn deliver(gw: &Gateway, subject: &str, rcpt: &str) {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    let msg = format!(
        "From: <news@partner.example>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nthis is {subject}.\r\n"
    );
    let r = c
        .send_mail("news@partner.example", &[rcpt], msg.as_bytes())
        .await;
    assert!(r.starts_with("250"), "{r}");
}

const POP3: &str = r#"
import poplib, sys, json
try:
    p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
    p.user(sys.argv[2]); p.pass_(sys.argv[3])
    subjects = []
    for i in range(1, p.stat()[0] + 1):
        subjects += [l.decode()[9:] for l in p.top(i, 0)[1] if l.startswith(b"Subject: ")]
    p.quit()
    print(json.dumps({"ok": True, "subjects": sorted(subjects)}))
except Exception as e:
    print(json.dumps({"ok": False, "error": str(e)}))
"#;

/// Signs in to emergency POP3 with poplib: the subjects of the mailbox, or `None` when refused.
async fn pop3(gw: &Gateway, user: &str, password: &str) -> Option<Vec<String>> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(POP3)
        .arg(gw.pop3.port().to_string())
        .arg(user)
        .arg(password);
    let out = output(cmd).await;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    if j["ok"] != true {
        assert!(
            j["error"]
                .as_str()
                .unwrap()
                .contains("wrong user name or password"),
            "{j}"
        );
        return None;
    }
    Some(
        j["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    )
}

async fn me(gw: &Gateway, token: &str) -> (u16, serde_json::Value) {
    let r = request(
        gw.web,
        "GET",
        "/api/v1/me",
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .await;
    let j = if r.status == 200 {
        r.json()
    } else {
        serde_json::Value::Null
    };
    (r.status, j)
}

#[tokio::test]
async fn ldap_people_sign_in_everywhere_and_leave_at_the_refresh() {
    ldap_people(String::new()).await;
}

#[tokio::test]
async fn ldap_people_sign_in_everywhere_and_leave_at_the_refresh_on_postgres() {
    let db = common::pg::TestDb::create().await;
    ldap_people(format!("[storage]\ndatabase = \"{}\"\n", db.url)).await;
    db.drop_db().await;
}

async fn ldap_people(storage: String) {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = common::config(
        cap.addr,
        &(ldap_config(&format!("ldap://127.0.0.1:{}", slapd.ldap), &slapd.ca) + &storage),
    );
    let gw = start_with(config.clone(), dir).await;
    deliver(&gw, "for alice", "alice@example.test").await;
    deliver(&gw, "for sales", "sales@example.test").await;
    deliver(&gw, "for bob", "bob@example.test").await;
    cap.wait_for(3).await;

    // Wrong and empty passwords are refused (an empty one would be an anonymous bind in LDAP).
    for pw in ["wrong-pass", ""] {
        assert_eq!(
            login(gw.web, "alice@example.test", pw)
                .await
                .unwrap_err()
                .status,
            401,
            "{pw:?}"
        );
    }
    assert_eq!(
        login(gw.web, "nobody@example.test", "nobody-pass")
            .await
            .unwrap_err()
            .status,
        401
    );

    // alice: an admin through cn=mail-admins, sales@ from proxyAddresses is hers.
    let alice = login(gw.web, "alice@example.test", "alice-pass")
        .await
        .expect("alice signs in with her LDAP password");
    let (_, j) = me(&gw, &alice.token).await;
    assert_eq!(j["role"], "admin", "{j}");
    assert_eq!(
        j["addresses"],
        serde_json::json!(["alice@example.test", "sales@example.test"]),
        "{j}"
    );
    // Signing in by an alias is signing in as its owner.
    let by_alias = login(gw.web, "sales@example.test", "alice-pass")
        .await
        .expect("an alias signs in");
    assert_eq!(
        me(&gw, &by_alias.token).await.1["address"],
        "alice@example.test"
    );
    assert_eq!(
        pop3(&gw, "alice@example.test", "alice-pass").await.unwrap(),
        ["for alice", "for sales"],
        "the alias's mail is alice's"
    );
    assert_eq!(pop3(&gw, "alice@example.test", "bob-pass").await, None);

    // bob in Chromium: a user, who sees only his own mail.
    let b = Browser::start().await;
    b.goto(&format!("http://{}/login", gw.web)).await;
    b.type_into("#username", "bob@example.test").await;
    b.type_into("#password", "bob-pass").await;
    b.click("button[type=submit]").await;
    b.find("table.messages").await;
    assert_eq!(
        b.count("table.messages tbody tr").await,
        1,
        "bob sees his one message"
    );
    assert!(b.text("table.messages").await.contains("for bob"));
    b.screenshot("directory-ldap-bob").await;
    b.quit().await;
    let bob = login(gw.web, "bob@example.test", "bob-pass").await.unwrap();
    assert_eq!(me(&gw, &bob.token).await.1["role"], "user");

    // Nobody from the directory is an interception officer.
    for u in gw.store.users(None).await.unwrap() {
        assert_ne!(u.role, sponts::storage::Role::Interception, "{}", u.address);
    }

    // SMTP AUTH takes the directory password too.
    smtp_auth(&gw, "wrong-pass", &[]).await;
    smtp_auth(&gw, "alice-pass", &[("sales@example.test", 250)]).await;

    // alice leaves the admin group, bob leaves the organisation: at the refresh alice is a user
    // (in the session she has), bob's session and sign-in are gone.
    let s = slapd.clone_ref();
    tokio::task::spawn_blocking(move || {
        s.modify("dn: cn=mail-admins,ou=groups,dc=example,dc=test\nchangetype: modify\nadd: member\nmember: uid=carol,ou=people,dc=example,dc=test\n-\ndelete: member\nmember: uid=alice,ou=people,dc=example,dc=test\n\ndn: uid=bob,ou=people,dc=example,dc=test\nchangetype: delete\n");
    })
    .await
    .unwrap();
    assert_eq!(
        me(&gw, &alice.token).await.1["role"],
        "admin",
        "nothing changes before the refresh"
    );
    let r = sponts::directory::refresh(&gw.store, &config)
        .await
        .unwrap();
    assert_eq!((r.confirmed, r.removed, r.unreachable), (1, 1, 0), "{r:?}");
    assert_eq!(
        me(&gw, &alice.token).await.1["role"],
        "user",
        "alice's admin rights end with her membership"
    );
    // As a user she sends as herself and her directory alias only.
    smtp_auth(
        &gw,
        "alice-pass",
        &[("bob@example.test", 550), ("sales@example.test", 250)],
    )
    .await;
    assert_eq!(me(&gw, &bob.token).await.0, 401, "bob's session ends");
    assert_eq!(
        login(gw.web, "bob@example.test", "bob-pass")
            .await
            .unwrap_err()
            .status,
        401
    );
    assert_eq!(pop3(&gw, "bob@example.test", "bob-pass").await, None);

    // What an admin sees with `sponts directory test`.
    let mut out = Vec::new();
    assert!(
        sponts::cli::directory::test(&config, &gw.store, "sales@example.test", &mut out)
            .await
            .unwrap()
    );
    let text = String::from_utf8(out).unwrap();
    for line in [
        "dn: uid=alice,ou=people,dc=example,dc=test",
        "address: alice@example.test",
        "aliases: sales@example.test",
        "role: user",
        "cached (ldap): alice@example.test",
        "(signs in while the source is down)",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
    let mut out = Vec::new();
    assert!(
        !sponts::cli::directory::test(&config, &gw.store, "bob@example.test", &mut out)
            .await
            .unwrap(),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // LDAP down: alice's cached password still opens emergency POP3; nothing else does.
    slapd.stop();
    assert_eq!(
        pop3(&gw, "alice@example.test", "alice-pass").await.unwrap(),
        ["for alice", "for sales"],
        "cached sign-in while LDAP is down"
    );
    assert_eq!(pop3(&gw, "alice@example.test", "wrong-pass").await, None);
    assert_eq!(
        pop3(&gw, "carol@example.test", "carol-pass").await,
        None,
        "never signed in: nothing cached"
    );
    let r = sponts::directory::refresh(&gw.store, &config)
        .await
        .unwrap();
    assert_eq!(
        (r.removed, r.unreachable),
        (0, 1),
        "an unreachable directory removes nobody: {r:?}"
    );
    gw.stop().await;
}

/// SMTP AUTH as alice with `password` (235, or 535 when `senders` is empty), then MAIL FROM each
/// sender with the answer expected.
async fn smtp_auth(gw: &Gateway, password: &str, senders: &[(&str, u16)]) {
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO laptop.test", 250).await;
    c.expect("STARTTLS", 220).await;
    c.starttls().await;
    c.expect("EHLO laptop.test", 250).await;
    let auth = format!(
        "AUTH PLAIN {}",
        sponts::base64::encode(format!("\0alice@example.test\0{password}").as_bytes())
    );
    c.expect(&auth, if senders.is_empty() { 535 } else { 235 })
        .await;
    for (sender, code) in senders {
        c.expect(&format!("MAIL FROM:<{sender}>"), *code).await;
        c.expect("RSET", 250).await;
    }
    c.expect("QUIT", 221).await;
}

impl Slapd {
    /// The same server for a blocking task (paths and ports only; stopping stays with the owner).
    fn clone_ref(&self) -> SlapdRef {
        SlapdRef {
            ldap: self.ldap,
            ca: self.ca.clone(),
        }
    }
}

struct SlapdRef {
    ldap: u16,
    ca: String,
}

impl SlapdRef {
    /// Changes the tree as its administrator would (ldapmodify over StartTLS).
    fn modify(&self, ldif: &str) {
        Command::new("ldapmodify")
            .args([
                "-H",
                &format!("ldap://127.0.0.1:{}", self.ldap),
                "-ZZ",
                "-x",
                "-D",
                "cn=admin,dc=example,dc=test",
                "-w",
                "admin-pass",
            ])
            .env("LDAPTLS_CACERT", &self.ca)
            .stdin(std::process::Stdio::piped())
            .output_with(ldif);
    }
}

#[tokio::test]
async fn ldaps_verifies_the_directory_against_its_ca() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let stranger = Pki::new();
    let cap = Capture::start(CaptureOptions::default()).await;
    let url = format!("ldaps://127.0.0.1:{}", slapd.ldaps);
    let gw = gateway(cap.addr, &ldap_config(&url, &slapd.ca)).await;
    assert!(
        login(gw.web, "carol@example.test", "carol-pass")
            .await
            .is_ok(),
        "LDAPS with the directory's CA"
    );
    // bob's address is also a local interception account here: the local account wins, the
    // directory's password opens nothing and the account stays as it was.
    let local = sponts::auth::hash_password("officer password").unwrap();
    gw.store
        .add_user(
            "bob@example.test",
            &local,
            sponts::storage::Role::Interception,
        )
        .await
        .unwrap();
    assert_eq!(
        login(gw.web, "bob@example.test", "bob-pass")
            .await
            .unwrap_err()
            .status,
        401
    );
    let bob = gw.store.user("bob@example.test").await.unwrap().unwrap();
    assert_eq!(
        (bob.role, bob.password_hash),
        (sponts::storage::Role::Interception, local)
    );
    assert!(
        gw.store
            .directory_user("bob@example.test")
            .await
            .unwrap()
            .is_none()
    );
    gw.stop().await;
    let gw = gateway(
        cap.addr,
        &ldap_config(&url, &stranger.ca.display().to_string()),
    )
    .await;
    assert_eq!(
        login(gw.web, "carol@example.test", "carol-pass")
            .await
            .unwrap_err()
            .status,
        401,
        "a directory whose certificate does not chain to directory.ldap.ca is not asked"
    );
    gw.stop().await;
    drop(slapd);
}

fn imap_config(imaps: u16, ca: &std::path::Path, login: &str) -> String {
    format!(
        "[pop3]\nallow_plaintext_auth = true\n[directory]\nimap = \"127.0.0.1:{imaps}\"\nimap_ca = \"{}\"\nimap_login = \"{login}\"\n",
        ca.display()
    )
}

#[tokio::test]
async fn the_mail_servers_password_signs_in_when_its_certificate_verifies() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let dovecot = tokio::task::spawn_blocking({
        let (cert, key) = (pki.cert.clone(), pki.key.clone());
        move || Dovecot::start_with(Some((&cert, &key)))
    })
    .await
    .unwrap();
    dovecot.add_login("whole@example.org", "whole-pass");
    let cap = Capture::start(CaptureOptions::default()).await;

    // imap_login = "local": target@example.org logs in to Dovecot as `target`.
    let gw = gateway(
        cap.addr,
        &imap_config(dovecot.imaps.port(), &pki.ca, "local"),
    )
    .await;
    deliver(&gw, "for target", "target@example.org").await;
    cap.wait_for(1).await;
    let t = login(gw.web, "target@example.org", "target-pass")
        .await
        .expect("the mail password signs in");
    let (_, j) = me(&gw, &t.token).await;
    assert_eq!(
        (j["address"].as_str(), j["role"].as_str()),
        (Some("target@example.org"), Some("user")),
        "{j}"
    );
    assert_eq!(
        pop3(&gw, "target@example.org", "target-pass")
            .await
            .unwrap(),
        ["for target"]
    );
    assert_eq!(pop3(&gw, "target@example.org", "other-pass").await, None);
    assert_eq!(
        login(gw.web, "target@example.org", "")
            .await
            .unwrap_err()
            .status,
        401
    );
    assert_eq!(
        login(gw.web, "target@elsewhere.example", "target-pass")
            .await
            .unwrap_err()
            .status,
        401,
        "only addresses of domains.local"
    );
    gw.stop().await;

    // imap_login = "address" (the default): the whole address is the login.
    let gw = gateway(
        cap.addr,
        &imap_config(dovecot.imaps.port(), &pki.ca, "address"),
    )
    .await;
    assert!(
        login(gw.web, "whole@example.org", "whole-pass")
            .await
            .is_ok()
    );
    assert_eq!(
        login(gw.web, "target@example.org", "target-pass")
            .await
            .unwrap_err()
            .status,
        401,
        "`target@example.org` is no Dovecot login"
    );
    gw.stop().await;

    // A server whose certificate does not chain to imap_ca is not trusted with passwords.
    let gw = gateway(
        cap.addr,
        &imap_config(dovecot.imaps.port(), &stranger.ca, "local"),
    )
    .await;
    assert_eq!(
        login(gw.web, "target@example.org", "target-pass")
            .await
            .unwrap_err()
            .status,
        401
    );
    assert_eq!(pop3(&gw, "target@example.org", "target-pass").await, None);
    gw.stop().await;
}

fn sponts(cfg: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sponts"))
        .args(args)
        .env("SPONTS_CONFIG", cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn user_import_checks_every_line_first_and_directory_test_says_not_found() {
    let cap = Capture::start(CaptureOptions::default()).await;
    let (config, dir) = common::config(cap.addr, "");
    let cfg = dir.path().join("sponts.toml");
    std::fs::write(
        &cfg,
        format!(
            "[domains]\nlocal = [\"example.org\"]\n[storage]\ndata_dir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let csv = dir.path().join("people.csv");

    std::fs::write(&csv, "address,role,password\nann@example.org,user,ann password 1\nnot an address,user,\nben@example.org,boss,\ncid@example.org,admin,short\n").unwrap();
    let (ok, text) = sponts(&cfg, &["user", "import", csv.to_str().unwrap()]);
    assert!(!ok, "{text}");
    for problem in [
        "line 3: `not an address` is not a mail address",
        "line 4: role `boss`",
        "line 5: the password must have at least 8",
    ] {
        assert!(text.contains(problem), "{problem}: {text}");
    }
    let (_, list) = sponts(&cfg, &["user", "list"]);
    assert!(
        !list.contains("ann@example.org"),
        "nothing is imported when a line is wrong: {list}"
    );

    std::fs::write(
        &csv,
        "# people\nann@example.org,user,ann password 1\nDee@Example.org,admin\n",
    )
    .unwrap();
    let (ok, text) = sponts(&cfg, &["user", "import", csv.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("2 accounts imported"), "{text}");
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("dee@example.org,admin,"))
        .unwrap_or_else(|| panic!("the generated password is printed: {text}"))
        .to_string();
    assert_eq!(generated.len(), 16);
    let (ok, text) = sponts(&cfg, &["user", "import", csv.to_str().unwrap()]);
    assert!(
        !ok && text.contains("line 2: user ann@example.org exists already"),
        "{text}"
    );

    // The imported accounts sign in through the one check.
    let store = sponts::storage::Store::open(
        &sponts::config::Config::parse(&std::fs::read_to_string(&cfg).unwrap())
            .unwrap()
            .storage
            .database_location(),
    )
    .await
    .unwrap();
    let dee = sponts::directory::sign_in(&store, &config, "dee@example.org", &generated)
        .await
        .unwrap()
        .expect("the printed password signs in");
    assert_eq!(dee.role, sponts::storage::Role::Admin);
    assert!(
        sponts::directory::sign_in(&store, &config, "ann@example.org", "ann password 1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        sponts::directory::sign_in(&store, &config, "ann@example.org", "ann password 2")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;

    let (ok, text) = sponts(&cfg, &["directory", "test", "ann@example.org"]);
    assert!(
        ok && text.contains("local account ann@example.org: role user"),
        "{text}"
    );
    let (ok, text) = sponts(&cfg, &["directory", "test", "nobody@example.org"]);
    assert!(
        !ok && text.contains("nobody@example.org: not found"),
        "exit status 1 for an unknown person: {text}"
    );
}

#[tokio::test]
async fn while_the_mail_server_is_down_the_directory_says_who_is_known() {
    let slapd = tokio::task::spawn_blocking(Slapd::start).await.unwrap();
    let extra = format!(
        "{}[queue]\nprobe = 1\n",
        ldap_config(&format!("ldaps://127.0.0.1:{}", slapd.ldaps), &slapd.ca)
    );
    let gw = gateway(dead_address(), &extra).await;
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@partner.example>", 250).await;
    // carol never signed in and never got mail here: LDAP has her.
    c.expect("RCPT TO:<carol@example.test>", 250).await;
    c.expect("RCPT TO:<sales@example.test>", 250).await;
    let r = c.expect("RCPT TO:<stranger@example.test>", 450).await;
    assert!(r.starts_with("450 4.2.1"), "{r}");
    c.expect("QUIT", 221).await;
    // LDAP gone too: bob (in LDAP, never seen here) can no longer be confirmed: "later".
    slapd.stop();
    let mut c = Client::connect(gw.addr).await;
    c.expect("EHLO client.test", 250).await;
    c.expect("MAIL FROM:<a@partner.example>", 250).await;
    c.expect("RCPT TO:<bob@example.test>", 450).await;
    c.expect("QUIT", 221).await;
    gw.stop().await;
}
