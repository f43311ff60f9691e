//! An LDAPv3 client connection (RFC 4511): TLS from the start (LDAPS) or after StartTLS, simple
//! binds, one-level-deep searches, unbind. Each message is read whole (bounded) before it is
//! parsed, so nothing sent before StartTLS's answer survives into the TLS stream.

use anyhow::{Context, Result, bail};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ber::{
    self, BOOLEAN, ENUMERATED, INTEGER, Malformed, SEQUENCE, expect, int, next, octets, tlv, to_int,
};

/// The largest message read from a server (an entry with many groups stays far below).
const MAX_MESSAGE: usize = 4 << 20;
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Conn {
    io: Box<dyn Io>,
    next_id: i64,
}

/// One entry of a search result: its DN and its attributes' values (names as the server sent them).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    /// The values of `name` (case-insensitive).
    pub fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.attrs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(String::as_str))
    }
}

/// Why a search gave no single entry.
#[derive(Debug)]
pub enum Found {
    One(Box<Entry>),
    None,
    Several,
}

struct Result_ {
    code: i64,
    message: String,
}

impl Conn {
    /// Connects to `host:port`; with `implicit` TLS at once (LDAPS), otherwise StartTLS first.
    /// Either way the server's certificate must chain to `tls`'s roots and name `host`.
    pub async fn connect(
        host: &str,
        port: u16,
        implicit: bool,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let name =
            rustls::pki_types::ServerName::try_from(host.to_string()).context("not a host name")?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        if implicit {
            let io = connector
                .connect(name, tcp)
                .await
                .context("TLS with the LDAP server failed")?;
            return Ok(Conn {
                io: Box::new(io),
                next_id: 1,
            });
        }
        let mut plain = Conn {
            io: Box::new(tcp),
            next_id: 1,
        };
        let id = plain.send(&tlv(0x77, &tlv(0x80, STARTTLS_OID))).await?;
        let (op, body) = plain.receive(id).await?;
        if op != 0x78 {
            bail!("StartTLS: unexpected answer");
        }
        let r = ldap_result(body)?;
        if r.code != 0 {
            bail!(
                "the LDAP server refused StartTLS ({}: {})",
                r.code,
                r.message
            );
        }
        let Conn { io, next_id } = plain;
        let io = connector
            .connect(name, io)
            .await
            .context("TLS (StartTLS) with the LDAP server failed")?;
        Ok(Conn {
            io: Box::new(io),
            next_id,
        })
    }

    /// A simple bind: `Ok(true)` bound, `Ok(false)` the server refused these credentials.
    /// An empty password is refused here: LDAP would take it as an unauthenticated bind.
    pub async fn bind(&mut self, dn: &str, password: &str) -> Result<bool> {
        if password.is_empty() {
            return Ok(false);
        }
        let req = tlv(
            0x60,
            &[
                int(INTEGER, 3),
                octets(dn.as_bytes()),
                tlv(0x80, password.as_bytes()),
            ]
            .concat(),
        );
        let id = self.send(&req).await?;
        let (op, body) = self.receive(id).await?;
        if op != 0x61 {
            bail!("bind: unexpected answer");
        }
        let r = ldap_result(body)?;
        match r.code {
            0 => Ok(true),
            // invalidCredentials, insufficientAccessRights, unwillingToPerform (AD: locked, disabled).
            49 | 50 | 53 => Ok(false),
            c => bail!("bind failed ({c}: {})", r.message),
        }
    }

    /// Searches the subtree under `base` for at most one entry.
    pub async fn search_one(&mut self, base: &str, filter: &[u8], attrs: &[&str]) -> Result<Found> {
        let attr_list: Vec<u8> = attrs.iter().flat_map(|a| octets(a.as_bytes())).collect();
        let body = [
            octets(base.as_bytes()),
            int(ENUMERATED, 2), // wholeSubtree
            int(ENUMERATED, 3), // derefAlways
            int(INTEGER, 2),    // two suffice to tell "several"
            int(INTEGER, 10),
            tlv(BOOLEAN, &[0]),
            filter.to_vec(),
            tlv(SEQUENCE, &attr_list),
        ]
        .concat();
        let id = self.send(&tlv(0x63, &body)).await?;
        let mut entries = Vec::new();
        loop {
            let (op, body) = self.receive(id).await?;
            match op {
                0x64 if entries.len() < 2 => entries.push(entry(body)?),
                0x64 | 0x73 => {}
                0x65 => {
                    let r = ldap_result(body)?;
                    return match (r.code, entries.len()) {
                        (0, 0) | (32, _) => Ok(Found::None),
                        (0, 1) => Ok(Found::One(Box::new(entries.remove(0)))),
                        (0 | 4, _) => Ok(Found::Several),
                        (c, _) => bail!("search failed ({c}: {})", r.message),
                    };
                }
                _ => bail!("search: unexpected answer"),
            }
        }
    }

