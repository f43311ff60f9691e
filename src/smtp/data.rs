//! The message body on the wire: reading DATA from the client and writing it to the backend.
//!
//! Smuggling defence: only `CRLF . CRLF` ends the data, and a message that contains a bare CR, a
//! bare LF or a NUL anywhere is refused whole (after reading to its real end). What reaches the
//! backend is therefore always plain CRLF text that no receiver can split differently, re-stuffed
//! by [`write_stuffed`].

use std::io;

use super::conn::Conn;

/// Why a message read from DATA cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProblem {
    /// Bigger than the configured maximum (the data was read and dropped).
    TooBig,
    /// A bare CR, bare LF or NUL.
    BadLineEnding,
    /// A line longer than 1000 octets including CRLF (RFC 5321 4.5.3.1.6).
    LineTooLong,
}

/// The result of reading DATA.
#[derive(Debug)]
pub enum Data {
    /// The message, dot-unstuffed, every line ending in CRLF.
    Message(Vec<u8>),
    /// The client sent the whole message, but it is refused for this reason.
    Refused(DataProblem),
    /// The connection ended before `CRLF . CRLF`.
    Eof,
}

pub const MAX_TEXT_LINE: usize = 1000;

/// Reads the message that follows a 354 reply, up to and including `CRLF . CRLF`.
pub async fn read_data(conn: &mut Conn, max_size: usize, size_hint: usize) -> io::Result<Data> {
    let mut msg = Vec::with_capacity(size_hint.max(4096).min(max_size));
    let mut problem: Option<DataProblem> = None;
    // Length of the current line so far, and whether the previous line ended with a proper CRLF
    // (only then can a "." line end the data).
    let mut line_len = 0usize;
    let mut after_crlf = true;
    let mut line_first = true;
    let mut prev_cr = false;
    let mut line_start_dot = false;
    // Length of the message before the current dot-led line: the terminating "." line is cut there.
    let mut dot_mark = 0usize;
    loop {
        if !conn.has_buffered_input() && conn.fill().await? == 0 {
            return Ok(Data::Eof);
        }
        let buf = conn.buffered();
        let mut i = 0;
        let mut copy_from = 0;
        let mut done = false;
        while i < buf.len() {
            let b = buf[i];
            if line_first {
                line_first = false;
                line_start_dot = b == b'.' && after_crlf;
                if line_start_dot {
                    // Drop the stuffed dot (or the terminating dot) from the copy.
                    if problem.is_none() {
                        msg.extend_from_slice(&buf[copy_from..i]);
                    }
                    dot_mark = msg.len();
                    copy_from = i + 1;
                }
            }
            if !prev_cr {
                // Fast path: ordinary octets up to the next CR, LF or NUL.
                let skip = memchr::memchr3(b'\n', b'\r', 0, &buf[i..]).unwrap_or(buf.len() - i);
                if skip > 0 {
                    line_len += skip;
                    i += skip;
                    continue;
                }
            }
            line_len += 1;
            match b {
                b'\n' => {
                    let crlf = prev_cr;
                    if !crlf {
                        problem.get_or_insert(DataProblem::BadLineEnding);
                    }
                    if line_start_dot && crlf && line_len == 3 {
                        // ".\r\n" after CRLF: the end of the data.
                        done = true;
                        i += 1;
                        break;
                    }
                    if line_len > MAX_TEXT_LINE {
                        problem.get_or_insert(DataProblem::LineTooLong);
                    }
                    after_crlf = crlf;
                    line_len = 0;
                    line_first = true;
                    prev_cr = false;
                }
                b'\r' => {
                    if prev_cr {
                        problem.get_or_insert(DataProblem::BadLineEnding);
                    }
                    prev_cr = true;
                }
                0 => {
                    problem.get_or_insert(DataProblem::BadLineEnding);
                    prev_cr = false;
                }
                _ => {
                    if prev_cr {
                        problem.get_or_insert(DataProblem::BadLineEnding);
                    }
                    prev_cr = false;
                }
            }
            i += 1;
        }
        if problem.is_none() {
            if done {
                msg.truncate(dot_mark);
            } else {
                msg.extend_from_slice(&buf[copy_from..i]);
            }
            if msg.len() > max_size {
                problem = Some(DataProblem::TooBig);
                msg = Vec::new();
            }
        }
        conn.consume(i);
        if done {
            return Ok(match problem {
                Some(p) => Data::Refused(p),
                None => Data::Message(msg),
            });
        }
    }
}

