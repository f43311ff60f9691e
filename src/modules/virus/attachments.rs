//! The attachment policy: file name extensions and MIME types that are refused whatever a
//! scanner says (executables, scripts), also when packed in a zip archive. Zip archives are
//! read only as far as their central directory (the file names), never unpacked.

use mail_parser::{MessageParser, MimeHeaders};

/// What was refused and why, e.g. `invoice.pdf.exe (extension exe)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked(pub String);

/// Names inside one archive looked at, at most.
const MAX_ZIP_ENTRIES: usize = 1000;

/// The first attachment (or file in a zip attachment) the policy refuses.
pub fn check(message: &[u8], extensions: &[String], types: &[String]) -> Option<Blocked> {
    if extensions.is_empty() && types.is_empty() {
        return None;
    }
    let parsed = MessageParser::default().parse(message)?;
    for part in parsed.attachments() {
        let name = part.attachment_name().unwrap_or("").to_string();
        let ctype = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase())
            .unwrap_or_default();
        if let Some(t) = types.iter().find(|t| type_matches(t, &ctype)) {
            return Some(Blocked(format!("{} (type {t})", display(&name))));
        }
        if let Some(ext) = blocked_extension(&name, extensions) {
            return Some(Blocked(format!("{} (extension {ext})", display(&name))));
        }
        if name.to_ascii_lowercase().ends_with(".zip")
            || ctype == "application/zip"
            || ctype == "application/x-zip-compressed"
        {
            for inner in zip_names(part.contents()) {
                if let Some(ext) = blocked_extension(&inner, extensions) {
                    return Some(Blocked(format!(
                        "{} in {} (extension {ext})",
                        display(&inner),
                        display(&name)
                    )));
                }
            }
        }
    }
    None
}

fn display(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).take(120).collect();
    if clean.is_empty() {
        "(no name)".into()
    } else {
        clean
    }
}

/// `application/x-msdownload`, or `application/*` for a whole type.
fn type_matches(rule: &str, ctype: &str) -> bool {
    match rule.strip_suffix("/*") {
        Some(major) => ctype
            .split('/')
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case(major)),
        None => rule.eq_ignore_ascii_case(ctype),
    }
}

fn blocked_extension<'a>(name: &str, extensions: &'a [String]) -> Option<&'a str> {
    // Trailing dots and spaces are dropped by Windows: `x.exe.` runs as `x.exe`.
    let name = name.trim_end_matches(['.', ' ']);
    let (_, ext) = name.rsplit_once('.')?;
    extensions
        .iter()
        .find(|e| e.trim_start_matches('.').eq_ignore_ascii_case(ext))
        .map(String::as_str)
}

/// The file names in a zip archive's central directory (bounds-checked; a damaged archive
/// yields what could be read).
pub fn zip_names(data: &[u8]) -> Vec<String> {
    let u16_at = |i: usize| {
        data.get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |i: usize| {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB, at the end.
    let search_from = data.len().saturating_sub(22 + 65_535);
    let Some(eocd) = (search_from..data.len().saturating_sub(21))
        .rev()
        .find(|&i| data[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
    else {
        return Vec::new();
    };
    let (Some(count), Some(mut pos)) = (u16_at(eocd + 10), u32_at(eocd + 16)) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for _ in 0..count.min(MAX_ZIP_ENTRIES) {
        if !data
            .get(pos..)
            .is_some_and(|d| d.starts_with(&[0x50, 0x4b, 0x01, 0x02]))
        {
            break;
        }
        let (Some(name_len), Some(extra), Some(comment)) =
            (u16_at(pos + 28), u16_at(pos + 30), u16_at(pos + 32))
        else {
            break;
        };
        let Some(name) = data.get(pos + 46..pos + 46 + name_len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        pos += 46 + name_len + extra + comment;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal zip (stored entries, no data) holding these names.
    pub fn zip(names: &[&str]) -> Vec<u8> {
        let mut local = Vec::new();
        let mut central = Vec::new();
        for n in names {
            let offset = local.len() as u32;
            local.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04]);
            local.extend_from_slice(&[0; 22]);
            local.extend_from_slice(&(n.len() as u16).to_le_bytes());
            local.extend_from_slice(&0u16.to_le_bytes());
            local.extend_from_slice(n.as_bytes());
            central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
            central.extend_from_slice(&[0; 24]);
            central.extend_from_slice(&(n.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(n.as_bytes());
        }
        let cd_offset = local.len() as u32;
        let mut out = local;
        out.extend_from_slice(&central);
        out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn zip_directory_names() {
        assert_eq!(
            zip_names(&zip(&["a.txt", "dir/b.exe"])),
            vec!["a.txt", "dir/b.exe"]
        );
        assert!(zip_names(b"PK\x05\x06 truncated").is_empty());
        let mut broken = zip(&["a.txt"]);
        let n = broken.len();
        broken[n - 6] = 0xff; // central directory offset past the end
        assert!(zip_names(&broken).is_empty());
    }

    #[test]
    fn extensions_and_types() {
        let ext = vec!["exe".to_string(), ".js".to_string()];
        assert_eq!(blocked_extension("Invoice.PDF.EXE", &ext), Some("exe"));
        assert_eq!(blocked_extension("run.exe. ", &ext), Some("exe"));
        assert_eq!(blocked_extension("app.js", &ext), Some(".js"));
        assert_eq!(blocked_extension("report.pdf", &ext), None);
        assert!(type_matches(
            "application/x-msdownload",
            "application/x-msdownload"
        ));
        assert!(type_matches("audio/*", "audio/mpeg"));
        assert!(!type_matches("audio/*", "application/mpeg"));
    }
}
