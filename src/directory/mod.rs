//! Who may sign in: the one password check behind the web UI, the JSON API, emergency POP3 and
//! SMTP AUTH. Local accounts (`sponts user add`) always work and come first; then the sources of
//! `[directory]` — LDAP / Active Directory ([`ldap`]) and the mail server's IMAP login ([`imap`]).
//! A person a source accepts is cached as a `users` row (storage::directory) with a salted argon2
//! hash of the password it accepted: while the source cannot be reached that hash signs them in
//! for `directory.cache_hours`. [`job`] looks every cached person up again, so leavers and
//! group changes take effect at the next refresh.
//!
//! Every caller keeps its own throttling and its own answer; this only says who, if anyone, the
//! address and password belong to — and costs one argon2 computation whatever the answer.

pub mod imap;
pub mod ldap;

use anyhow::Result;

use crate::config::Config;
use crate::storage::{DirectoryUser, Store, User};

/// A person as a source describes them.
pub type Person = DirectoryUser;

/// What a source says about an address (and a password).
#[derive(Debug)]
pub enum Outcome {
    /// No such person.
    Unknown,
    /// The person exists (a lookup without a password).
    Known(Person),
    /// The password is theirs.
    Accepted(Person),
    /// The person exists; the password is wrong, empty, or the account is locked.
    Refused,
}

/// The account `address` signs in to with `password`, or `None` (unknown address, wrong or empty
/// password). `Err` only when the store cannot answer.
pub async fn sign_in(
    store: &Store,
    config: &Config,
    address: &str,
    password: &str,
) -> Result<Option<User>> {
    let address = address.trim().to_lowercase();
    // No account has a NUL in its name (and PostgreSQL refuses one in a query).
    let usable = !address.is_empty() && !address.contains('\0');
    if usable && store.is_local_account(&address).await? {
        let user = store.user(&address).await?;
        let ok = verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
        return Ok(user.filter(|_| ok));
    }
    if !usable || password.is_empty() || !config.directory.any() {
        verify(password, None).await;
        return Ok(None);
    }
    for source in sources(config, &address) {
        let ask = async {
            match source {
                Source::Ldap(l) => ldap::check(config, l, &address, Some(password)).await,
                Source::Imap => imap::login(&config.directory, &address, password)
                    .await
                    .map(|ok| {
                        if ok {
                            Outcome::Accepted(imap_person(&address))
                        } else {
                            Outcome::Refused
                        }
                    }),
            }
        };
        let said = tokio::time::timeout(config.directory.timeout.0, ask)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within directory.timeout")));
        match said {
            Ok(Outcome::Accepted(person)) => {
                let pw = password.to_string();
                let hash = tokio::task::spawn_blocking(move || crate::auth::hash_any_password(&pw))
                    .await??;
                if !store.save_directory_user(&person, Some(&hash)).await? {
                    tracing::warn!(address = %person.address, "directory: a local account has this address; the directory's is not used");
                    return Ok(None);
                }
                tracing::info!(address = %person.address, source = source.name(), "directory sign-in");
                return store.user(&person.address).await;
            }
            Ok(Outcome::Refused) => {
                verify(password, None).await;
                return Ok(None);
            }
            Ok(Outcome::Unknown | Outcome::Known(_)) => {
                if let Some((cached, _)) = store.directory_user(&address).await?
                    && cached.source == source.name()
                {
                    store.forget_directory_user(&cached.address).await?;
                    tracing::info!(address = %cached.address, source = source.name(), "directory: no longer known; removed");
                }
            }
            Err(e) => {
                tracing::warn!(
                    source = source.name(),
                    "directory unreachable, the cached sign-in is used: {e:#}"
                );
                if let Some(user) =
                    cached_sign_in(store, config, source.name(), &address, password).await?
                {
                    return Ok(Some(user));
                }
            }
        }
    }
    verify(password, None).await;
    Ok(None)
}

/// Checks `password` against the cached hash of a person of `source`, if still within its lifetime.
async fn cached_sign_in(
    store: &Store,
    config: &Config,
    source: &str,
    address: &str,
    password: &str,
) -> Result<Option<User>> {
    let cached = store.directory_user(address).await?;
    let lifetime = config.directory.cache_hours as i64 * 3_600_000_000;
    let fresh = cached.filter(|(p, _)| {
        p.source == source && p.password_us > 0 && crate::clock::now_us() - p.password_us < lifetime
    });
    let Some((person, hash)) = fresh else {
        return Ok(None);
    };
    if !verify(password, Some(hash)).await {
        return Ok(None);
    }
    tracing::info!(address = %person.address, source, "cached directory sign-in");
    store.user(&person.address).await
}

/// One argon2 verification off the async threads; `None` checks a dummy hash (same time).
async fn verify(password: &str, hash: Option<String>) -> bool {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || crate::auth::verify_password(&pw, hash.as_deref()))
        .await
        .unwrap_or(false)
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Ldap(&'a crate::config::LdapConfig),
    Imap,
}

impl Source<'_> {
    fn name(&self) -> &'static str {
        match self {
            Source::Ldap(_) => "ldap",
            Source::Imap => "imap",
        }
    }
}

