//! The DATA reader (`smtp::data::read_data`) against a plain reference of RFC 5321 DATA, on any
//! bytes, delivered in reads of any size: the data ends where the reference ends it (not one
//! octet more is consumed), an accepted message is the reference's unstuffed text within the size
//! limit, and a message with a bare CR, bare LF or NUL is never accepted (no smuggling). An
//! accepted message, stuffed again by `write_stuffed` as for the backend, reads back the same.
//!
//! Input: one octet of settings (read size, size limit, whether the wire is terminated), then the
//! wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sponts::smtp::conn::Conn;
use sponts::smtp::data::{read_data, write_stuffed, Data, DataProblem, MAX_TEXT_LINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the data ends (just past `CRLF . CRLF`, or `. CRLF` at the very start), if it does.
fn end_of_data(wire: &[u8]) -> Option<usize> {
    if wire.starts_with(b".\r\n") {
        return Some(3);
    }
    wire.windows(5).position(|w| w == b"\r\n.\r\n").map(|p| p + 5)
}

/// Reads `wire` with `read_data`, `chunk` octets per read; the result and what was left unread.
async fn read(wire: &[u8], chunk: usize, max: usize) -> (Data, Vec<u8>) {
    let (mut client, server) = tokio::io::duplex(chunk);
    let w = wire.to_vec();
    let writer = tokio::spawn(async move {
        for c in w.chunks(chunk) {
            if client.write_all(c).await.is_err() {
                return;
            }
        }
    });
    let mut conn = Conn::new(Box::new(server));
    let data = read_data(&mut conn, max, 0).await.expect("in-memory reads do not fail");
    let mut rest = Vec::new();
    loop {
        rest.extend_from_slice(conn.buffered());
        conn.consume(conn.buffered().len());
        if conn.fill().await.expect("in-memory reads do not fail") == 0 {
            break;
        }
    }
    writer.await.expect("writer");
    (data, rest)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

fuzz_target!(|input: &[u8]| {
    let Some((&settings, body)) = input.split_first() else { return };
    let chunk = 1 + (settings & 7) as usize * 3;
    let max = if settings & 8 == 0 { 1 << 20 } else { 64 + 8 * (settings >> 5) as usize };
    let mut wire = body.to_vec();
    if settings & 16 == 0 {
        wire.extend_from_slice(b"\r\n.\r\nTAIL");
    }
    let end = end_of_data(&wire);
    runtime().block_on(async {
        let (data, rest) = read(&wire, chunk, max).await;
        let Some(end) = end else {
            assert!(matches!(data, Data::Eof), "no end on the wire, yet {data:?}");
            return;
        };
        assert_eq!(rest, &wire[end..], "consumed up to another end than the reference");
        let content = &wire[..end - 3];
        let bad = content.iter().enumerate().any(|(i, &b)| {
            b == 0 || (b == b'\r' && content.get(i + 1) != Some(&b'\n')) || (b == b'\n' && (i == 0 || content[i - 1] != b'\r'))
        });
        let lines: Vec<&[u8]> = content.split_inclusive(|&b| b == b'\n').collect();
        let long = lines.iter().any(|l| l.len() > MAX_TEXT_LINE);
        let unstuffed: Vec<u8> = lines.iter().flat_map(|l| l.strip_prefix(b".").unwrap_or(l).iter().copied()).collect();
        if !bad && !long && unstuffed.len() <= max {
            assert!(matches!(data, Data::Message(_)), "a clean message within the limits was not accepted: {data:?}");
        }
        match data {
            Data::Message(m) => {
                assert!(!bad, "a message with a bare CR, bare LF or NUL was accepted");
                assert!(!long, "a line over {MAX_TEXT_LINE} octets was accepted");
                assert!(m.len() <= max, "{} octets accepted over a limit of {max}", m.len());
                assert_eq!(m, unstuffed, "not the reference's message");
                // Stuffed as for the backend, it reads back the same.
                let (near, far) = tokio::io::duplex(2 * m.len() + 1024);
                let mut out = Conn::new(Box::new(near));
                write_stuffed(&mut out, &[&m]).await.expect("in-memory writes do not fail");
                drop(out);
                let mut stuffed = Vec::new();
                let mut far = far;
                far.read_to_end(&mut stuffed).await.expect("in-memory reads do not fail");
                match read(&stuffed, chunk, max).await {
                    (Data::Message(again), rest) => {
                        assert_eq!(again, m, "stuffed for the backend, the message reads back otherwise");
                        assert!(rest.is_empty(), "stuffed for the backend, the data ends early");
                    }
                    (other, _) => panic!("stuffed for the backend, the message reads back as {other:?}"),
                }
            }
            Data::Refused(DataProblem::BadLineEnding) => assert!(bad, "refused as a bad line ending, but the reference sees none"),
            Data::Refused(DataProblem::LineTooLong) => assert!(long, "refused as too long a line, but no line is"),
            Data::Refused(DataProblem::TooBig) => assert!(unstuffed.len() > max, "refused as too big at {} of {max}", unstuffed.len()),
            Data::Eof => panic!("Eof although the wire ends the data at {end}"),
        }
    });
});
