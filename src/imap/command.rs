//! IMAP command syntax (RFC 3501 section 9, the commands a read-only server answers): the
//! assembled command (its literals already read in by the session) in, a [`Command`] out. Never
//! panics; anything it does not understand is an `Err` with the text for a `BAD` reply.

use super::search::{self, SearchKey};
use super::sequence::SequenceSet;

/// What a FETCH asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Flags,
    Uid,
    Size,
    InternalDate,
    Envelope,
    /// BODYSTRUCTURE (true) or BODY (false: without the extension data).
    Structure(bool),
    /// BODY[section]<partial>, BODY.PEEK, and the RFC822 forms mapped onto them.
    Section(Section),
}

/// `BODY[part.text]<start.length>`; `name` is how the reply names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Part numbers (`1.2`), empty: the whole message.
    pub part: Vec<u32>,
    pub text: SectionText,
    pub partial: Option<(u64, u64)>,
    /// Does not set \Seen (BODY.PEEK, RFC822.HEADER).
    pub peek: bool,
    /// The RFC822 forms keep their own names in the reply.
    pub legacy: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// The whole part (or message).
    Full,
    Header,
    /// HEADER.FIELDS (true) or HEADER.FIELDS.NOT (false) with these names (upper case).
    Fields(bool, Vec<String>),
    Text,
    Mime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        user: String,
        password: String,
    },
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    Namespace,
    Id,
    Enable(Vec<String>),
    List {
        reference: String,
        pattern: String,
        lsub: bool,
    },
    Status {
        mailbox: String,
        items: Vec<String>,
    },
    Select {
        mailbox: String,
        read_only: bool,
    },
    Fetch {
        set: SequenceSet,
        items: Vec<FetchItem>,
        uid: bool,
    },
    Search {
        key: SearchKey,
        uid: bool,
        charset: Option<String>,
    },
    /// STORE of \Seen (for this session; other flags are refused): `+` adds, `-` removes, `=`
    /// sets.
    Store {
        set: SequenceSet,
        uid: bool,
        mode: char,
        silent: bool,
        flags: Vec<String>,
    },
    Check,
    Close,
    Unselect,
    Idle,
    /// Commands that would change the archive (STORE, COPY, APPEND, ...): always NO [CANNOT].
    Writes(String),
}

/// A parsed line: the tag and the command, or why the command is malformed.
pub struct Parsed {
    pub tag: String,
    pub command: Result<Command, String>,
}

/// Parses one assembled command (without its final CRLF). `None`: not even a tag could be read.
pub fn parse(raw: &[u8]) -> Option<Parsed> {
    let mut p = Parser { buf: raw, pos: 0 };
    let tag = p.tag()?;
    let command = if p.sp().is_ok() {
        p.command()
    } else {
        Err("a command is missing".to_string())
    };
    Some(Parsed { tag, command })
}

pub(super) struct Parser<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

pub(super) type PResult<T> = Result<T, String>;

fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

