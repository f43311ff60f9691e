//! `sponts export --user ADDR [--since D --until D] --format mbox|eml-zip --out FILE`: every kept
//! message a person sent or received (their address and their aliases), oldest first, exactly as
//! it was received. mbox is mboxrd (`From ` lines in a message quoted with one more `>`); the zip
//! holds one stored (uncompressed) `.eml` per message, which any unzip and mail program opens.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;

use crate::storage::{JournalEntry, JournalFilter, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mbox,
    EmlZip,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "mbox" => Some(Format::Mbox),
            "eml-zip" | "zip" => Some(Format::EmlZip),
            _ => None,
        }
    }
}

/// Journal records read per query while collecting.
const PAGE: i64 = 500;

/// Writes `user`'s kept mail in `[since, until)` to `out` (made anew; an existing file is refused);
/// returns how many messages went in and how many records had no kept message (purged, or never
/// reached the end of DATA).
pub async fn export(
    store: &Store,
    user: &str,
    since_us: Option<i64>,
    until_us: Option<i64>,
    format: Format,
    out: &Path,
) -> Result<(usize, usize)> {
    let user = user.to_lowercase();
    let mut addresses = vec![user.clone()];
    if let Some(account) = store.user(&user).await? {
        addresses.extend(account.aliases.iter().map(|a| a.to_lowercase()));
    }
    let mut records: Vec<JournalEntry> = Vec::new();
    for page in 0.. {
        let filter = JournalFilter {
            visible_to: Some(addresses.clone()),
            since_us,
            until_us,
            limit: Some(PAGE),
            offset: Some(page * PAGE),
            ..Default::default()
        };
        let batch = store.query_journal(&filter).await?;
        let done = (batch.len() as i64) < PAGE;
        records.extend(batch.into_iter().filter(|e| e.replay_of.is_none()));
        if done {
            break;
        }
    }
    records.sort_by(|a, b| (a.time_us, &a.id).cmp(&(b.time_us, &b.id)));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| {
            format!(
                "cannot create {} (an existing file is never overwritten)",
                out.display()
            )
        })?;
    let mut w = std::io::BufWriter::new(file);
    let mut zip = ZipWriter::default();
    let (mut written, mut missing) = (0, 0);
    for e in &records {
        let Some(body) = store.body(&e.id).await? else {
            missing += 1;
            continue;
        };
        let message = crate::modules::backup::decompress(&body)
            .with_context(|| format!("the kept message of {} cannot be read", e.id))?;
        match format {
            Format::Mbox => write_mbox_entry(&mut w, &e.sender, e.time_us, &message)?,
            Format::EmlZip => zip.add(&mut w, &entry_name(e), &message)?,
        }
        written += 1;
    }
    if format == Format::EmlZip {
        zip.finish(&mut w)?;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((written, missing))
}

/// `From sender asctime-date`, then the message with `>*From ` lines given one more `>`.
fn write_mbox_entry(w: &mut impl Write, sender: &str, time_us: i64, message: &[u8]) -> Result<()> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    writeln!(w, "From {sender} {}", asctime(time_us))?;
    for line in message.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            w.write_all(b">")?;
        }
        w.write_all(line)?;
    }
    if !message.ends_with(b"\n") {
        w.write_all(b"\n")?;
    }
    w.write_all(b"\n")?;
    Ok(())
}

/// `Thu Dec  3 18:00:00 2026`, the date of an mbox `From ` line.
fn asctime(us: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = crate::clock::date(us);
    let secs = us.div_euclid(1_000_000);
    let rem = secs.rem_euclid(86_400);
    let weekday = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{weekday} {} {d:>2} {:02}:{:02}:{:02} {y}",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-12-04T180000Z-1M91...eml`: sorted by time in any file list, unique by the id.
fn entry_name(e: &JournalEntry) -> String {
    let t = crate::clock::rfc3339(e.time_us).replace(':', "");
    format!("{t}-{}.eml", e.id)
}

/// A zip of stored entries (no compression: kept mail is read back byte for byte by any unzip).
/// Sizes and offsets must fit the classic format's 32 bits (4 GiB); past that the export says so.
#[derive(Default)]
struct ZipWriter {
    offset: u64,
    central: Vec<u8>,
    entries: u16,
}

impl ZipWriter {
    fn add(&mut self, w: &mut impl Write, name: &str, data: &[u8]) -> Result<()> {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let (crc, size) = (crc.sum(), data.len());
        if self.offset + size as u64 + 1024 > u32::MAX as u64 || self.entries == u16::MAX {
            bail!(
                "the export would pass 4 GiB or 65,535 messages, the zip format's limits here: use --format mbox, or a shorter --since/--until"
            );
        }
        let local = header(0x0403_4b50, name, crc, size as u32, None);
        w.write_all(&local)?;
        w.write_all(name.as_bytes())?;
        w.write_all(data)?;
        self.central.extend_from_slice(&header(
            0x0201_4b50,
            name,
            crc,
            size as u32,
            Some(self.offset as u32),
        ));
        self.central.extend_from_slice(name.as_bytes());
        self.offset += (local.len() + name.len() + size) as u64;
        self.entries += 1;
        Ok(())
    }

    fn finish(self, w: &mut impl Write) -> Result<()> {
        w.write_all(&self.central)?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&[0, 0, 0, 0]); // this disk, the central directory's disk
        end.extend_from_slice(&self.entries.to_le_bytes());
        end.extend_from_slice(&self.entries.to_le_bytes());
        end.extend_from_slice(&(self.central.len() as u32).to_le_bytes());
        end.extend_from_slice(&(self.offset as u32).to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes()); // no comment
        w.write_all(&end)?;
        Ok(())
    }
}

/// A local file header (`at` None) or a central directory header (`at` = the local header's
/// offset), for a stored entry; the name follows it.
fn header(signature: u32, name: &str, crc: u32, size: u32, at: Option<u32>) -> Vec<u8> {
    let mut h = Vec::with_capacity(46);
    h.extend_from_slice(&signature.to_le_bytes());
    if at.is_some() {
        h.extend_from_slice(&20u16.to_le_bytes()); // made by: version 2.0
    }
    h.extend_from_slice(&20u16.to_le_bytes()); // needed to extract: 2.0
    h.extend_from_slice(&0x0800u16.to_le_bytes()); // the name is UTF-8
    h.extend_from_slice(&0u16.to_le_bytes()); // stored
    h.extend_from_slice(&0u16.to_le_bytes()); // time (the name carries it)
    h.extend_from_slice(&0x0021u16.to_le_bytes()); // date: 1980-01-01
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes()); // no extra field
    if let Some(offset) = at {
        h.extend_from_slice(&0u16.to_le_bytes()); // no comment
        h.extend_from_slice(&0u16.to_le_bytes()); // disk 0
        h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        h.extend_from_slice(&offset.to_le_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_dates_and_quoting() {
        assert_eq!(asctime(1_795_828_744_000_000), "Sat Nov 28 01:19:04 2026");
        let mut out = Vec::new();
        write_mbox_entry(
            &mut out,
            "a@b",
            0,
            b"Subject: x\r\n\r\nFrom here\r\n>From there\r\nend",
        )
        .unwrap();
        assert_eq!(out, b"From a@b Thu Jan  1 00:00:00 1970\nSubject: x\r\n\r\n>From here\r\n>>From there\r\nend\n\n");
    }
}
