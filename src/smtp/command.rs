//! The SMTP command parser: one line (without CRLF) in, one [`Command`] or the reply that explains
//! what is wrong out. No I/O, no state: the session decides what a command means at its moment.

use super::address::{Address, Side, parse_path};
use super::reply::{Reply, replies};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: Option<Address>,
        params: MailParams,
    },
    Rcpt {
        to: Address,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// RFC 4954: `AUTH mechanism [initial-response]`.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A command sponts knows of but does not offer (AUTH, BDAT, ETRN, TURN ...).
    NotImplemented(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// RFC 1870 SIZE=, the size the client announces.
    pub size: Option<u64>,
    /// RFC 6152 BODY=8BITMIME (true) or 7BIT (false).
    pub eight_bit: bool,
}

/// Parses one command line. Errors are the reply to send (and count as a protocol error).
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(replies::syntax("command must be ASCII"));
    };
    if !line.is_ascii() || line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(replies::syntax("command must be printable ASCII"));
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(replies::syntax(&format!("{verb} takes no arguments")))
        }
    };
    match verb.as_str() {
        "EHLO" => Ok(Command::Ehlo(helo_name(rest, "EHLO")?)),
        "HELO" => Ok(Command::Helo(helo_name(rest, "HELO")?)),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "AUTH" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(m), initial, None) => Ok(Command::Auth {
                    mechanism: m.to_ascii_uppercase(),
                    initial: initial.map(str::to_string),
                }),
                _ => Err(replies::syntax("AUTH mechanism [initial-response]")),
            }
        }
        "BDAT" | "ETRN" | "TURN" | "ATRN" | "SEND" | "SOML" | "SAML" | "XCLIENT" | "XFORWARD" => {
            Ok(Command::NotImplemented(verb))
        }
        _ => Err(replies::unknown_command()),
    }
}

fn helo_name(rest: &str, verb: &str) -> Result<String, Reply> {
    let name = rest.trim();
    if name.is_empty() || name.contains(' ') || name.len() > 255 {
        return Err(replies::syntax(&format!("{verb} hostname")));
    }
    Ok(name.to_string())
}

/// Splits `FROM:<path> params` after the keyword; a space after the colon is tolerated.
fn keyword_path<'a>(rest: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = rest[keyword.len()..].trim_start_matches(' ');
    let inner_start = after.strip_prefix('<')?;
    let close = inner_start.find('>')?;
    let inner = &inner_start[..close];
    let params = &inner_start[close + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return None;
    }
    Some((inner, params.trim()))
}

fn parse_mail(rest: &str) -> Result<Command, Reply> {
    let (inner, params) =
        keyword_path(rest, "FROM:").ok_or_else(|| replies::syntax("MAIL FROM:<address>"))?;
    let from = parse_path(inner, Side::Sender).map_err(|_| replies::bad_address(inner))?;
    let mut p = MailParams::default();
    for param in params.split(' ').filter(|s| !s.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE"
                if !value.is_empty()
                    && value.len() <= 20
                    && value.bytes().all(|b| b.is_ascii_digit()) =>
            {
                p.size = Some(value.parse().unwrap_or(u64::MAX));
            }
            "BODY" if value.eq_ignore_ascii_case("8BITMIME") => p.eight_bit = true,
            "BODY" if value.eq_ignore_ascii_case("7BIT") => p.eight_bit = false,
            _ => return Err(replies::bad_parameter(param)),
        }
    }
    Ok(Command::Mail { from, params: p })
}

fn parse_rcpt(rest: &str) -> Result<Command, Reply> {
    let (inner, params) =
        keyword_path(rest, "TO:").ok_or_else(|| replies::syntax("RCPT TO:<address>"))?;
    if let Some(p) = params.split(' ').find(|s| !s.is_empty()) {
        return Err(replies::bad_parameter(p));
    }
    // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted; the session qualifies it.
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok(Command::Rcpt {
            to: Address {
                local: "postmaster".into(),
                domain: String::new(),
            },
        });
    }
    match parse_path(inner, Side::Recipient) {
        Ok(Some(to)) => Ok(Command::Rcpt { to }),
        _ => Err(replies::bad_address(inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes()).unwrap_or_else(|r| panic!("{line}: {r}"))
    }

    fn err(line: &str) -> u16 {
        parse(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn commands() {
        assert_eq!(
            ok("EHLO client.example"),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(ok("helo [192.0.2.1]"), Command::Helo("[192.0.2.1]".into()));
        assert_eq!(ok("DATA"), Command::Data);
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("NOOP whatever"), Command::Noop);
        assert_eq!(ok("STARTTLS"), Command::StartTls);
        assert_eq!(
            ok("auth plain xyz"),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("xyz".into())
            }
        );
        assert_eq!(err("FOO"), 500);
        assert_eq!(err("EHLO"), 501);
        assert_eq!(err("DATA now"), 501);
    }

    #[test]
    fn mail_from_with_parameters() {
        match ok("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME") {
            Command::Mail {
                from: Some(a),
                params,
            } => {
                assert_eq!(a.to_string(), "a@b.example");
                assert_eq!(
                    params,
                    MailParams {
                        size: Some(1000),
                        eight_bit: true
                    }
                );
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            ok("mail from: <>"),
            Command::Mail {
                from: None,
                params: MailParams::default()
            }
        );
        assert_eq!(err("MAIL FROM:<a@b.example> SMTPUTF8"), 555);
        assert_eq!(err("MAIL FROM:<a@b.example> SIZE=big"), 555);
        assert_eq!(err("MAIL FROM:a@b.example"), 501);
        assert_eq!(err("MAIL FROM:<a@b.example>SIZE=1"), 501);
        assert_eq!(err("MAIL TO:<a@b.example>"), 501);
        assert_eq!(err("MAIL FROM:<@x.example:a@b.example>"), 553);
    }

    #[test]
    fn rcpt_to() {
        assert!(matches!(
            ok("RCPT TO:<u@local.example>"),
            Command::Rcpt { .. }
        ));
        assert!(matches!(ok("RCPT TO:<Postmaster>"), Command::Rcpt { to } if to.domain.is_empty()));
        assert_eq!(err("RCPT TO:<u%v@local.example>"), 553);
        assert_eq!(err("RCPT TO:<u@local.example> NOTIFY=NEVER"), 555);
        assert_eq!(err("RCPT TO:<>"), 553);
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&line);
        }

        #[test]
        fn parsed_recipients_are_dot_atoms_at_hostnames(local in "[a-zA-Z0-9.%!+_\"@-]{1,20}", domain in "[a-zA-Z0-9.\\[\\]-]{1,20}") {
            let line = format!("RCPT TO:<{local}@{domain}>");
            if let Ok(Command::Rcpt { to }) = parse(line.as_bytes()) {
                prop_assert!(!to.local.contains(['%', '!', '"', '@']));
                prop_assert!(!to.local.starts_with('.') && !to.local.ends_with('.') && !to.local.contains(".."));
                prop_assert!(!to.domain.ends_with('.') && !to.domain.is_empty());
                prop_assert_eq!(to.to_string(), format!("{local}@{domain}"));
            }
        }

        #[test]
        fn mail_size_round_trips(n in 0u64..10_000_000_000) {
            let line = format!("MAIL FROM:<a@b.example> SIZE={n}");
            prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Mail { from: Some(Address { local: "a".into(), domain: "b.example".into() }), params: MailParams { size: Some(n), eight_bit: false } }));
        }
    }
}