impl<'a> Parser<'a> {
    fn tag(&mut self) -> Option<String> {
        let start = self.pos;
        while self.pos < self.buf.len()
            && is_atom_char(self.buf[self.pos])
            && self.buf[self.pos] != b'+'
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(super) fn sp(&mut self) -> PResult<()> {
        if self.peek() == Some(b' ') {
            self.pos += 1;
            Ok(())
        } else {
            Err("a space is missing".into())
        }
    }

    pub(super) fn expect(&mut self, b: u8) -> PResult<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("`{}` expected", b as char))
        }
    }

    /// An atom, also with `]` when `brackets` (a fetch item such as BODY[1]).
    pub(super) fn atom(&mut self) -> PResult<String> {
        let start = self.pos;
        while self.pos < self.buf.len()
            && is_atom_char(self.buf[self.pos])
            && self.buf[self.pos] != b'['
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err("an atom is missing".into());
        }
        Ok(String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
    }

    /// A quoted string or a literal (`{n}` CRLF n octets, already read in by the session).
    fn string(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None | Some(b'\r') | Some(b'\n') => {
                            return Err("unterminated quoted string".into());
                        }
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(out);
                        }
                        Some(b'\\') => {
                            let Some(&c) = self.buf.get(self.pos + 1) else {
                                return Err("unterminated quoted string".into());
                            };
                            if c != b'\\' && c != b'"' {
                                return Err("only \\\\ and \\\" may be escaped".into());
                            }
                            out.push(c);
                            self.pos += 2;
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let close = self.buf[self.pos..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or("bad literal")?
                    + self.pos;
                let digits = std::str::from_utf8(&self.buf[self.pos + 1..close])
                    .map_err(|_| "bad literal")?;
                let n: usize = digits
                    .trim_end_matches('+')
                    .parse()
                    .map_err(|_| "bad literal")?;
                let start = close + 3;
                if self.buf.get(close + 1..start) != Some(b"\r\n") || start + n > self.buf.len() {
                    return Err("bad literal".into());
                }
                self.pos = start + n;
                Ok(self.buf[start..start + n].to_vec())
            }
            _ => Err("a string is expected".into()),
        }
    }

    /// An atom or a string.
    pub(super) fn astring(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"' | b'{') => Ok(String::from_utf8_lossy(&self.string()?).into_owned()),
            _ => {
                let start = self.pos;
                // ASTRING-CHAR includes `]`.
                while self.pos < self.buf.len()
                    && (is_atom_char(self.buf[self.pos]) || self.buf[self.pos] == b']')
                {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err("a string is missing".into());
                }
                Ok(String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
            }
        }
    }

    /// A LIST pattern: an astring that may hold `%` and `*`.
    fn list_mailbox(&mut self) -> PResult<String> {
        if matches!(self.peek(), Some(b'"' | b'{')) {
            return self.astring();
        }
        let start = self.pos;
        while self.pos < self.buf.len()
            && (is_atom_char(self.buf[self.pos])
                || matches!(self.buf[self.pos], b'%' | b'*' | b']'))
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err("a mailbox pattern is missing".into());
        }
        Ok(String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned())
    }

    pub(super) fn number(&mut self) -> PResult<u64> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.buf[start..self.pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "a number is expected".into())
    }

    fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err("unexpected text after the command".into())
        }
    }

    fn command(&mut self) -> PResult<Command> {
        let verb = self.atom()?.to_ascii_uppercase();
        let cmd = match verb.as_str() {
            "CAPABILITY" => Command::Capability,
            "NOOP" => Command::Noop,
            "CHECK" => Command::Check,
            "LOGOUT" => Command::Logout,
            "STARTTLS" => Command::StartTls,
            "NAMESPACE" => Command::Namespace,
            "CLOSE" => Command::Close,
            "UNSELECT" => Command::Unselect,
            "IDLE" => Command::Idle,
            "ID" => {
                // The client's identification is not used: anything well-formed is taken.
                self.pos = self.buf.len();
                Command::Id
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.sp().is_ok() {
                    caps.push(self.atom()?.to_ascii_uppercase());
                }
                Command::Enable(caps)
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = self.astring()?;
                Command::Login { user, password }
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_ascii_uppercase();
                let initial = if self.sp().is_ok() {
                    Some(self.atom()?)
                } else {
                    None
                };
                Command::Authenticate { mechanism, initial }
            }
            "LIST" | "LSUB" => {
                self.sp()?;
                let reference = self.list_mailbox()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                Command::List {
                    reference,
                    pattern,
                    lsub: verb == "LSUB",
                }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.astring()?;
                self.sp()?;
                self.expect(b'(')?;
                let mut items = Vec::new();
                while self.peek() != Some(b')') {
                    if !items.is_empty() {
                        self.sp()?;
                    }
                    items.push(self.atom()?.to_ascii_uppercase());
                }
                self.expect(b')')?;
                Command::Status { mailbox, items }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.astring()?;
                // Parameters (CONDSTORE and the like) are not offered; ignore any given.
                self.pos = self.buf.len();
                Command::Select {
                    mailbox,
                    read_only: verb == "EXAMINE",
                }
            }
            "FETCH" => self.fetch(false)?,
            "SEARCH" => self.search(false)?,
            "UID" => {
                self.sp()?;
                let sub = self.atom()?.to_ascii_uppercase();
                match sub.as_str() {
                    "FETCH" => self.fetch(true)?,
                    "SEARCH" => self.search(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" | "MOVE" | "EXPUNGE" => {
                        self.pos = self.buf.len();
                        Command::Writes(format!("UID {sub}"))
                    }
                    _ => return Err(format!("UID {sub} is not known")),
                }
            }
            "STORE" => self.store(false)?,
            "COPY" | "MOVE" | "APPEND" | "EXPUNGE" | "CREATE" | "DELETE" | "RENAME"
            | "SUBSCRIBE" | "UNSUBSCRIBE" | "SETACL" | "SETQUOTA" | "SETMETADATA" => {
                self.pos = self.buf.len();
                Command::Writes(verb)
            }
            _ => return Err(format!("{verb} is not a command this server knows")),
        };
        self.end()?;
        Ok(cmd)
    }

    fn store(&mut self, uid: bool) -> PResult<Command> {
        self.sp()?;
        let set = SequenceSet::parse(self)?;
        self.sp()?;
        let what = self.atom()?.to_ascii_uppercase();
        let (mode, rest) = match what.as_bytes().first() {
            Some(b'+') => ('+', &what[1..]),
            Some(b'-') => ('-', &what[1..]),
            _ => ('=', &what[..]),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(format!("{what} is not a STORE item")),
        };
        self.sp()?;
        let parens = self.peek() == Some(b'(');
        if parens {
            self.pos += 1;
        }
        let mut flags = Vec::new();
        while self.peek().is_some_and(|b| b != b')') {
            if !flags.is_empty() {
                self.sp()?;
            }
            let system = self.peek() == Some(b'\\');
            if system {
                self.pos += 1;
            }
            let name = self.atom().map_err(|_| "a flag is expected".to_string())?;
            flags.push(if system { format!("\\{name}") } else { name });
            if flags.len() > 64 {
                return Err("too many flags".into());
            }
        }
        if parens {
            self.expect(b')')?;
        }
        Ok(Command::Store {
            set,
            uid,
            mode,
            silent,
            flags,
        })
    }

    fn fetch(&mut self, uid: bool) -> PResult<Command> {
        self.sp()?;
        let set = SequenceSet::parse(self)?;
        self.sp()?;
        let mut items = Vec::new();
        if self.peek() == Some(b'(') {
            self.pos += 1;
            loop {
                items.extend(self.fetch_att()?);
                match self.peek() {
                    Some(b' ') => self.pos += 1,
                    Some(b')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err("`)` expected".into()),
                }
            }
        } else {
            items.extend(self.fetch_att()?);
        }
        Ok(Command::Fetch { set, items, uid })
    }

    fn fetch_att(&mut self) -> PResult<Vec<FetchItem>> {
        let name = self.atom()?.to_ascii_uppercase();
        let plain = |legacy: &'static str, text: SectionText, peek: bool| {
            FetchItem::Section(Section {
                part: Vec::new(),
                text,
                partial: None,
                peek,
                legacy: Some(legacy),
            })
        };
        Ok(match name.as_str() {
            "ALL" => vec![
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Size,
                FetchItem::Envelope,
            ],
            "FAST" => vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Size],
            "FULL" => vec![
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Size,
                FetchItem::Envelope,
                FetchItem::Structure(false),
            ],
            "FLAGS" => vec![FetchItem::Flags],
            "UID" => vec![FetchItem::Uid],
            "RFC822.SIZE" => vec![FetchItem::Size],
            "INTERNALDATE" => vec![FetchItem::InternalDate],
            "ENVELOPE" => vec![FetchItem::Envelope],
            "BODYSTRUCTURE" => vec![FetchItem::Structure(true)],
            "RFC822" => vec![plain("RFC822", SectionText::Full, false)],
            "RFC822.HEADER" => vec![plain("RFC822.HEADER", SectionText::Header, true)],
            "RFC822.TEXT" => vec![plain("RFC822.TEXT", SectionText::Text, false)],
            "BODY" | "BODY.PEEK" | "BINARY.PEEK" | "BINARY" if self.peek() == Some(b'[') => {
                let mut s = self.section()?;
                s.peek = name.ends_with(".PEEK");
                vec![FetchItem::Section(s)]
            }
            "BODY" => vec![FetchItem::Structure(false)],
            // Mail programs ask for these; this server keeps no modification sequences.
            "MODSEQ" | "X-GM-MSGID" => Vec::new(),
            _ => return Err(format!("{name} is not a fetch item this server knows")),
        })
    }

    /// `[` section `]` [`<` start `.` length `>`].
    fn section(&mut self) -> PResult<Section> {
        self.expect(b'[')?;
        let mut part = Vec::new();
        let mut text = SectionText::Full;
        while self.peek() != Some(b']') {
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                let n = self.number()?;
                if n == 0 || n > 10_000 || part.len() >= 64 {
                    return Err("bad part number".into());
                }
                part.push(n as u32);
                if self.peek() == Some(b'.') {
                    self.pos += 1;
                }
                continue;
            }
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'.')
            {
                self.pos += 1;
            }
            let word = String::from_utf8_lossy(&self.buf[start..self.pos]).to_ascii_uppercase();
            text = match word.as_str() {
                "HEADER" => SectionText::Header,
                "TEXT" => SectionText::Text,
                "MIME" if !part.is_empty() => SectionText::Mime,
                "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                    self.sp()?;
                    self.expect(b'(')?;
                    let mut names = Vec::new();
                    while self.peek() != Some(b')') {
                        if !names.is_empty() {
                            self.sp()?;
                        }
                        names.push(self.astring()?.to_ascii_uppercase());
                        if names.len() > 256 {
                            return Err("too many header names".into());
                        }
                    }
                    self.expect(b')')?;
                    SectionText::Fields(word == "HEADER.FIELDS", names)
                }
                _ => return Err("bad section".into()),
            };
            if self.peek() != Some(b']') {
                return Err("bad section".into());
            }
        }
        self.expect(b']')?;
        let partial = if self.peek() == Some(b'<') {
            self.pos += 1;
            let start = self.number()?;
            self.expect(b'.')?;
            let len = self.number()?;
            self.expect(b'>')?;
            if len == 0 {
                return Err("a partial fetch of 0 octets".into());
            }
            Some((start, len))
        } else {
            None
        };
        Ok(Section {
            part,
            text,
            partial,
            peek: false,
            legacy: None,
        })
    }

    fn search(&mut self, uid: bool) -> PResult<Command> {
        let mut charset = None;
        let mut keys = Vec::new();
        // RETURN () options (ESEARCH) are not offered.
        while self.sp().is_ok() {
            if keys.is_empty()
                && charset.is_none()
                && self.buf[self.pos..].len() >= 8
                && self.buf[self.pos..self.pos + 8].eq_ignore_ascii_case(b"CHARSET ")
            {
                self.pos += 8;
                charset = Some(self.astring()?.to_ascii_uppercase());
                continue;
            }
            keys.push(search::parse_key(self, 0)?);
        }
        if keys.is_empty() {
            return Err("SEARCH needs a search key".into());
        }
        let key = if keys.len() == 1 {
            keys.pop().expect("one key")
        } else {
            SearchKey::And(keys)
        };
        Ok(Command::Search { key, uid, charset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Result<Command, String> {
        parse(s.as_bytes()).expect("tag").command
    }

    #[test]
    fn login_with_quoted_and_literal_strings() {
        assert_eq!(
            cmd("a LOGIN \"alice@example.org\" \"pa ss\\\"w\"").unwrap(),
            Command::Login {
                user: "alice@example.org".into(),
                password: "pa ss\"w".into()
            }
        );
        assert_eq!(
            cmd("a LOGIN {5}\r\nalice {3+}\r\npw!").unwrap(),
            Command::Login {
                user: "alice".into(),
                password: "pw!".into()
            }
        );
        assert!(cmd("a LOGIN {9}\r\nalice").is_err());
    }

    #[test]
    fn store_of_flags() {
        let Command::Store {
            uid,
            mode,
            silent,
            flags,
            ..
        } = cmd("a UID STORE 1:3 +FLAGS.SILENT (\\Seen \\Deleted)").unwrap()
        else {
            panic!()
        };
        assert!(uid && silent);
        assert_eq!(
            (mode, flags),
            ('+', vec!["\\Seen".to_string(), "\\Deleted".to_string()])
        );
        let Command::Store { mode, flags, .. } = cmd("a STORE 1 FLAGS \\Seen").unwrap() else {
            panic!()
        };
        assert_eq!((mode, flags), ('=', vec!["\\Seen".to_string()]));
        assert!(cmd("a STORE 1 +FLAGS ()").is_ok() && cmd("a STORE 1 X (\\Seen)").is_err());
    }

    #[test]
    fn fetch_items() {
        let Command::Fetch { items, uid, .. } = cmd("A1 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject From)] BODY[1.2.MIME] BODY[]<0.10> RFC822.SIZE)").unwrap() else { panic!() };
        assert!(uid);
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[2],
            FetchItem::Section(Section {
                part: vec![],
                text: SectionText::Fields(true, vec!["SUBJECT".into(), "FROM".into()]),
                partial: None,
                peek: true,
                legacy: None
            })
        );
        assert_eq!(
            items[3],
            FetchItem::Section(Section {
                part: vec![1, 2],
                text: SectionText::Mime,
                partial: None,
                peek: false,
                legacy: None
            })
        );
        assert_eq!(
            items[4],
            FetchItem::Section(Section {
                part: vec![],
                text: SectionText::Full,
                partial: Some((0, 10)),
                peek: false,
                legacy: None
            })
        );
        assert!(cmd("A1 FETCH 1 BODY[HEADER").is_err());
        assert!(cmd("A1 FETCH 1 (FLAGS").is_err());
    }

    #[test]
    fn anything_at_all_parses_or_fails_without_panicking() {
        let samples = [
            "",
            "a",
            "a ",
            "a FETCH",
            "a FETCH 1:",
            "a FETCH 1 BODY[1.",
            "a SEARCH OR",
            "a SEARCH NOT",
            "a SEARCH SINCE 1-Foo-2026",
            "a LOGIN {",
            "a LOGIN {99999999999999999999}\r\n",
            "a STATUS x (",
            "a UID",
            "a FETCH 1 BODY[]<1.",
            "a SEARCH ((((",
            "* LIST",
        ];
        for s in samples {
            let _ = parse(s.as_bytes());
        }
        let mut x: u64 = 1;
        for _ in 0..20_000 {
            let mut line = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"a (){}[]<>.:*\"\\ 1 FETCH SEARCH BODY PEEK OR NOT\r\n+0";
                line.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&line);
        }
    }
}
