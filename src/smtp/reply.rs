//! SMTP replies as values: a code, an enhanced status code (RFC 3463) and text. Every reply sponts
//! itself sends is built here, so the wording lives in one place.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.1.1`; empty for replies that carry none (220, 221 greeting lines).
    pub enhanced: String,
    /// One entry per line; never contains CR or LF.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.into(),
            lines: vec![text.into()],
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The text of all lines joined, as it is stored in the journal.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// `550 5.1.1 text`, the single-line form for logs and the journal.
    pub fn summary(&self) -> String {
        if self.enhanced.is_empty() {
            format!("{} {}", self.code, self.text())
        } else {
            format!("{} {} {}", self.code, self.enhanced, self.text())
        }
    }

    /// Wire form, multi-line aware, CRLF terminated.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let line = self.lines.get(i).map(String::as_str).unwrap_or("");
            let line: String = line.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            if self.enhanced.is_empty() {
                out.extend_from_slice(format!("{}{}{}\r\n", self.code, sep, line).as_bytes());
            } else {
                out.extend_from_slice(
                    format!("{}{}{} {}\r\n", self.code, sep, self.enhanced, line).as_bytes(),
                );
            }
        }
    }

    /// Splits a backend reply text into enhanced code and text, if it carries one.
    pub fn from_backend(code: u16, lines: Vec<String>) -> Reply {
        let mut enhanced = String::new();
        let lines: Vec<String> = lines
            .into_iter()
            .map(|l| match split_enhanced(&l) {
                Some((e, rest)) => {
                    if enhanced.is_empty() {
                        enhanced = e.to_string();
                    }
                    rest.to_string()
                }
                None => l,
            })
            .collect();
        Reply {
            code,
            enhanced,
            lines,
        }
    }
}

fn split_enhanced(line: &str) -> Option<(&str, &str)> {
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut parts = first.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts.clone().count() == 2
        && parts.all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some((first, rest))
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Replies of sponts' own (those of the backend are passed through as they come).
pub mod replies {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }
    pub fn bye() -> Reply {
        Reply::new(221, "2.0.0", "Bye")
    }
    pub fn start_data() -> Reply {
        Reply::new(354, "", "End data with <CR><LF>.<CR><LF>")
    }
    /// RFC 2920: DATA ends a pipelined group; the message may follow only the 354.
    pub fn improper_pipelining() -> Reply {
        Reply::new(
            554,
            "5.5.0",
            "Error: SMTP protocol synchronization: data sent before the 354 reply",
        )
    }
    pub fn ready_tls() -> Reply {
        Reply::new(220, "2.0.0", "Ready to start TLS")
    }
    pub fn syntax(what: &str) -> Reply {
        Reply::new(501, "5.5.4", format!("Syntax: {what}"))
    }
    pub fn unknown_command() -> Reply {
        Reply::new(500, "5.5.1", "Command unrecognized")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "Line too long")
    }
    pub fn bad_sequence(what: &str) -> Reply {
        Reply::new(503, "5.5.1", what)
    }
    pub fn not_implemented(what: &str) -> Reply {
        Reply::new(502, "5.5.1", format!("{what} not implemented"))
    }
    pub fn bad_parameter(what: &str) -> Reply {
        Reply::new(555, "5.5.4", format!("Unsupported parameter {what}"))
    }
    pub fn bad_address(addr: &str) -> Reply {
        Reply::new(553, "5.1.3", format!("<{addr}>: Bad address syntax"))
    }
    /// The one "user unknown" answer, the same for a real unknown user (the backend's 550
    /// 5.1.1), a locked disposable address and mail refused as spam: harvesters cannot tell them
    /// apart.
    pub fn user_unknown(addr: &str) -> Reply {
        Reply::new(
            550,
            "5.1.1",
            format!("<{addr}>: Recipient address rejected: User unknown"),
        )
    }
    /// Is this a backend's "no such user"? RFC 3463's 5.1.1, and Exchange's 5.1.10
    /// (RESOLVER.ADR.RecipientNotFound).
    pub fn is_user_unknown(r: &Reply) -> bool {
        r.code == 550 && matches!(r.enhanced.as_str(), "5.1.1" | "5.1.10")
    }
    pub fn relay_denied(addr: &str) -> Reply {
        Reply::new(554, "5.7.1", format!("<{addr}>: Relay access denied"))
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "Too many recipients")
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, "5.5.1", "No valid recipients")
    }
    pub fn size_exceeded() -> Reply {
        Reply::new(552, "5.3.4", "Message size exceeds fixed limit")
    }
    pub fn bad_line_ending() -> Reply {
        Reply::new(
            554,
            "5.6.0",
            "Message contains bare CR, bare LF or NUL; refused",
        )
    }
    pub fn data_line_too_long() -> Reply {
        Reply::new(
            554,
            "5.6.0",
            "Message contains a line longer than 1000 octets",
        )
    }
    pub fn backend_unavailable() -> Reply {
        Reply::new(
            451,
            "4.4.1",
            "Mail server temporarily unavailable, try again later",
        )
    }
    pub fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, try again later")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "Too many errors, closing connection")
    }
    pub fn timeout() -> Reply {
        Reply::new(421, "4.4.2", "Timeout, closing connection")
    }
    pub fn session_too_long() -> Reply {
        Reply::new(421, "4.4.2", "Session too long, closing connection")
    }
    pub fn too_many_connections() -> Reply {
        Reply::new(421, "4.7.0", "Too many connections, try again later")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down, try again later")
    }
    pub fn tls_unavailable() -> Reply {
        Reply::new(454, "4.7.0", "TLS not available")
    }
    pub fn need_helo() -> Reply {
        Reply::new(503, "5.5.1", "Send EHLO or HELO first")
    }
    pub fn vrfy() -> Reply {
        Reply::new(
            252,
            "2.5.0",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(550, "5.1.1", "User unknown").write_to(&mut out);
        assert_eq!(out, b"550 5.1.1 User unknown\r\n");
        let mut out = Vec::new();
        Reply {
            code: 250,
            enhanced: String::new(),
            lines: vec!["a".into(), "b".into()],
        }
        .write_to(&mut out);
        assert_eq!(out, b"250-a\r\n250 b\r\n");
    }

    #[test]
    fn reply_text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(250, "2.0.0", "x\r\n250 evil").write_to(&mut out);
        assert_eq!(out, b"250 2.0.0 x250 evil\r\n");
    }

    #[test]
    fn backend_replies_keep_their_enhanced_code() {
        assert!(replies::is_user_unknown(&Reply::from_backend(
            550,
            vec![
                "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
                    .into()
            ]
        )));
        assert!(!replies::is_user_unknown(&Reply::from_backend(
            550,
            vec!["5.7.1 Relaying denied".into()]
        )));
        assert!(!replies::is_user_unknown(&Reply::from_backend(
            450,
            vec!["4.1.1 try later".into()]
        )));
        let r = Reply::from_backend(550, vec!["5.1.1 <x@y>: Recipient address rejected".into()]);
        assert_eq!(r.enhanced, "5.1.1");
        assert_eq!(r.lines, vec!["<x@y>: Recipient address rejected"]);
        let r = Reply::from_backend(250, vec!["Ok".into()]);
        assert_eq!(r.enhanced, "");
        assert_eq!(r.summary(), "250 Ok");
    }
}
