//! Where mail for a domain goes (RFC 5321 §5.1): its MX hosts by preference, the domain itself
//! when it has none, nothing at all for a null MX (RFC 7505) or a domain that does not exist.

use super::dns::{Dns, Lookup, Mx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// MX hosts, most preferred first; `secure`: the MX answer was DNSSEC-validated.
    Hosts { hosts: Vec<String>, secure: bool },
    /// The domain says it takes no mail (null MX) — a permanent failure.
    NullMx,
    /// The domain does not exist — a permanent failure.
    NoSuchDomain,
}

pub async fn route(dns: &Dns, domain: &str) -> anyhow::Result<Route> {
    Ok(match dns.mx(domain).await? {
        Lookup::NoSuchName { .. } => Route::NoSuchDomain,
        Lookup::Found { records, secure } => from_records(domain, records, secure),
    })
}

fn from_records(domain: &str, mut records: Vec<Mx>, secure: bool) -> Route {
    if records.iter().any(|m| m.host.is_empty()) {
        // RFC 7505 §3: a null MX is the only record; take it as such even among others.
        return Route::NullMx;
    }
    if records.is_empty() {
        // No MX: the domain itself is the implicit MX (its A/AAAA records).
        return Route::Hosts {
            hosts: vec![domain.to_ascii_lowercase()],
            secure,
        };
    }
    records.sort_by_key(|m| m.preference);
    let mut hosts: Vec<String> = Vec::new();
    for m in records {
        if !hosts.contains(&m.host) {
            hosts.push(m.host);
        }
    }
    Route::Hosts { hosts, secure }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(p: u16, h: &str) -> Mx {
        Mx {
            preference: p,
            host: h.into(),
        }
    }

    #[test]
    fn mx_by_preference_implicit_and_null() {
        assert_eq!(
            from_records(
                "a.example",
                vec![mx(20, "b.mx"), mx(10, "a.mx"), mx(20, "b.mx")],
                true
            ),
            Route::Hosts {
                hosts: vec!["a.mx".into(), "b.mx".into()],
                secure: true
            }
        );
        assert_eq!(
            from_records("A.example", vec![], false),
            Route::Hosts {
                hosts: vec!["a.example".into()],
                secure: false
            }
        );
        assert_eq!(
            from_records("a.example", vec![mx(0, "")], true),
            Route::NullMx
        );
    }
}
