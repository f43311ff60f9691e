//! `sponts init [DIR]`: a new installation in one step — a commented config (the example config
//! with this site's answers filled in), the data directory, the database, and the first admin —
//! then what to do next.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The example config, every key with its default and what it does.
const EXAMPLE: &str = include_str!("../../sponts.example.toml");

pub struct InitArgs {
    pub dir: PathBuf,
    pub admin: String,
    pub password: String,
    pub data_dir: Option<PathBuf>,
    pub hostname: Option<String>,
    pub backend: Option<String>,
    pub domains: Vec<String>,
    pub listen: Vec<String>,
}

/// Where the data goes by default: `/var/lib/sponts` for a config under `/etc`, else `DIR/data`.
fn default_data_dir(dir: &Path) -> PathBuf {
    if dir.starts_with("/etc") {
        PathBuf::from("/var/lib/sponts")
    } else {
        dir.join("data")
    }
}

fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Replaces the first line that is exactly `line` (it must be there: the example config changed
/// otherwise, and a test says so).
fn set(text: &mut String, line: &str, new: &str) -> Result<()> {
    let at = text
        .find(&format!("\n{line}\n"))
        .with_context(|| format!("the example config has no line `{line}`"))?;
    text.replace_range(at + 1..at + 1 + line.len(), new);
    Ok(())
}

/// The config text for these answers.
pub fn config_text(args: &InitArgs, data_dir: &Path) -> Result<String> {
    let mut text = EXAMPLE.to_string();
    let domains = if args.domains.is_empty() {
        vec![
            args.admin
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .context("--admin: not a mail address")?,
        ]
    } else {
        args.domains.clone()
    };
    set(
        &mut text,
        r#"local = ["localhost"]"#,
        &format!("local = {}", toml_list(&domains)),
    )?;
    set(
        &mut text,
        r#"data_dir = "./sponts-data""#,
        &format!("data_dir = {:?}", data_dir.display().to_string()),
    )?;
    if let Some(b) = &args.backend {
        set(
            &mut text,
            r#"address = "127.0.0.1:25""#,
            &format!("address = {b:?}"),
        )?;
    }
    if !args.listen.is_empty() {
        set(
            &mut text,
            r#"listen = ["127.0.0.1:2525"]"#,
            &format!("listen = {}", toml_list(&args.listen)),
        )?;
    }
    if let Some(h) = &args.hostname {
        set(
            &mut text,
            r#"# hostname = "mx.example.org""#,
            &format!("hostname = {h:?}"),
        )?;
    }
    let header = format!(
        "# Written by `sponts init` on {}.\n",
        &crate::clock::rfc3339(crate::clock::now_us())[..10]
    );
    Ok(header + &text)
}

pub async fn run(args: InitArgs, out: &mut dyn Write) -> Result<()> {
    let cfg_path = std::path::absolute(args.dir.join("sponts.toml"))?;
    if cfg_path.exists() {
        bail!(
            "{} exists already: remove it, or name another directory",
            cfg_path.display()
        );
    }
    let dir = std::path::absolute(&args.dir)?;
    let data_dir = std::path::absolute(match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir(&dir),
    })?;
    let text = config_text(&args, &data_dir)?;
    // The answers must make a valid config before anything is written.
    let config =
        Config::parse(&text).map_err(|e| anyhow::anyhow!("the config would not be valid:\n{e}"))?;
    let name = crate::auth::account_name(&args.admin)?;
    if args.password.chars().count() < 8 {
        bail!("the admin's password needs at least 8 characters");
    }
    // A new data directory, or an empty one: init never takes over existing data.
    let existed = match std::fs::symlink_metadata(&data_dir) {
        Ok(m) if m.is_dir() && std::fs::read_dir(&data_dir)?.next().is_none() => true,
        Ok(_) => bail!(
            "{} exists and is not an empty directory: name another one with --data-dir",
            data_dir.display()
        ),
        Err(_) => false,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    std::fs::set_permissions(
        &data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let made = async {
        let store = crate::storage::Store::open(&config.storage.database_location()).await?;
        let hash = crate::auth::hash_password(&args.password)?;
        store
            .add_user(&name, &hash, crate::storage::Role::Admin)
            .await?;
        store.close().await;
        // The database holds password hashes and mail: its owner's only.
        for entry in std::fs::read_dir(&data_dir)? {
            let path = entry?.path();
            if std::fs::symlink_metadata(&path)?.is_file() {
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
            }
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_new(&cfg_path, text.as_bytes())
    }
    .await;
    if let Err(e) = made {
        // Leave nothing half made: the next run starts clean.
        if existed {
            for entry in std::fs::read_dir(&data_dir)?.flatten() {
                let _ = if entry.path().is_dir() {
                    std::fs::remove_dir_all(entry.path())
                } else {
                    std::fs::remove_file(entry.path())
                };
            }
        } else {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        return Err(e);
    }
    let owner = hand_to_service_user(&data_dir, &cfg_path)?;
    let scheme = if config.web.tls { "https" } else { "http" };
    writeln!(out, "sponts is set up:")?;
    writeln!(out, "  config     {}", cfg_path.display())?;
    writeln!(
        out,
        "  data       {}{}",
        data_dir.display(),
        owner
            .as_ref()
            .map(|o| format!(" (owned by {o})"))
            .unwrap_or_default()
    )?;
    writeln!(out, "  admin      {name}")?;
    writeln!(out, "  domains    {}", config.domains.local.join(", "))?;
    writeln!(out, "  backend    {}", config.backend.address)?;
    writeln!(out)?;
    writeln!(out, "Next:")?;
    writeln!(
        out,
        "  1. Read {} and adjust it (every key is explained there);",
        cfg_path.display()
    )?;
    writeln!(
        out,
        "     check it with: sponts check-config {}",
        cfg_path.display()
    )?;
    writeln!(
        out,
        "  2. Start: sponts serve --config {}   (or: systemctl enable --now sponts)",
        cfg_path.display()
    )?;
    writeln!(
        out,
        "  3. Sign in at {scheme}://{}/ as {name}",
        config.web.listen
    )?;
    writeln!(
        out,
        "  4. Send a test mail through {} and see it under Messages;",
        config
            .smtp
            .listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        out,
        "     then point your domains' MX records at this machine (docs/operations.md)."
    )?;
    if is_root() && owner.is_none() {
        writeln!(
            out,
            "Note: there is no system user `sponts`, so the files stay root's. To run as a service,"
        )?;
        writeln!(
            out,
            "create it and hand it the data: chown -R sponts:sponts {}",
            data_dir.display()
        )?;
    }
    Ok(())
}

/// Writes a file that must not exist yet, completely or not at all (a temporary file, fsynced,
/// then linked into place: a file that appeared meanwhile is not overwritten).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("toml.tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    let written = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// Run as root with a `sponts` system user (the Debian package makes one): the data becomes
/// that user's, and the config readable by its group. Returns the owner's name when it did.
fn hand_to_service_user(data_dir: &Path, cfg: &Path) -> Result<Option<String>> {
    if !is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some((uid, gid)) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "sponts")
            .then(|| Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?)))
            .flatten()
    }) else {
        return Ok(None);
    };
    for entry in walk(data_dir)? {
        std::os::unix::fs::lchown(&entry, Some(uid), Some(gid))
            .with_context(|| format!("cannot hand {} to sponts", entry.display()))?;
    }
    std::os::unix::fs::chown(cfg, Some(0), Some(gid))?;
    Ok(Some("sponts".into()))
}

/// Does this process run as root? (The owner of /proc/self is the process's user.)
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Everything under `root` (which init made), never following a symbolic link.
fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if std::fs::symlink_metadata(&out[i])?.is_dir() {
            for e in std::fs::read_dir(&out[i])? {
                out.push(e?.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_land_in_the_example_config() {
        let args = InitArgs {
            dir: "/etc/sponts".into(),
            admin: "Admin@Example.org".into(),
            password: String::new(),
            data_dir: None,
            hostname: Some("mx.example.org".into()),
            backend: Some("10.0.0.5:25".into()),
            domains: vec![],
            listen: vec!["0.0.0.0:25".into()],
        };
        let text = config_text(&args, &default_data_dir(Path::new("/etc/sponts"))).unwrap();
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.domains.local, ["example.org"]);
        assert_eq!(c.backend.address, "10.0.0.5:25");
        assert_eq!(c.smtp.hostname, "mx.example.org");
        assert_eq!(c.smtp.listen, ["0.0.0.0:25".parse().unwrap()]);
        assert_eq!(c.storage.data_dir, Path::new("/var/lib/sponts"));
        assert!(
            text.contains("# Largest message accepted"),
            "the comments stay"
        );
    }
}
