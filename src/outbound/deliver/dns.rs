//! A small stub resolver for delivery: it asks one recursive resolver (`outbound.resolver`) and
//! keeps the answer's AD bit, which DANE needs and the resolver library does not show. Queries go
//! over UDP with EDNS (DO set, so a validating resolver reports AD), and over TCP when truncated.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mail_auth::hickory_resolver::proto::op::{
    Edns, Message, MessageType, OpCode, Query, ResponseCode,
};
use mail_auth::hickory_resolver::proto::rr::rdata::TLSA;
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(5);

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup<T> {
    /// Records (possibly none: NODATA), and whether the resolver validated them (AD).
    Found { records: Vec<T>, secure: bool },
    /// The name does not exist (NXDOMAIN), and whether that denial was validated.
    NoSuchName { secure: bool },
}

impl<T> Lookup<T> {
    pub fn records(&self) -> &[T] {
        match self {
            Lookup::Found { records, .. } => records,
            Lookup::NoSuchName { .. } => &[],
        }
    }

    pub fn secure(&self) -> bool {
        match self {
            Lookup::Found { secure, .. } | Lookup::NoSuchName { secure } => *secure,
        }
    }
}

/// An MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Without the trailing dot, lower case.
    pub host: String,
}

#[derive(Debug, Clone)]
pub struct Dns {
    server: SocketAddr,
}

impl Dns {
    /// The configured resolver, or the system's first nameserver.
    pub fn new(server: Option<SocketAddr>) -> Dns {
        Dns {
            server: server.unwrap_or_else(system_nameserver),
        }
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    pub async fn mx(&self, domain: &str) -> anyhow::Result<Lookup<Mx>> {
        self.lookup(domain, RecordType::MX, |d| match d {
            RData::MX(mx) => Some(Mx {
                preference: mx.preference,
                host: host_name(&mx.exchange),
            }),
            _ => None,
        })
        .await
    }

    /// A and AAAA records (A first); secure only if both answers were validated.
    pub async fn addresses(&self, host: &str) -> anyhow::Result<Lookup<IpAddr>> {
        let v4 = self
            .lookup(host, RecordType::A, |d| {
                if let RData::A(a) = d {
                    Some(IpAddr::V4(a.0))
                } else {
                    None
                }
            })
            .await?;
        let v6 = self
            .lookup(host, RecordType::AAAA, |d| {
                if let RData::AAAA(a) = d {
                    Some(IpAddr::V6(a.0))
                } else {
                    None
                }
            })
            .await;
        Ok(match (v4, v6) {
            (Lookup::NoSuchName { secure }, _) => Lookup::NoSuchName { secure },
            (
                Lookup::Found {
                    mut records,
                    secure,
                },
                Ok(v6),
            ) => {
                let secure = secure && v6.secure();
                records.extend(v6.records().iter().copied());
                Lookup::Found { records, secure }
            }
            // An AAAA failure costs only the IPv6 addresses.
            (Lookup::Found { records, .. }, Err(_)) => Lookup::Found {
                records,
                secure: false,
            },
        })
    }

    pub async fn tlsa(&self, name: &str) -> anyhow::Result<Lookup<TLSA>> {
        self.lookup(name, RecordType::TLSA, |d| {
            if let RData::TLSA(t) = d {
                Some(t.clone())
            } else {
                None
            }
        })
        .await
    }

    /// TXT records, each one's strings joined.
    pub async fn txt(&self, name: &str) -> anyhow::Result<Lookup<String>> {
        self.lookup(name, RecordType::TXT, |d| match d {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .await
    }

    async fn lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> anyhow::Result<Lookup<T>> {
        let answer = self.query(name, rtype).await?;
        let secure = answer.metadata.authentic_data;
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(Lookup::Found {
                records: answer
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .filter_map(|r| pick(&r.data))
                    .collect(),
                secure,
            }),
            ResponseCode::NXDomain => Ok(Lookup::NoSuchName { secure }),
            code => anyhow::bail!("DNS {rtype} {name}: {code}"),
        }
    }

    async fn query(&self, name: &str, rtype: RecordType) -> anyhow::Result<Message> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let mut id = [0u8; 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let id = u16::from_be_bytes(id);
        let mut q = Message::new(id, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.metadata.authentic_data = true;
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true).set_max_payload(1232);
        q.set_edns(edns);
        q.add_query(Query::query(Name::from_ascii(&fqdn)?, rtype));
        let wire = q.to_vec()?;
        let what = format!("DNS {rtype} {name} via {}", self.server);
        let reply = tokio::time::timeout(TIMEOUT, self.udp(&wire, id))
            .await
            .map_err(|_| anyhow::anyhow!("{what}: timed out"))??;
        let reply = if reply.metadata.truncation {
            tokio::time::timeout(TIMEOUT, self.tcp(&wire, id))
                .await
                .map_err(|_| anyhow::anyhow!("{what}: timed out"))??
        } else {
            reply
        };
        Ok(reply)
    }

    async fn udp(&self, wire: &[u8], id: u16) -> anyhow::Result<Message> {
        let bind: SocketAddr = if self.server.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let socket = tokio::net::UdpSocket::bind(bind).await?;
        socket.connect(self.server).await?;
        socket.send(wire).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await?;
            // A stray datagram (another id) is not our answer.
            if let Ok(m) = Message::from_vec(&buf[..n]) {
                if m.metadata.id == id && m.metadata.message_type == MessageType::Response {
                    return Ok(m);
                }
            }
        }
    }

    async fn tcp(&self, wire: &[u8], id: u16) -> anyhow::Result<Message> {
        let mut s = tokio::net::TcpStream::connect(self.server).await?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        s.write_all(&framed).await?;
        let len = s.read_u16().await? as usize;
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await?;
        let m = Message::from_vec(&buf)?;
        anyhow::ensure!(m.metadata.id == id, "DNS answer for another query");
        Ok(m)
    }
}

fn host_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The first `nameserver` of /etc/resolv.conf (127.0.0.1:53 without one).
fn system_nameserver() -> SocketAddr {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .unwrap_or_else(|| "127.0.0.1:53".parse().expect("static address"))
}