    /// Says goodbye (the server closes the connection).
    pub async fn unbind(mut self) {
        let _ = self.send(&tlv(0x42, &[])).await;
        let _ = self.io.shutdown().await;
    }

    async fn send(&mut self, op: &[u8]) -> Result<i64> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = tlv(SEQUENCE, &[int(INTEGER, id), op.to_vec()].concat());
        self.io
            .write_all(&msg)
            .await
            .context("writing to the LDAP server")?;
        self.io.flush().await?;
        Ok(id)
    }

    /// The next message, which must answer `id`: its operation's tag and body.
    async fn receive(&mut self, id: i64) -> Result<(u8, Vec<u8>)> {
        let msg = self.read_message().await?;
        let mut s = &msg[..];
        let mut inner = expect(&mut s, SEQUENCE)?;
        let got = to_int(expect(&mut inner, INTEGER)?)?;
        let op = next(&mut inner)?;
        if got == 0 {
            bail!("the LDAP server closed the connection (notice of disconnection)");
        }
        if got != id {
            bail!("an answer to another request");
        }
        Ok((op.tag, op.body.to_vec()))
    }

    async fn read_message(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(64);
        let mut byte = [0u8; 1];
        let (head, len) = loop {
            if let Some(h) = ber::header(&buf)? {
                break h;
            }
            if buf.len() >= 6 {
                bail!(Malformed("header too long"));
            }
            let n = self
                .io
                .read(&mut byte)
                .await
                .context("reading from the LDAP server")?;
            if n == 0 {
                bail!("the LDAP server closed the connection");
            }
            buf.push(byte[0]);
        };
        if len > MAX_MESSAGE {
            bail!("an LDAP message of {len} bytes is too large");
        }
        buf.resize(head + len, 0);
        self.io
            .read_exact(&mut buf[head..])
            .await
            .context("reading from the LDAP server")?;
        Ok(buf)
    }
}

/// resultCode, matchedDN, diagnosticMessage (the rest ignored).
fn ldap_result(body: Vec<u8>) -> Result<Result_, Malformed> {
    let mut s = &body[..];
    let code = to_int(expect(&mut s, ENUMERATED)?)?;
    let _matched = expect(&mut s, ber::OCTETS)?;
    let message = String::from_utf8_lossy(expect(&mut s, ber::OCTETS)?).into_owned();
    Ok(Result_ { code, message })
}

fn entry(body: Vec<u8>) -> Result<Entry, Malformed> {
    let mut s = &body[..];
    let dn = String::from_utf8_lossy(expect(&mut s, ber::OCTETS)?).into_owned();
    let mut list = expect(&mut s, SEQUENCE)?;
    let mut attrs = Vec::new();
    while !list.is_empty() {
        let mut attr = expect(&mut list, SEQUENCE)?;
        let name = String::from_utf8_lossy(expect(&mut attr, ber::OCTETS)?).into_owned();
        let mut vals = expect(&mut attr, ber::SET)?;
        let mut values = Vec::new();
        while !vals.is_empty() {
            values.push(String::from_utf8_lossy(expect(&mut vals, ber::OCTETS)?).into_owned());
        }
        attrs.push((name, values));
    }
    Ok(Entry { dn, attrs })
}

/// For the fuzz target and tests: parses one whole message as a search entry or result.
pub fn parse_any(msg: &[u8]) -> bool {
    let mut s = msg;
    let Ok(mut inner) = expect(&mut s, SEQUENCE) else {
        return false;
    };
    if expect(&mut inner, INTEGER).and_then(to_int).is_err() {
        return false;
    }
    let Ok(op) = next(&mut inner) else {
        return false;
    };
    match op.tag {
        0x64 => entry(op.body.to_vec()).is_ok(),
        _ => ldap_result(op.body.to_vec()).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_garbage_does_not_panic() {
        let attr = tlv(
            SEQUENCE,
            &[
                octets(b"mail"),
                tlv(ber::SET, &[octets(b"a@x"), octets(b"b@x")].concat()),
            ]
            .concat(),
        );
        let e = tlv(
            0x64,
            &[octets(b"uid=a,dc=x"), tlv(SEQUENCE, &attr)].concat(),
        );
        let msg = tlv(SEQUENCE, &[int(INTEGER, 2), e].concat());
        assert!(parse_any(&msg));
        let mut s = &msg[..];
        let mut inner = expect(&mut s, SEQUENCE).unwrap();
        expect(&mut inner, INTEGER).unwrap();
        let parsed = entry(next(&mut inner).unwrap().body.to_vec()).unwrap();
        assert_eq!(parsed.dn, "uid=a,dc=x");
        assert_eq!(parsed.values("MAIL").collect::<Vec<_>>(), ["a@x", "b@x"]);
        // Every truncation and a byte flipped anywhere: an error at worst.
        for cut in 0..msg.len() {
            parse_any(&msg[..cut]);
            let mut m = msg.clone();
            m[cut] ^= 0xff;
            parse_any(&m);
        }
    }
}