/// The sources that may know `address`, in order: LDAP, then the mail server (local domains only).
fn sources<'a>(config: &'a Config, address: &str) -> Vec<Source<'a>> {
    let d = &config.directory;
    let mut out: Vec<Source<'a>> = d.ldap.iter().map(Source::Ldap).collect();
    let local_domain = address
        .rsplit_once('@')
        .is_some_and(|(_, dom)| config.is_local_domain(dom));
    if d.imap.is_some() && local_domain {
        out.push(Source::Imap);
    }
    out
}

fn imap_person(address: &str) -> Person {
    Person {
        address: address.to_string(),
        source: "imap".into(),
        dn: String::new(),
        aliases: Vec::new(),
        groups: Vec::new(),
        role: crate::storage::Role::User,
        checked_us: 0,
        password_us: 0,
    }
}

/// Trust anchors from a CA given as a PEM file's path or as the PEM text itself.
pub fn roots(ca: &str) -> Result<rustls::RootCertStore> {
    if ca.trim_start().starts_with("-----BEGIN") {
        crate::smtp::tls::roots_from_pem(ca.as_bytes())
    } else {
        crate::smtp::tls::roots_from_file(std::path::Path::new(ca.trim()))
    }
}

/// The checks of `[directory]` only the directory can make (CA contents, the filter's syntax).
pub fn check(config: &Config) -> Vec<crate::config::ConfigError> {
    let d = &config.directory;
    let mut errors = Vec::new();
    let mut problem = |key: &str, e: String| {
        errors.push(crate::preflight::problem(format!("directory.{key}"), e))
    };
    if let Some(ca) = &d.imap_ca
        && let Err(e) = roots(ca)
    {
        problem("imap_ca", format!("{e:#}"));
    }
    if let Some(l) = &d.ldap {
        if !l.ca.trim().is_empty()
            && let Err(e) = roots(&l.ca)
        {
            problem("ldap.ca", format!("{e:#}"));
        }
        if let Err(e) = ldap::filter::encode(&l.filter.replace("{addr}", "x@example.org")) {
            problem("ldap.filter", e);
        }
        if let Some(path) = &l.bind_password_file
            && let Err(e) = std::fs::read_to_string(path)
        {
            problem(
                "ldap.bind_password_file",
                format!("cannot read {}: {e}", path.display()),
            );
        }
    }
    errors
}

/// What one refresh did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    pub confirmed: usize,
    pub removed: usize,
    pub unreachable: usize,
}

/// Looks every cached directory person up again: gone or locked → removed (their sessions end),
/// changed → updated (role, aliases). A mail-server person can only be confirmed by signing in:
/// they are removed once their last sign-in is older than `cache_hours` and `web.session_hours`.
pub async fn refresh(store: &Store, config: &Config) -> Result<Refreshed> {
    let mut done = Refreshed::default();
    let lifetime = config.directory.cache_hours as i64 * 3_600_000_000;
    let mut ldap_down = false;
    for (address, source, password_us) in store.directory_users().await? {
        match (source.as_str(), &config.directory.ldap) {
            ("ldap", Some(l)) if !ldap_down => match lookup(config, l, &address).await {
                Ok(Outcome::Known(p)) => {
                    if p.address != address {
                        store.forget_directory_user(&address).await?;
                    }
                    store.save_directory_user(&p, None).await?;
                    done.confirmed += 1;
                }
                Ok(_) => {
                    store.forget_directory_user(&address).await?;
                    tracing::info!(%address, "directory: no longer in LDAP; removed");
                    done.removed += 1;
                }
                Err(e) => {
                    tracing::warn!("directory refresh: LDAP unreachable: {e:#}");
                    ldap_down = true;
                    done.unreachable += 1;
                }
            },
            ("ldap", Some(_)) => done.unreachable += 1,
            // Kept while their cached password or a web session of theirs may still be in use.
            ("imap", _)
                if config.directory.imap.is_some()
                    && crate::clock::now_us() - password_us
                        < lifetime.max(config.web.session_hours as i64 * 3_600_000_000) =>
            {
                done.confirmed += 1
            }
            _ => {
                store.forget_directory_user(&address).await?;
                done.removed += 1;
            }
        }
    }
    Ok(done)
}

/// Does the LDAP directory have a person with this address (main or alias, per the filter)?
/// For the known recipients while the mail server is down; `false` when it cannot be asked.
pub async fn knows(config: &Config, address: &str) -> bool {
    let Some(l) = &config.directory.ldap else {
        return false;
    };
    match lookup(config, l, address).await {
        Ok(Outcome::Known(_)) => true,
        Ok(_) => false,
        Err(e) => {
            tracing::warn!("directory: LDAP cannot say whether {address} exists: {e:#}");
            false
        }
    }
}

/// An LDAP lookup without a password, bounded by `directory.timeout`.
pub async fn lookup(
    config: &Config,
    l: &crate::config::LdapConfig,
    address: &str,
) -> Result<Outcome> {
    tokio::time::timeout(
        config.directory.timeout.0,
        ldap::check(config, l, address, None),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within directory.timeout")))
}

/// Refreshes every `directory.refresh` while sponts runs.
pub async fn job(config: Config, store: Store) {
    loop {
        tokio::time::sleep(config.directory.refresh.0).await;
        match refresh(&store, &config).await {
            Ok(r) if r.removed > 0 || r.unreachable > 0 => {
                tracing::info!(?r, "directory refreshed")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("directory refresh failed: {e:#}"),
        }
    }
}
