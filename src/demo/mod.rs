//! `sponts demo`: the whole product in seconds, with nothing to set up. sponts starts as it
//! always does — the same modules, store and web UI — on a throwaway data directory, in front of
//! a stand-in mail server inside the process ([`backend`]). The built-in filter learns a
//! training set, then senders on loopback ([`traffic`]) send a few hundred messages through
//! sponts' own SMTP listener ([`mail`]): clean mail with attachments, spam refused as "user
//! unknown", a bot that talks before the greeting, a trap hit, a used-up disposable address, a
//! blocked attachment and (with a reachable clamd) a virus, mail the filter is unsure of (tagged),
//! a transaction abandoned before DATA, then a short outage of the mail server whose queued mail
//! drains (and a stranger deferred): every class of the Report. The journal, the Report, the
//! queue events and the digest all have real content. It prints the web address and two
//! accounts, and runs until Ctrl-C, when it removes its data directory (unless `--keep DIR`).

pub mod backend;
pub mod mail;
pub mod traffic;

use anyhow::{Context, Result};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storage::{Role, Store};
use mail::Dice;
use traffic::{Outgoing, Sender};

pub const DOMAIN: &str = "demo.example";
const ADMIN: &str = "admin@demo.example";
const USER: &str = "alice@demo.example";
/// The mailboxes the stand-in knows; only admin and alice have sponts accounts.
const MAILBOXES: &[&str] = &[
    "admin@demo.example",
    "alice@demo.example",
    "bob@demo.example",
    "carol@demo.example",
    "postmaster@demo.example",
];

pub struct DemoArgs {
    /// Keep the data here (and do not remove it at the end).
    pub keep: Option<PathBuf>,
}

/// Runs the demo until Ctrl-C; what a newcomer needs is written to `out`.
pub async fn run(args: DemoArgs, out: &mut (dyn Write + Send)) -> Result<()> {
    let data_dir = match &args.keep {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "sponts-demo-{}-{}",
            std::process::id(),
            crate::clock::now_us() % 1_000_000
        )),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let result = demo(&data_dir, args.keep.is_none(), out).await;
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

async fn demo(data_dir: &Path, throwaway: bool, out: &mut (dyn Write + Send)) -> Result<()> {
    let standin = backend::StandIn::start(MAILBOXES.iter().map(|s| s.to_string()).collect())
        .await
        .context("cannot start the stand-in mail server")?;
    let clamd = reachable_clamd().await;
    let config =
        crate::config::Config::parse(&config_text(data_dir, standin.addr, clamd.as_deref()))
            .map_err(|e| anyhow::anyhow!("the demo's config: {e}"))?;
    crate::logging::init(&config.log);
    let running = crate::start(config.clone()).await?;
    let store = running.store.clone();
    let smtp = running.smtp.addrs[0];
    let web = running
        .web
        .as_ref()
        .map(|w| w.addr)
        .context("the web UI did not start")?;

    let (admin_password, user_password) = (password()?, password()?);
    store
        .add_user(
            ADMIN,
            &crate::auth::hash_password(&admin_password)?,
            Role::Admin,
        )
        .await?;
    store
        .add_user(
            USER,
            &crate::auth::hash_password(&user_password)?,
            Role::User,
        )
        .await?;
    store.add_alias(USER, "postmaster@demo.example").await?;
    let (spam, ham) = mail::training(40);
    for (n, m) in spam.iter().enumerate() {
        crate::modules::uce::learn::learn(&store, &format!("demo:spam:{n}"), m, true).await?;
    }
    for (n, m) in ham.iter().enumerate() {
        crate::modules::uce::learn::learn(&store, &format!("demo:ham:{n}"), m, false).await?;
    }

    let sent = send_traffic(smtp, clamd.is_some()).await?;
    outage(smtp, &standin, &store).await?;
    let digests = crate::digest::run_once(&config, &store).await.unwrap_or(0);

    writeln!(
        out,
        "sponts demo: mail for {DOMAIN} through SMTP {smtp}, data in {}",
        data_dir.display()
    )?;
    writeln!(
        out,
        "{sent} messages sent through sponts, {} reached the stand-in mail server, {digests} digest(s) sent",
        standin.received.load(std::sync::atomic::Ordering::Relaxed)
    )?;
    if clamd.is_none() {
        writeln!(
            out,
            "note: no clamd on /run/clamav/clamd.ctl or 127.0.0.1:3310, so no virus sample (a blocked attachment stands in)"
        )?;
    }
    writeln!(out, "web http://{web}/")?;
    writeln!(out, "admin {ADMIN} {admin_password}")?;
    writeln!(out, "user {USER} {user_password}")?;
    writeln!(
        out,
        "Ctrl-C ends the demo{}.",
        if throwaway {
            " and removes its data directory"
        } else {
            "; the data directory stays"
        }
    )?;
    out.flush()?;

    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    running.stop(Duration::from_secs(5)).await;
    standin.stop();
    Ok(())
}

