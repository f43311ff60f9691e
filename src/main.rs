//! The `sponts` command line: parses arguments and hands over to the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use sponts::config::{Config, Duration};

#[derive(Parser)]
#[command(
    name = "sponts",
    version,
    about = "A modular SMTP gateway in front of your mail server"
)]
struct Cli {
    /// Config file (TOML). Without it: the embedded defaults.
    #[arg(long, global = true, env = "SPONTS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Serve,
    /// Show sponts at work in seconds: a throwaway gateway in front of a stand-in mail server,
    /// sample mail sent through it, and the web UI with two accounts. Ends with Ctrl-C.
    Demo {
        /// Keep the data in DIR (not removed at the end).
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Set up a new installation: a commented config in DIR, the data directory, the first admin.
    Init {
        /// Where sponts.toml goes (default: /etc/sponts as root, else ./sponts).
        dir: Option<PathBuf>,
        /// The first admin's address (asked for when missing).
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        /// Read the admin's password from standard input instead of asking twice.
        #[arg(long)]
        password_stdin: bool,
        /// The data directory (default: /var/lib/sponts for a config under /etc, else DIR/data).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The name sponts greets with (default: the machine's host name).
        #[arg(long)]
        hostname: Option<String>,
        /// The real mail server, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        backend: Option<String>,
        /// A domain to accept mail for (repeat for more; default: the admin's domain).
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
        /// An address to accept SMTP on (repeat for more; default 127.0.0.1:2525).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Vec<String>,
    },
    /// Lawful interception orders (for the interception role, on this machine).
    Intercept {
        #[command(subcommand)]
        cmd: InterceptCmd,
    },
    /// The interception audit log: list it, verify its hash chain.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Check a config file; prints every problem with its key, exit status 1 if any.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Show transaction records.
    Journal {
        /// Only records newer than this (e.g. 30m, 2h, 7d).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// Sender contains this text.
        #[arg(long)]
        sender: Option<String>,
        /// A recipient contains this text.
        #[arg(long)]
        rcpt: Option<String>,
        /// Client IP address.
        #[arg(long)]
        ip: Option<String>,
        /// Subject contains this text.
        #[arg(long)]
        subject: Option<String>,
        /// One transaction id.
        #[arg(long)]
        id: Option<String>,
        /// At most this many records (the newest).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send the digest mails now (normally sent every digest.every).
    Digest,
    /// The queue of mail waiting for the backend.
    Queue {
        #[command(subcommand)]
        cmd: QueueCmd,
    },
    /// Outbound mail held as a compromised account's, and senders locked out of outbound mail.
    Outbound {
        #[command(subcommand)]
        cmd: OutboundCmd,
    },
    /// Manage the accounts of the web UI, API and POP3.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// The directory sources (LDAP / Active Directory, the mail server).
    Directory {
        #[command(subcommand)]
        cmd: DirectoryCmd,
    },
    /// Deliver kept messages again: one (--id), or a recipient's mail of a period (--rcpt --since).
    Replay {
        /// The transaction whose message is delivered again.
        #[arg(long, conflicts_with_all = ["rcpt", "since"])]
        id: Option<String>,
        /// Deliver to this local address instead of the original recipients.
        #[arg(long, requires = "id")]
        to: Option<String>,
        /// Bulk: every message delivered to this address ...
        #[arg(long, requires = "since")]
        rcpt: Option<String>,
        /// ... in this period (e.g. 2h, 3d).
        #[arg(long, value_parser = parse_duration, requires = "rcpt")]
        since: Option<Duration>,
        /// One JSON line per replay.
        #[arg(long)]
        json: bool,
    },
    /// Report figures: rates by class, load, who decided, top spammers.
    Stats {
        /// The period (e.g. 24h, 7d).
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        since: Duration,
        /// Series buckets: hour, day, week or month (default: by the period's length).
        #[arg(long, value_parser = parse_bucket)]
        bucket: Option<sponts::report::figures::Bucket>,
        #[arg(long)]
        json: bool,
        /// Mail the report (HTML with charts, and text) through the backend.
        #[arg(long)]
        mail: bool,
        /// With --mail: the recipients (default: report.mail_to, or every admin).
        #[arg(long, value_name = "ADDR")]
        to: Vec<String>,
    },
    /// A person's kept mail (sent and received, aliases included), oldest first, byte for byte.
    Export {
        /// The person's address.
        #[arg(long)]
        user: String,
        /// From this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Up to and including this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        until: Option<String>,
        /// `mbox` (mboxrd) or `eml-zip` (one .eml file per message).
        #[arg(long)]
        format: String,
        /// The file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// A consistent copy of the whole store (SQLite) into DIR, while sponts runs.
    Backup { dir: PathBuf },
    /// Put a copy made by `sponts backup` in place, into an empty data directory.
    Restore { dir: PathBuf },
    /// The archive: seals and their verification, roots for auditors, purge, legal holds, figures.
    Archive {
        #[command(subcommand)]
        cmd: ArchiveCmd,
    },
    /// Train the built-in spam filter. Each PATH is a folder of message files (symlinks followed),
    /// a Maildir or an mbox file.
    Learn {
        #[arg(long, value_name = "PATH")]
        spam: Option<PathBuf>,
        #[arg(long, value_name = "PATH")]
        ham: Option<PathBuf>,
        /// Learn from what the journal knows: trap hits as spam, messages people marked as they
        /// marked them, replayed refusals as ham.
        #[arg(long, conflicts_with_all = ["spam", "ham"])]
        from_journal: bool,
    },
    /// Disposable addresses (tag.N.user@domain): list, lock, unlock, reset, delete.
    Disposable {
        #[command(subcommand)]
        cmd: DisposableCmd,
    },
    /// Spam traps managed at run time (those of the config are listed too).
    Trap {
        #[command(subcommand)]
        cmd: TrapCmd,
    },
    /// Sender allow and block lists, per address or (`--owner @domain`) per domain. An allowed
    /// sender skips content scoring; a blocked one finds the recipient unknown.
    Sender {
        #[command(subcommand)]
        cmd: SenderCmd,
    },
    /// The penalty box: client IPs treated as spammers for uce.penalty_hours.
    Penalty {
        #[command(subcommand)]
        cmd: PenaltyCmd,
    },
    /// HTML for a web page: the address obfuscated for people, and optionally a hidden trap for spiders.
    Snippet {
        address: String,
        /// A trap address to hide in the page.
        #[arg(long)]
        trap: Option<String>,
        /// The hidden text a tag-stripping spider reads into the address.
        #[arg(long, default_value = "-nospam")]
        decoy: String,
    },
    /// DKIM keys for outgoing mail: make one (and the TXT record to publish), rotate, list.
    Dkim {
        #[command(subcommand)]
        cmd: DkimCmd,
    },
}

#[derive(Subcommand)]
enum DkimCmd {
    /// Make a key for DOMAIN and print its TXT record. A domain's first key signs at once; a
    /// later one signs once its record is seen in DNS.
    Keygen {
        domain: String,
        /// The selector (default: the algorithm and today's date, e.g. ed20261204).
        #[arg(long)]
        selector: Option<String>,
        /// rsa (RSA-2048, rsa-sha256) or ed25519 (RFC 8463).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// Make a successor for DOMAIN's active key and print its record: it signs once its record is
    /// seen in DNS; the old key signs beside it for dkim.overlap, then retires.
    Rotate {
        domain: String,
        /// The key to replace (needed when the domain has several active keys).
        #[arg(long, value_name = "SELECTOR")]
        from: Option<String>,
        #[arg(long)]
        selector: Option<String>,
        /// Default: the replaced key's.
        #[arg(long)]
        algorithm: Option<String>,
    },
    /// Selectors, algorithms, states and records (never private keys).
    List {
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DisposableCmd {
    /// All disposable addresses used so far, or one owner's.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Answer "user unknown" from now on.
    Lock { address: String },
    /// Accept mail again (until the count is reached).
    Unlock { address: String },
    /// Start counting again from zero, unlocked.
    Reset { address: String },
    /// Forget the address (its next use starts afresh).
    Del { address: String },
}

#[derive(Subcommand)]
enum TrapCmd {
    List,
    /// An address or a pattern (`*` for any run), e.g. honeypot-*@example.org.
    Add {
        pattern: String,
    },
    Del {
        pattern: String,
    },
}

#[derive(Subcommand)]
enum SenderCmd {
    /// Every entry, or one owner's.
    List {
        #[arg(long, value_name = "ADDR|@domain")]
        owner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Skip content scoring for mail from PATTERN (an address, or a domain with its subdomains).
    Allow {
        #[arg(long, value_name = "ADDR|@domain")]
        owner: String,
        pattern: String,
    },
    /// Refuse mail from PATTERN as "user unknown".
    Block {
        #[arg(long, value_name = "ADDR|@domain")]
        owner: String,
        pattern: String,
    },
    /// Take PATTERN off the owner's list.
    Del {
        #[arg(long, value_name = "ADDR|@domain")]
        owner: String,
        pattern: String,
    },
}

#[derive(Subcommand)]
enum PenaltyCmd {
    List,
    /// Let an IP out of the penalty box.
    Release {
        ip: String,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Everything queued, in arrival order.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One queued message.
    Show { id: String },
    /// Try now: one message, or all.
    Retry { id: Option<String> },
    /// Deliver one message to another host now (HOST:PORT), e.g. a standby mail server.
    Deliver { id: String, host: String },
}

#[derive(Subcommand)]
enum OutboundCmd {
    /// The held messages and the locked senders.
    Held {
        #[arg(long)]
        json: bool,
    },
    /// Release a held message (it is delivered like any other).
    Release {
        id: String,
    },
    /// Refuse a sender's outbound mail (5.7.1) until unlocked.
    Lock {
        sender: String,
        #[arg(long, default_value = "locked by an administrator")]
        reason: String,
    },
    Unlock {
        sender: String,
    },
}

#[derive(Subcommand)]
enum ArchiveCmd {
    /// Seal the finished days now (the serve process does it after each day).
    Seal {
        /// Also seal today so far (later mail of today goes into the next seal).
        #[arg(long)]
        now: bool,
    },
    /// Recompute every digest and root and check the signatures; exit 1 naming the first broken link.
    Verify {
        /// From this day's seal on (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Also compare with roots kept elsewhere (the output of `sponts archive roots`).
        #[arg(long, value_name = "FILE")]
        roots: Option<PathBuf>,
    },
    /// The seals as JSON lines (day, root, count, signature, key), for an auditor to keep.
    Roots {
        #[arg(long)]
        since: Option<String>,
    },
    /// Run a purge pass now (retention rules, backup.max_bytes; never held mail).
    Purge,
    /// Legal holds.
    Hold {
        #[command(subcommand)]
        cmd: HoldCmd,
    },
    /// Messages, bytes per class, growth per day, projected disk.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HoldCmd {
    /// Hold a user's mail (address and aliases), an address's, or what a search finds.
    Add {
        #[arg(long, group = "what")]
        user: Option<String>,
        #[arg(long, group = "what")]
        address: Option<String>,
        /// Text found in sender, recipients or subject.
        #[arg(long, group = "what")]
        search: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// The holds in force (--all: released ones too; --audit: the audit trail).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        audit: bool,
        #[arg(long)]
        json: bool,
    },
    /// Release a hold.
    Release {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum InterceptCmd {
    /// Add a court order: copies of the target's mail from --from (default now) until --until.
    Add {
        /// The authority's reference.
        #[arg(long)]
        reference: String,
        /// The target's mail address.
        #[arg(long)]
        target: String,
        /// The target's login name at the backend (POP3/IMAP), if known.
        #[arg(long)]
        login: Option<String>,
        /// 2026-12-01 (00:00 UTC) or 2026-12-01T12:00:00Z.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        until: String,
        /// smtp://HOST:PORT (TLS, verified) or dir:/PATH.
        #[arg(long)]
        deliver: String,
        /// The agency's address, with smtp://.
        #[arg(long, value_name = "ADDR")]
        deliver_to: Option<String>,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// The orders, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End an order now.
    End { id: String },
    /// Move a running order's end (2027-03-01 or 2027-03-01T12:00:00Z, UTC).
    Until { id: String, until: String },
    /// The copies made (of one order, or all) and their delivery state, newest first.
    Copies {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// The interception audit log.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check the log's hash chain; names the first broken entry (exit status 1).
    Verify,
}

#[derive(Subcommand)]
enum DirectoryCmd {
    /// What sponts sees of a person: source, DN, addresses, groups, role, cache (exit 1: unknown).
    Test { address: String },
    /// Look every cached directory person up again now (leavers removed, roles updated).
    Refresh,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account (a mail address).
    Add {
        address: String,
        /// Sees all mail and manages users.
        #[arg(long, conflicts_with = "interception")]
        admin: bool,
        /// Operates lawful interception orders; sees no mail and no settings (made here only).
        #[arg(long)]
        interception: bool,
        /// Read the password from standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a password.
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an account.
    Del { address: String },
    /// List the accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Let an account also see the mail of another address.
    Alias { address: String, alias: String },
    /// Add local accounts from a CSV file: address,role[,password] (user or admin; a missing
    /// password is generated and printed). Nothing is added if any line is wrong.
    Import { file: std::path::PathBuf },
    /// The second factor (TOTP) of an account.
    #[command(name = "2fa")]
    TwoFactor {
        #[command(subcommand)]
        cmd: TwoFactorCmd,
    },
}

#[derive(Subcommand)]
enum TwoFactorCmd {
    /// Remove an account's second factor and recovery codes and end its sessions: the next
    /// sign-in enrols again (a lost phone).
    Reset { address: String },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    Duration::parse(s).ok_or_else(|| format!("`{s}` is not a duration (e.g. 30s, 5m, 2h, 7d)"))
}

fn parse_bucket(s: &str) -> Result<sponts::report::figures::Bucket, String> {
    sponts::report::figures::Bucket::parse(s)
        .ok_or_else(|| format!("`{s}` is not a bucket (hour, day, week or month)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sponts: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Cmd::Demo { keep } = cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(sponts::demo::run(
            sponts::demo::DemoArgs { keep },
            &mut std::io::stdout(),
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Init {
        dir,
        admin,
        password_stdin,
        data_dir,
        hostname,
        backend,
        domains,
        listen,
    } = cli.command
    {
        let dir = dir.unwrap_or_else(|| {
            if sponts::cli::init::is_root() {
                PathBuf::from("/etc/sponts")
            } else {
                PathBuf::from("sponts")
            }
        });
        let admin = match admin {
            Some(a) => a,
            None => sponts::cli::user::ask("Admin address: ").context("--admin ADDR is needed")?,
        };
        let password = sponts::cli::user::read_password(password_stdin)?;
        let args = sponts::cli::init::InitArgs {
            dir,
            admin,
            password,
            data_dir,
            hostname,
            backend,
            domains,
            listen,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(sponts::cli::init::run(args, &mut std::io::stdout().lock()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::CheckConfig { file } = &cli.command {
        let Some(path) = file.as_ref().or(cli.config.as_ref()) else {
            anyhow::bail!("check-config needs a FILE (or --config)");
        };
        return Ok(match sponts::preflight::load(path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    println!("{}: {e}", path.display());
                }
                ExitCode::FAILURE
            }
        });
    }
    let config = sponts::cli::load_config(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Cmd::Serve => serve(config, cli.config.clone()).await,
            Cmd::Journal { since, sender, rcpt, ip, subject, id, limit, json } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                let q = sponts::cli::journal::Query { since, sender, rcpt, ip, subject, id, limit, json };
                sponts::cli::journal::run(&store, q, &mut std::io::stdout().lock()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Digest => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                let n = sponts::digest::run_once(&config, &store).await?;
                println!("{n} digest{} sent", if n == 1 { "" } else { "s" });
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Queue { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::queue;
                match cmd {
                    QueueCmd::List { json } => queue::list(&store, json, &mut std::io::stdout().lock()).await?,
                    QueueCmd::Show { id } => queue::show(&store, &id, &mut std::io::stdout().lock()).await?,
                    QueueCmd::Retry { id } => queue::retry(&store, id.as_deref()).await?,
                    QueueCmd::Deliver { id, host } => queue::deliver(&config, &store, &id, &host).await?,
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Outbound { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::outbound;
                let out = &mut std::io::stdout().lock();
                match cmd {
                    OutboundCmd::Held { json } => outbound::held(&store, json, out).await?,
                    OutboundCmd::Release { id } => outbound::release(&store, &id, out).await?,
                    OutboundCmd::Lock { sender, reason } => outbound::lock(&store, &sender, &reason, out).await?,
                    OutboundCmd::Unlock { sender } => outbound::unlock(&store, &sender, out).await?,
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::User { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::user;
                match cmd {
                    UserCmd::Add { address, admin, interception, password_stdin } => {
                        let role = if interception { sponts::storage::Role::Interception } else if admin { sponts::storage::Role::Admin } else { sponts::storage::Role::User };
                        user::add(&store, &address, role, &user::read_password(password_stdin)?).await?
                    }
                    UserCmd::Passwd { address, password_stdin } => user::passwd(&store, &address, &user::read_password(password_stdin)?).await?,
                    UserCmd::Del { address } => user::del(&store, &address).await?,
                    UserCmd::List { json } => user::list(&store, json, &mut std::io::stdout().lock()).await?,
                    UserCmd::Alias { address, alias } => user::alias(&store, &address, &alias).await?,
                    UserCmd::Import { file } => {
                        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
                        sponts::cli::directory::import(&store, &text, &mut std::io::stdout().lock()).await?;
                    }
                    UserCmd::TwoFactor { cmd: TwoFactorCmd::Reset { address } } => user::twofactor_reset(&store, &address, &mut std::io::stdout().lock()).await?,
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Directory { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                match cmd {
                    DirectoryCmd::Test { address } => {
                        let found = sponts::cli::directory::test(&config, &store, &address, &mut std::io::stdout().lock()).await?;
                        Ok(if found { ExitCode::SUCCESS } else { ExitCode::FAILURE })
                    }
                    DirectoryCmd::Refresh => {
                        let r = sponts::directory::refresh(&store, &config).await?;
                        println!("{} confirmed, {} removed, {} not reachable", r.confirmed, r.removed, r.unreachable);
                        Ok(if r.unreachable == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
                    }
                }
            }
            Cmd::Replay { id, to, rcpt, since, json } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::replay;
                let failed = match (id, rcpt, since) {
                    (Some(id), _, _) => replay::one(&config, &store, &id, to.as_deref(), json).await?,
                    (None, Some(rcpt), Some(since)) => replay::bulk(&config, &store, &rcpt, since, json).await?,
                    _ => anyhow::bail!("replay needs --id ID, or --rcpt ADDR --since DUR"),
                };
                Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Cmd::Stats { since, bucket, json, mail, to } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                let since_us = sponts::clock::now_us() - since.0.as_micros() as i64;
                let args = sponts::cli::stats::StatsArgs { since_us, bucket, json, mail, to };
                let ok = sponts::cli::stats::run(&config, &store, args, &mut std::io::stdout().lock()).await?;
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Cmd::Export { user, since, until, format, out } => {
                let format = sponts::archive::export::Format::parse(&format).with_context(|| format!("--format {format}: mbox or eml-zip"))?;
                let day = |d: &Option<String>, what: &str| -> Result<Option<i64>> {
                    d.as_deref().map(|d| sponts::clock::parse_date(d).with_context(|| format!("--{what} {d}: a day as YYYY-MM-DD"))).transpose()
                };
                let since_us = day(&since, "since")?;
                let until_us = day(&until, "until")?.map(|d| d + 86_400_000_000);
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                let (written, missing) = sponts::archive::export::export(&store, &user, since_us, until_us, format, &out).await?;
                println!("{written} message{} of {user} written to {}{}", if written == 1 { "" } else { "s" }, out.display(), if missing > 0 { format!(" ({missing} journal records without a kept message: purged or never received whole)") } else { String::new() });
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Backup { dir } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                sponts::cli::backup::backup(&config, &store, &dir, &mut std::io::stdout().lock()).await?;
                store.close().await;
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Restore { dir } => {
                sponts::cli::backup::restore(&config, &dir, &mut std::io::stdout().lock()).await?;
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Archive { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::archive;
                let out = &mut std::io::stdout().lock();
                let ok = match cmd {
                    ArchiveCmd::Seal { now } => archive::seal(&store, now, out).await.map(|_| true)?,
                    ArchiveCmd::Verify { since, roots } => archive::verify(&store, since.as_deref(), roots.as_deref(), out, &mut std::io::stderr()).await?,
                    ArchiveCmd::Roots { since } => archive::roots(&store, since.as_deref(), out).await.map(|_| true)?,
                    ArchiveCmd::Purge => archive::purge(&config, &store, out).await.map(|_| true)?,
                    ArchiveCmd::Stats { json } => archive::stats(&config, &store, json, out).await.map(|_| true)?,
                    ArchiveCmd::Hold { cmd } => match cmd {
                        HoldCmd::Add { user, address, search, reason } => {
                            let (kind, target) = match (user, address, search) {
                                (Some(u), _, _) => ("user", u),
                                (_, Some(a), _) => ("address", a),
                                (_, _, Some(q)) => ("search", q),
                                _ => anyhow::bail!("name what to hold: --user, --address or --search"),
                            };
                            archive::hold_add(&store, kind, &target, &reason, out).await.map(|_| true)?
                        }
                        HoldCmd::List { all, audit, json } => archive::hold_list(&store, all, audit, json, out).await.map(|_| true)?,
                        HoldCmd::Release { id, reason } => archive::hold_release(&store, id, &reason, out).await.map(|_| true)?,
                    },
                };
                store.close().await;
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Cmd::Learn { spam, ham, from_journal } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                if from_journal {
                    sponts::feedback::journal::run(&store, &mut std::io::stdout().lock()).await?;
                } else {
                    sponts::cli::learn::run(&store, spam.as_deref(), ham.as_deref(), &mut std::io::stdout().lock(), &mut std::io::stderr()).await?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Disposable { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::uce;
                match cmd {
                    DisposableCmd::List { user, json } => uce::disposable_list(&store, user.as_deref(), json, &mut std::io::stdout().lock()).await?,
                    DisposableCmd::Lock { address } => uce::disposable_change(&config, &store, &address, "lock").await?,
                    DisposableCmd::Unlock { address } => uce::disposable_change(&config, &store, &address, "unlock").await?,
                    DisposableCmd::Reset { address } => uce::disposable_change(&config, &store, &address, "reset").await?,
                    DisposableCmd::Del { address } => uce::disposable_change(&config, &store, &address, "delete").await?,
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Trap { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::uce;
                match cmd {
                    TrapCmd::List => uce::traps(&config, &store, &mut std::io::stdout().lock()).await?,
                    TrapCmd::Add { pattern } => store.add_trap(&uce::check_trap(&pattern)?, "cli").await?,
                    TrapCmd::Del { pattern } => {
                        if !store.delete_trap(&pattern).await? {
                            anyhow::bail!("{pattern} is not a trap added at run time");
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Sender { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::sender;
                use sponts::storage::SenderVerdict;
                match cmd {
                    SenderCmd::List { owner, json } => sender::list(&config, &store, owner.as_deref(), json, &mut std::io::stdout().lock()).await?,
                    SenderCmd::Allow { owner, pattern } => sender::set(&config, &store, &owner, &pattern, SenderVerdict::Allow).await?,
                    SenderCmd::Block { owner, pattern } => sender::set(&config, &store, &owner, &pattern, SenderVerdict::Block).await?,
                    SenderCmd::Del { owner, pattern } => sender::delete(&config, &store, &owner, &pattern).await?,
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Penalty { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                match cmd {
                    PenaltyCmd::List => sponts::cli::uce::penalties(&store, &mut std::io::stdout().lock()).await?,
                    PenaltyCmd::Release { ip } => {
                        if !store.release_penalty(&ip).await? {
                            anyhow::bail!("{ip} is not in the penalty box");
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Snippet { address, trap, decoy } => {
                sponts::cli::uce::snippet(&address, trap.as_deref(), &decoy, &mut std::io::stdout().lock())?;
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Intercept { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::intercept;
                let out = &mut std::io::stdout().lock();
                let ok = match cmd {
                    InterceptCmd::Add { reference, target, login, from, until, deliver, deliver_to, notes } => {
                        intercept::add(&store, intercept::NewOrder { reference, target, login, from, until, deliver, deliver_to, notes }, out).await.map(|_| true)?
                    }
                    InterceptCmd::List { json } => intercept::list(&store, json, out).await.map(|_| true)?,
                    InterceptCmd::End { id } => intercept::end(&store, &id, out).await?,
                    InterceptCmd::Until { id, until } => intercept::until(&store, &id, &until, out).await?,
                    InterceptCmd::Copies { id, json } => intercept::copies(&store, id.as_deref(), json, out).await.map(|_| true)?,
                };
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Cmd::Audit { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::intercept;
                let out = &mut std::io::stdout().lock();
                let ok = match cmd {
                    AuditCmd::List { json } => intercept::audit_list(&store, json, out).await.map(|_| true)?,
                    AuditCmd::Verify => intercept::audit_verify(&store, out).await?,
                };
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Cmd::Dkim { cmd } => {
                let store = sponts::storage::Store::open(&config.storage.database_location()).await?;
                use sponts::cli::dkim;
                let (out, err) = (&mut std::io::stdout().lock(), &mut std::io::stderr().lock());
                match cmd {
                    DkimCmd::Keygen { domain, selector, algorithm } => dkim::keygen(&store, &domain, selector.as_deref(), &algorithm, out, err).await?,
                    DkimCmd::Rotate { domain, from, selector, algorithm } => {
                        dkim::rotate(&store, &domain, from.as_deref(), selector.as_deref(), algorithm.as_deref(), out, err).await?
                    }
                    DkimCmd::List { domain, json } => dkim::list(&store, domain.as_deref(), json, out).await?,
                }
                store.close().await;
                Ok(ExitCode::SUCCESS)
            }
            Cmd::CheckConfig { .. } | Cmd::Init { .. } | Cmd::Demo { .. } => unreachable!("handled above"),
        }
    })
}

/// Runs until SIGTERM or Ctrl-C; SIGHUP reads the config file again and applies it.
async fn serve(config: Config, path: Option<PathBuf>) -> Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    sponts::logging::init(&config.log);
    // Before anything else: a SIGHUP (a reload) during start-up must not end the process.
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut running = sponts::start(config).await?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                let Some(path) = &path else {
                    tracing::info!("SIGHUP: no config file to read again (embedded defaults)");
                    continue;
                };
                match sponts::preflight::load(path) {
                    Err(errors) => tracing::error!("SIGHUP: {} not applied, the running config stays:\n{errors}", path.display()),
                    Ok(new) => match running.reload(new).await {
                        Ok(_) => tracing::info!("SIGHUP: {} applied", path.display()),
                        Err(e) => tracing::error!("SIGHUP: {} not applied, the running config stays: {e:#}", path.display()),
                    },
                }
            }
        }
    }
    tracing::info!("shutting down: finishing transactions in flight");
    running.stop(std::time::Duration::from_secs(30)).await;
    Ok(ExitCode::SUCCESS)
}
