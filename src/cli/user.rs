//! `sponts user add|passwd|del|list|alias|2fa reset`: accounts for the web UI, API and POP3.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, Write};

use crate::storage::{Role, Store};

/// Reads a password: one line from standard input, or twice from the terminal without echo.
pub fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// Asks a question on the terminal (echoed).
pub fn ask(text: &str) -> Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask on")?;
    let mut out = tty.try_clone()?;
    write!(out, "{text}")?;
    out.flush()?;
    let mut line = String::new();
    std::io::BufReader::new(tty).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

fn prompt(text: &str) -> Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for a password; use --password-stdin")?;
    let mut out = tty.try_clone()?;
    write!(out, "{text}")?;
    out.flush()?;
    let echo_off = std::process::Command::new("stty")
        .arg("-echo")
        .stdin(tty.try_clone()?)
        .status()
        .is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::BufReader::new(tty.try_clone()?).read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty")
            .arg("echo")
            .stdin(tty.try_clone()?)
            .status();
    }
    writeln!(out)?;
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub use crate::auth::account_name;

pub async fn add(store: &Store, address: &str, role: Role, password: &str) -> Result<()> {
    let name = account_name(address)?;
    if store.user(&name).await?.is_some() {
        bail!("user {name} exists already");
    }
    let hash = crate::auth::hash_password(password)?;
    store.add_user(&name, &hash, role).await?;
    if role == Role::Interception {
        store
            .audit(
                "cli",
                "account.add",
                &format!("interception account {name}"),
            )
            .await?;
    }
    println!("added {} {name}", role.as_str());
    Ok(())
}

pub async fn passwd(store: &Store, address: &str, password: &str) -> Result<()> {
    let name = account_name(address)?;
    let hash = crate::auth::hash_password(password)?;
    if !store.set_password(&name, &hash).await? {
        bail!("no user {name}");
    }
    println!("password of {name} changed");
    Ok(())
}

pub async fn del(store: &Store, address: &str) -> Result<()> {
    let name = account_name(address)?;
    if !store.delete_user(&name).await? {
        bail!("no user {name}");
    }
    println!("removed {name}");
    Ok(())
}

/// `sponts user 2fa reset`: the account's second factor and recovery codes go, its sessions end;
/// the next sign-in enrols again (where the role needs one). Written to the audit log.
pub async fn twofactor_reset(store: &Store, address: &str, out: &mut dyn Write) -> Result<()> {
    let name = account_name(address)?;
    if store.user(&name).await?.is_none() {
        bail!("no user {name}");
    }
    let had = store.reset_second_factor(&name).await?;
    store
        .audit(&super::invoker::actor(), "account.2fa-reset", &name)
        .await?;
    tracing::info!(user = %name, "second factor reset on the machine");
    if had {
        writeln!(
            out,
            "second factor of {name} removed; the next sign-in enrols again"
        )?;
    } else {
        writeln!(out, "{name} had no second factor; its sessions are ended")?;
    }
    Ok(())
}

pub async fn alias(store: &Store, address: &str, alias: &str) -> Result<()> {
    let (name, alias) = (account_name(address)?, account_name(alias)?);
    if store.user(&name).await?.is_none() {
        bail!("no user {name}");
    }
    store
        .add_alias(&name, &alias)
        .await
        .with_context(|| format!("{alias} is an alias already"))?;
    println!("{name} now also sees mail of {alias}");
    Ok(())
}

pub async fn list(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    let users = store.users(None).await?;
    for u in &users {
        if json {
            writeln!(out, "{}", serde_json::to_string(u)?)?;
        } else {
            let aliases = if u.aliases.is_empty() {
                String::new()
            } else {
                format!("  (also {})", u.aliases.join(", "))
            };
            writeln!(out, "{:<6} {}{aliases}", u.role.as_str(), u.address)?;
        }
    }
    Ok(())
}
