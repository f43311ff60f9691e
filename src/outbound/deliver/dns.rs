//! A small stub resolver for delivery: it asks one recursive resolver (`outbound.resolver`) and
//! keeps the answer's AD bit, which DANE needs and the resolver library does not show. Queries go
//! over UDP with EDNS (DO set, so a validating resolver reports AD), and over TCP when truncated.
//! Answers are kept for their TTL (as any stub cache would): a queue of thousands of messages to
//! one domain asks for its MX, addresses, TLSA and MTA-STS records once, not per session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::hickory_resolver::proto::op::{
    Edns, Message, MessageType, OpCode, Query, ResponseCode,
};
use mail_auth::hickory_resolver::proto::rr::rdata::TLSA;
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(5);
/// No answer is kept longer than this, whatever its TTL.
const MAX_TTL: u32 = 3600;
/// Answers kept at most; past it, the expired go, and if none had, all.
const MAX_CACHED: usize = 4096;

type Cache = Arc<Mutex<HashMap<(String, RecordType), (Instant, Message)>>>;

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
    cache: Cache,
}

impl Dns {
    /// The configured resolver, or the system's first nameserver.
    pub fn new(server: Option<SocketAddr>) -> Dns {
        Dns {
            server: server.unwrap_or_else(system_nameserver),
            cache: Cache::default(),
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
            name.to_ascii_lowercase()
        } else {
            format!("{}.", name.to_ascii_lowercase())
        };
        let key = (fqdn, rtype);
        if let Some((until, m)) = self.cache.lock().expect("dns cache").get(&key) {
            if *until > Instant::now() {
                return Ok(m.clone());
            }
        }
        let reply = self.ask(&key.0, rtype).await?;
        let ttl = cache_ttl(&reply);
        if ttl > 0 {
            let mut cache = self.cache.lock().expect("dns cache");
            if cache.len() >= MAX_CACHED {
                let now = Instant::now();
                cache.retain(|_, (until, _)| *until > now);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                (
                    Instant::now() + Duration::from_secs(ttl.into()),
                    reply.clone(),
                ),
            );
        }
        Ok(reply)
    }

    async fn ask(&self, fqdn: &str, rtype: RecordType) -> anyhow::Result<Message> {
        let name = fqdn.trim_end_matches('.');
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
        q.add_query(Query::query(Name::from_ascii(fqdn)?, rtype));
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

/// How long an answer may be kept: the smallest TTL of its answer records; for a denial (no
/// such name, or no such record) the SOA's negative TTL (RFC 2308: the smaller of its TTL and
/// MINIMUM); 0 (not kept) for failures and answers without either. At most [`MAX_TTL`].
fn cache_ttl(m: &Message) -> u32 {
    let ttl = match m.metadata.response_code {
        ResponseCode::NoError if !m.answers.is_empty() => m.answers.iter().map(|r| r.ttl).min(),
        ResponseCode::NoError | ResponseCode::NXDomain => m
            .authorities
            .iter()
            .filter_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .min(),
        _ => None,
    };
    ttl.unwrap_or(0).min(MAX_TTL)
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

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::hickory_resolver::proto::rr::Record;
    use mail_auth::hickory_resolver::proto::rr::rdata::{A, SOA};

    fn answer(code: ResponseCode, answers: &[u32], soa: Option<(u32, u32)>) -> Message {
        let name = Name::from_ascii("far.example.").unwrap();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = code;
        for ttl in answers {
            m.answers.push(Record::from_rdata(
                name.clone(),
                *ttl,
                RData::A(A::new(192, 0, 2, 1)),
            ));
        }
        if let Some((ttl, minimum)) = soa {
            m.authorities.push(Record::from_rdata(
                name.clone(),
                ttl,
                RData::SOA(SOA::new(name.clone(), name, 1, 3600, 600, 86400, minimum)),
            ));
        }
        m
    }

    #[test]
    fn answers_are_kept_for_their_smallest_ttl_and_denials_for_the_soas() {
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NoError, &[300, 60], None)),
            60
        );
        assert_eq!(cache_ttl(&answer(ResponseCode::NoError, &[0], None)), 0);
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NoError, &[86400], None)),
            MAX_TTL
        );
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NXDomain, &[], Some((900, 120)))),
            120
        );
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NoError, &[], Some((30, 120)))),
            30
        );
        assert_eq!(cache_ttl(&answer(ResponseCode::NXDomain, &[], None)), 0);
        assert_eq!(cache_ttl(&answer(ResponseCode::ServFail, &[300], None)), 0);
    }

    /// A resolver on loopback that answers every query with one A record of `ttl`, counting.
    async fn resolver(ttl: u32) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let q = Message::from_vec(&buf[..n]).unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut a = answer(ResponseCode::NoError, &[ttl], None);
                a.metadata.id = q.metadata.id;
                let _ = socket.send_to(&a.to_vec().unwrap(), from).await;
            }
        });
        (addr, asked)
    }

    #[tokio::test]
    async fn a_second_lookup_within_the_ttl_is_answered_from_the_cache() {
        for (ttl, queries) in [(60, 1), (0, 2)] {
            let (addr, asked) = resolver(ttl).await;
            let dns = Dns::new(Some(addr));
            for _ in 0..2 {
                let found = dns.addresses("Far.Example").await.unwrap();
                assert_eq!(found.records().first(), Some(&IpAddr::from([192, 0, 2, 1])));
            }
            // Two lookups ask for A and AAAA each: one query per type when kept, else two.
            assert_eq!(
                asked.load(std::sync::atomic::Ordering::SeqCst),
                2 * queries,
                "ttl {ttl}"
            );
        }
    }
}