fn config_text(data_dir: &Path, backend: SocketAddr, clamd: Option<&str>) -> String {
    format!(
        r#"modules = ["access", "uce", "virus", "backup", "journal"]
[smtp]
listen = ["{smtp}"]
hostname = "gw.{DOMAIN}"
[web]
listen = "{web}"
[pop3]
listen = "{pop3}"
[backend]
address = "{backend}"
starttls = "off"
[domains]
local = ["{DOMAIN}"]
[storage]
data_dir = "{dir}"
[queue]
probe = 1
[uce]
traps = ["trap@{DOMAIN}"]
tarpit_delay = "100ms"
[virus]
clamd = "{clamd}"
block_extensions = ["com", "exe", "scr"]
[report]
mail = "off"
[log]
level = "warn"
"#,
        smtp = port_or_free(2525),
        web = port_or_free(8025),
        pop3 = port_or_free(1110),
        dir = data_dir.display(),
        clamd = clamd.unwrap_or(""),
    )
}

/// 127.0.0.1 on the default port, or on a free one when that is taken.
fn port_or_free(default: u16) -> SocketAddr {
    let wanted = SocketAddr::from(([127, 0, 0, 1], default));
    if std::net::TcpListener::bind(wanted).is_ok() {
        return wanted;
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or(wanted)
}

async fn reachable_clamd() -> Option<String> {
    let socket = "/run/clamav/clamd.ctl";
    if tokio::net::UnixStream::connect(socket).await.is_ok() {
        return Some(socket.to_string());
    }
    let tcp = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect("127.0.0.1:3310"),
    )
    .await;
    matches!(tcp, Ok(Ok(_))).then(|| "127.0.0.1:3310".to_string())
}

/// A password made for this run: 16 letters and digits.
fn password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