/// Writes `parts` (header lines we add, then the message) as DATA content, dot-stuffed, ending
/// with `CRLF . CRLF`. Each part must consist of CRLF-terminated lines.
pub async fn write_stuffed(conn: &mut Conn, parts: &[&[u8]]) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let mut out: Vec<u8> = Vec::with_capacity(CHUNK + 1024);
    let mut at_line_start = true;
    let mut last_two = [b'\r', b'\n'];
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            if at_line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            let line_end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map(|p| p + 1)
                .unwrap_or(rest.len());
            out.extend_from_slice(&rest[..line_end]);
            at_line_start = rest[line_end - 1] == b'\n';
            rest = &rest[line_end..];
            if out.len() >= CHUNK {
                conn.write_all(&out).await?;
                out.clear();
            }
        }
        if part.len() >= 2 {
            last_two = [part[part.len() - 2], part[part.len() - 1]];
        } else if part.len() == 1 {
            last_two = [last_two[1], part[0]];
        }
    }
    if last_two != *b"\r\n" {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    conn.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read(wire: &[u8], max: usize) -> (Data, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(wire).await.unwrap();
        client.shutdown().await.unwrap();
        let mut conn = Conn::new(Box::new(server));
        let data = read_data(&mut conn, max, 0).await.unwrap();
        let mut rest = Vec::new();
        while conn.has_buffered_input() || conn.fill().await.unwrap() > 0 {
            rest.extend_from_slice(conn.buffered());
            let n = conn.buffered().len();
            conn.consume(n);
        }
        (data, rest)
    }

    fn message(d: Data) -> Vec<u8> {
        match d {
            Data::Message(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn plain_message_and_what_follows() {
        let (d, rest) = read(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", 1000).await;
        assert_eq!(message(d), b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[tokio::test]
    async fn empty_message() {
        let (d, _) = read(b".\r\n", 1000).await;
        assert_eq!(message(d), b"");
    }

    #[tokio::test]
    async fn dot_unstuffing() {
        let (d, _) = read(b"..leading\r\n...\r\nx.\r\n.\r\n", 1000).await;
        assert_eq!(message(d), b".leading\r\n..\r\nx.\r\n");
    }

    #[tokio::test]
    async fn smuggling_variants_do_not_end_data_and_are_refused() {
        for evil in [
            &b"a\r\n\n.\nMAIL FROM:<x@y.example>\r\n"[..],
            b"a\r\n\n.\r\nMAIL FROM:<x@y.example>\r\n",
            b"a\r\n.\nMAIL FROM:<x@y.example>\r\n",
            b"a\r\n\r.\r\nMAIL FROM:<x@y.example>\r\n",
            b"a\n.\r\nMAIL FROM:<x@y.example>\r\n",
            b"a\r\n.\r\r\nMAIL FROM:<x@y.example>\r\n",
            b"a\0b\r\n",
        ] {
            let mut wire = evil.to_vec();
            wire.extend_from_slice(b"tail\r\n.\r\nNEXT\r\n");
            let (d, rest) = read(&wire, 1000).await;
            assert!(
                matches!(d, Data::Refused(DataProblem::BadLineEnding)),
                "{:?}: {d:?}",
                String::from_utf8_lossy(evil)
            );
            assert_eq!(rest, b"NEXT\r\n", "{:?}", String::from_utf8_lossy(evil));
        }
    }

    #[tokio::test]
    async fn size_and_line_limits() {
        let big = format!("{}\r\n.\r\nNEXT\r\n", "x".repeat(2000));
        let (d, rest) = read(big.as_bytes(), 100_000).await;
        assert!(matches!(d, Data::Refused(DataProblem::LineTooLong)));
        assert_eq!(rest, b"NEXT\r\n");
        let mut many = "y".repeat(900) + "\r\n";
        many = many.repeat(10) + ".\r\nNEXT\r\n";
        let (d, rest) = read(many.as_bytes(), 5000).await;
        assert!(matches!(d, Data::Refused(DataProblem::TooBig)));
        assert_eq!(rest, b"NEXT\r\n");
        let exact = format!("{}\r\n.\r\n", "z".repeat(998));
        let (d, _) = read(exact.as_bytes(), 5000).await;
        assert_eq!(message(d).len(), 1000);
    }

    #[tokio::test]
    async fn eof_inside_data() {
        let (d, _) = read(b"partial\r\n", 1000).await;
        assert!(matches!(d, Data::Eof));
    }

    #[tokio::test]
    async fn stuffing_round_trips() {
        let original: &[u8] = b".a\r\n..\r\n.\r\nend\r\n";
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut conn = Conn::new(Box::new(client));
        write_stuffed(&mut conn, &[b"X-Head: 1\r\n", original])
            .await
            .unwrap();
        drop(conn);
        let mut wire = Vec::new();
        let mut server = server;
        server.read_to_end(&mut wire).await.unwrap();
        assert_eq!(wire, b"X-Head: 1\r\n..a\r\n...\r\n..\r\nend\r\n.\r\n");
        let (d, _) = read(&wire, 1000).await;
        assert_eq!(message(d), [&b"X-Head: 1\r\n"[..], original].concat());
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The same bytes, delivered one octet per read, give the same result.
    #[tokio::test]
    async fn byte_by_byte_delivery() {
        for (wire, want) in [
            (&b"..a\r\nb\r\n.\r\nNEXT"[..], Some(&b".a\r\nb\r\n"[..])),
            (b"a\r\n\n.\r\nb\r\n.\r\nNEXT", None),
        ] {
            let (mut client, server) = tokio::io::duplex(1);
            let w = wire.to_vec();
            tokio::spawn(async move {
                for b in w {
                    client.write_all(&[b]).await.unwrap();
                }
            });
            let mut conn = Conn::new(Box::new(server));
            let d = read_data(&mut conn, 1000, 0).await.unwrap();
            match (d, want) {
                (Data::Message(m), Some(w)) => assert_eq!(m, w),
                (Data::Refused(DataProblem::BadLineEnding), None) => {}
                (d, w) => panic!("{d:?} vs {w:?}"),
            }
        }
    }
}

#[cfg(test)]
mod model_tests {
    //! `read_data` against a plain reference of RFC 5321 DATA: for any input, the same end of data,
    //! the same message, and a refusal exactly when the reference sees a bare CR, LF or NUL.
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncWriteExt;

    fn reference(wire: &[u8]) -> Option<(usize, Option<Vec<u8>>)> {
        let end = if wire.starts_with(b".\r\n") {
            3
        } else {
            wire.windows(5).position(|w| w == b"\r\n.\r\n")? + 5
        };
        let content = &wire[..end - 3];
        let bad = content.iter().enumerate().any(|(i, &b)| {
            b == 0
                || (b == b'\r' && content.get(i + 1) != Some(&b'\n'))
                || (b == b'\n' && (i == 0 || content[i - 1] != b'\r'))
        });
        if bad {
            return Some((end, None));
        }
        let mut msg = Vec::new();
        for line in content.split_inclusive(|&b| b == b'\n') {
            msg.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        Some((end, Some(msg)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn same_end_and_message_as_the_reference(parts in proptest::collection::vec(prop_oneof![
            Just(&b"a"[..]), Just(&b"."[..]), Just(&b"\r"[..]), Just(&b"\n"[..]), Just(&b"\r\n"[..]),
            Just(&b"\0"[..]), Just(&b"\r\n.\r\n"[..]), Just(&b"xyz "[..])], 0..40), chunk in 1usize..7) {
            let mut wire: Vec<u8> = parts.concat();
            wire.extend_from_slice(b"\r\n.\r\nTAIL");
            let (end, want) = reference(&wire).expect("the wire has an end");
            let got = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                let (mut client, server) = tokio::io::duplex(chunk);
                let w = wire.clone();
                tokio::spawn(async move {
                    for c in w.chunks(chunk) {
                        if client.write_all(c).await.is_err() { return; }
                    }
                });
                let mut conn = Conn::new(Box::new(server));
                let d = read_data(&mut conn, 1 << 20, 0).await.unwrap();
                let mut rest = conn.buffered().to_vec();
                while rest.len() < wire.len() - end {
                    conn.consume(conn.buffered().len());
                    if conn.fill().await.unwrap() == 0 { break; }
                    rest.extend_from_slice(conn.buffered());
                }
                (d, rest)
            });
            prop_assert_eq!(&got.1[..], &wire[end..]);
            match (got.0, want) {
                (Data::Message(m), Some(w)) => prop_assert_eq!(m, w),
                (Data::Refused(DataProblem::BadLineEnding), None) => {}
                (d, w) => prop_assert!(false, "{:?} vs {:?}", d, w),
            }
        }
    }
}
