//! dkimpy (Debian's python3-dkim), a DKIM verifier sponts did not write, given the TXT records
//! exactly as `sponts dkim keygen|rotate` print them.

use std::process::Command;

/// A printed record line: (owner name with its final dot, the TXT strings joined).
pub fn parse_line(line: &str) -> (String, String) {
    let line = line.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    let (name, rest) = line
        .split_once(" IN TXT ")
        .unwrap_or_else(|| panic!("zone-file line: {line}"));
    assert!(name.ends_with('.'), "{name}");
    let strings: Vec<&str> = rest.split('"').skip(1).step_by(2).collect();
    assert!(
        strings.iter().all(|s| s.len() <= 255),
        "each string at most 255 octets: {line}"
    );
    assert_eq!(rest.matches('"').count(), strings.len() * 2, "{line}");
    (name.to_string(), strings.concat())
}

/// dkimpy's verdict on each DKIM-Signature of `signed`, given the records as DNS: (d, s, ok).
pub fn dkimpy(signed: &[u8], records: &[&str]) -> Vec<(String, String, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("m.eml");
    std::fs::write(&msg, signed).unwrap();
    let dns: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .map(|l| parse_line(l))
        .map(|(n, v)| (n, v.into()))
        .collect();
    let script = r#"
import dkim, json, sys
msg = open(sys.argv[1], 'rb').read()
records = json.loads(sys.argv[2])
def dnsfunc(name, timeout=5):
    return records.get(name.decode() if isinstance(name, bytes) else name, '').encode() or None
d = dkim.DKIM(msg)
sigs = [v for (k, v) in d.headers if k.lower() == b'dkim-signature']
out = []
for i, sig in enumerate(sigs):
    tags = dkim.util.parse_tag_value(b''.join(sig.split()))
    ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
    out.append([tags[b'd'].decode(), tags[b's'].decode(), bool(ok)])
print(json.dumps(out))
"#;
    // dkimpy is Debian's python3-dkim: the system's Python, whatever else is first on PATH.
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&msg)
        .arg(serde_json::Value::Object(dns).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