fn from(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// One sender's session: its messages in order; returns how many it sent.
async fn session(
    smtp: SocketAddr,
    source: IpAddr,
    early: bool,
    messages: Vec<Outgoing>,
) -> Result<usize> {
    let mut s = Sender::connect(smtp, source, early)
        .await
        .with_context(|| format!("demo sender {source}"))?;
    for m in &messages {
        s.send(m)
            .await
            .with_context(|| format!("demo sender {source}"))?;
    }
    s.quit().await;
    Ok(messages.len())
}

/// Everyone's mail at once, each sender in its own session: partners, a spammer, a bot, a trap
/// hit, a shop writing to a disposable address, mail for nobody, a dangerous attachment.
async fn send_traffic(smtp: SocketAddr, virus: bool) -> Result<usize> {
    let mut dice = Dice::new(42);
    let people = [
        "alice@demo.example",
        "bob@demo.example",
        "carol@demo.example",
        "admin@demo.example",
    ];
    let mut plans: Vec<(IpAddr, bool, Vec<Outgoing>)> = Vec::new();
    let mut n = 0;
    for partner in 10..15u8 {
        let mut list = Vec::new();
        for _ in 0..40 {
            n += 1;
            let to = people[n % people.len()];
            let (from, message) = mail::ham(&mut dice, n, to);
            let mut to = vec![to.to_string()];
            if n % 7 == 0 {
                to.push(people[(n + 1) % people.len()].to_string());
            }
            list.push(Outgoing { from, to, message });
        }
        plans.push((from(partner), false, list));
    }
    let spam = |dice: &mut Dice, n: usize, to: &str| {
        let (from, message) = mail::spam(dice, n, to);
        Outgoing {
            from,
            to: vec![to.to_string()],
            message,
        }
    };
    plans.push((
        from(66),
        false,
        (0..60)
            .map(|i| spam(&mut dice, i, people[i % people.len()]))
            .collect(),
    ));
    plans.push((
        from(77),
        true,
        vec![spam(&mut dice, 100, "bob@demo.example")],
    ));
    // The trap's hit boxes the sender; its next message is refused for that.
    let trap = vec![
        spam(&mut dice, 200, "trap@demo.example"),
        spam(&mut dice, 201, "carol@demo.example"),
    ];
    plans.push((from(99), false, trap));
    let shop = (0..3).map(|i| {
        let (_, message) = mail::ham(&mut dice, 300 + i, "shop.2.alice@demo.example");
        Outgoing {
            from: "news@shop.example".into(),
            to: vec!["shop.2.alice@demo.example".into()],
            message,
        }
    });
    plans.push((from(20), false, shop.collect()));
    let nobody = (0..5).map(|i| {
        let (from, message) = mail::ham(&mut dice, 400 + i, "nobody@demo.example");
        Outgoing {
            from,
            to: vec![format!(
                "{}@demo.example",
                ["nobody", "info", "sales", "jobs", "webmaster"][i]
            )],
            message,
        }
    });
    plans.push((from(21), false, nobody.collect()));
    let unsure = (0..6).map(|i| {
        let to = people[i % people.len()];
        let (from, message) = mail::unsure(&mut dice, 600 + i, to);
        Outgoing {
            from,
            to: vec![to.to_string()],
            message,
        }
    });
    plans.push((from(22), false, unsure.collect()));
    let mut dangerous = vec![Outgoing {
        from: "billing@invoices.example".into(),
        to: vec!["bob@demo.example".into()],
        message: mail::virus("bob@demo.example"),
    }];
    if virus {
        let mut m = mail::virus("carol@demo.example");
        let text = String::from_utf8_lossy(&m).replace("invoice.com", "invoice.txt");
        m = text.into_bytes();
        dangerous.push(Outgoing {
            from: "billing@invoices.example".into(),
            to: vec!["carol@demo.example".into()],
            message: m,
        });
    }
    plans.push((from(30), false, dangerous));

    // A client that gives up before DATA.
    let mut quitter = Sender::connect(smtp, from(40), false)
        .await
        .context("demo sender 127.0.0.40")?;
    quitter
        .abandon("someone@partner.example", "bob@demo.example")
        .await?;
    quitter.quit().await;
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|(source, early, list)| tokio::spawn(session(smtp, source, early, list)))
        .collect();
    let mut sent = 0;
    for t in tasks {
        sent += t.await.context("a demo sender failed")??;
    }
    Ok(sent)
}

/// The mail server goes away for a moment: mail for known people is queued (durably) and
/// drains once it is back, which the queue page and its events show.
async fn outage(smtp: SocketAddr, standin: &backend::StandIn, store: &Store) -> Result<()> {
    standin.stop();
    let mut dice = Dice::new(99);
    let mut queued: Vec<Outgoing> = (0..6)
        .map(|i| {
            let to = ["alice@demo.example", "bob@demo.example"][i % 2];
            let (from, message) = mail::ham(&mut dice, 500 + i, to);
            Outgoing {
                from,
                to: vec![to.to_string()],
                message,
            }
        })
        .collect();
    // Nobody knows this address while the mail server is away: 450, never a 550 sponts cannot confirm.
    let (from_address, message) = mail::ham(&mut dice, 510, "newcomer@demo.example");
    queued.push(Outgoing {
        from: from_address,
        to: vec!["newcomer@demo.example".into()],
        message,
    });
    session(smtp, from(11), false, queued).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    standin
        .restart()
        .await
        .context("cannot bring the stand-in mail server back")?;
    for _ in 0..150 {
        if store.queue_list(None).await?.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
