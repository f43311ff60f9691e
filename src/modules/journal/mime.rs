//! What the journal keeps of a message's content: the decoded Subject (RFC 2047), the
//! Message-ID, and every attachment with its decoded file name (RFC 2231/2047), decoded size and
//! MIME type. Malformed mail never fails: whatever can be read is kept.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};

use crate::storage::AttachmentEntry;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub attachments: Vec<AttachmentEntry>,
}

/// Nested messages are followed this deep; a bomb of nested message/rfc822 parts stops here.
const MAX_DEPTH: usize = 8;
/// Attachments listed per message, at most.
const MAX_ATTACHMENTS: usize = 1000;

pub fn summarize(raw: &[u8]) -> Summary {
    let parser = MessageParser::default();
    // Most mail is a single text part: its header says all there is to keep (no attachment),
    // and parsing its body as well was a tenth of a relayed message's CPU.
    if let Some(head) = parser.parse_headers(raw) {
        if single_text(&head) {
            return Summary {
                subject: head.subject().map(clean),
                message_id: head.message_id().map(clean),
                attachments: Vec::new(),
            };
        }
    }
    full(&parser, raw)
}

/// A message of one plain or HTML text part, not marked as an attachment: the parser would list
/// no attachment for it.
fn single_text(head: &Message<'_>) -> bool {
    let text = head.content_type().is_none_or(|ct| {
        ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("plain") || s.eq_ignore_ascii_case("html"))
    });
    text && head.content_disposition().is_none()
}

fn full(parser: &MessageParser, raw: &[u8]) -> Summary {
    let Some(msg) = parser.parse(raw) else {
        return Summary::default();
    };
    let mut s = Summary {
        subject: msg.subject().map(clean),
        message_id: msg.message_id().map(clean),
        attachments: Vec::new(),
    };
    collect(&msg, 0, &mut s.attachments);
    s
}

fn collect(msg: &Message<'_>, depth: usize, out: &mut Vec<AttachmentEntry>) {
    for part in msg.attachments() {
        if out.len() >= MAX_ATTACHMENTS {
            return;
        }
        let mime_type = match part.content_type() {
            Some(ct) => match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            },
            None if part.is_message() => "message/rfc822".into(),
            None => "application/octet-stream".into(),
        };
        let filename = part
            .attachment_name()
            .map(clean)
            .or_else(|| {
                part.message()
                    .and_then(|m| m.subject())
                    .map(|s| format!("{}.eml", clean(s)))
            })
            .unwrap_or_default();
        out.push(AttachmentEntry {
            filename,
            mime_type,
            size: decoded_size(part, msg.raw_message()) as i64,
        });
        if let Some(nested) = part.message() {
            if depth < MAX_DEPTH {
                collect(nested, depth + 1, out);
            }
        }
    }
}

/// The decoded size. mail-parser leaves a base64 part it could not decode cleanly (e.g. a last
/// part whose boundary never closes) as raw text; its size is then counted from the base64 itself.
fn decoded_size(part: &MessagePart<'_>, raw: &[u8]) -> usize {
    let base64 = part
        .content_transfer_encoding()
        .is_some_and(|e| e.eq_ignore_ascii_case("base64"));
    if !(part.is_encoding_problem && base64) {
        return part.len();
    }
    let (start, end) = (
        part.offset_body as usize,
        (part.offset_end as usize).min(raw.len()),
    );
    let body = raw.get(start..end).unwrap_or_default();
    let chars = body
        .iter()
        .take_while(|&&b| b != b'=')
        .filter(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
        .count();
    chars * 3 / 4
}

/// Control characters out, length bounded: this text ends up in terminals and web pages.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(998)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_text_part_reads_only_its_header_and_says_the_same() {
        let cases: [&[u8]; 7] = [
            b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <a@b>\r\n\r\nHello\r\n",
            b"Subject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi</p>\r\n",
            b"Subject: x\r\nContent-Type: TEXT/PLAIN\r\n\r\nHi\r\n",
            b"Subject: x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nHi\r\n",
            b"Subject: x\r\nContent-Type: application/pdf\r\n\r\nJVBERi0=\r\n",
            b"Subject: x\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n",
            b"no header at all",
        ];
        for raw in cases {
            assert_eq!(
                summarize(raw),
                full(&MessageParser::default(), raw),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(single_text(
            &MessageParser::default()
                .parse_headers(cases[0] as &[u8])
                .unwrap()
        ));
        assert_eq!(summarize(cases[3]).attachments.len(), 1);
    }

    #[test]
    fn subject_and_attachments_are_decoded() {
        let raw = b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?ISO-8859-1?B?S/Zsbg==?=\r\n\
Message-ID: <abc@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hello\r\n\
--b1\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
SGVsbG8gV29ybGQh\r\n\
--b1--\r\n";
        let s = summarize(raw);
        assert_eq!(s.subject.as_deref(), Some("Grüße aus Köln"));
        assert_eq!(s.message_id.as_deref(), Some("abc@example.org"));
        assert_eq!(
            s.attachments,
            vec![AttachmentEntry {
                filename: "Rechnung März.pdf".into(),
                mime_type: "application/pdf".into(),
                size: 12
            }]
        );
    }

    #[test]
    fn base64_in_an_unclosed_last_part_is_counted_decoded() {
        let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"nc\"\r\n\r\n--nc\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVoAAAAAAAAAAAAAAAAA\r\nAAAA\r\n";
        assert_eq!(summarize(raw).attachments[0].size, 18);
    }

    #[test]
    fn garbage_does_not_fail() {
        let s = summarize(b"\xff\xfe\r\n\r\n--\r\n");
        assert!(s.attachments.is_empty());
    }
}
