//! The slice of BER (X.690) that LDAPv3 uses: definite lengths, one-byte tags. Encoding builds
//! byte vectors; decoding walks a slice and fails — never panics — on anything malformed.

/// Universal tags and the LDAP application tags sponts reads or writes.
pub const INTEGER: u8 = 0x02;
pub const OCTETS: u8 = 0x04;
pub const ENUMERATED: u8 = 0x0a;
pub const BOOLEAN: u8 = 0x01;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed LDAP message: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// Tag, length, value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// An INTEGER or ENUMERATED in the fewest two's-complement bytes.
pub fn int(tag: u8, v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(tag, &bytes[start..])
}

pub fn octets(s: &[u8]) -> Vec<u8> {
    tlv(OCTETS, s)
}

/// One decoded element: its tag and the bytes of its value.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

/// How many bytes the header announces, from the first bytes of a message: `Ok(None)` while
/// more header bytes are needed, `Ok(Some((header_len, body_len)))` once known.
pub fn header(buf: &[u8]) -> Result<Option<(usize, usize)>, Malformed> {
    let (Some(&tag), Some(&first)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if tag & 0x1f == 0x1f {
        return Err(Malformed("multi-byte tag"));
    }
    if first < 0x80 {
        return Ok(Some((2, first as usize)));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return Err(Malformed("unsupported length form"));
    }
    let Some(bytes) = buf.get(2..2 + n) else {
        return Ok(None);
    };
    let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
    Ok(Some((2 + n, len)))
}

/// Reads the next element off the front of `buf`.
pub fn next<'a>(buf: &mut &'a [u8]) -> Result<Tlv<'a>, Malformed> {
    let (head, len) = header(buf)?.ok_or(Malformed("truncated header"))?;
    let end = head.checked_add(len).ok_or(Malformed("length overflow"))?;
    let whole: &'a [u8] = buf;
    let body = whole.get(head..end).ok_or(Malformed("truncated value"))?;
    let tag = whole[0];
    *buf = &whole[end..];
    Ok(Tlv { tag, body })
}

/// The next element, which must carry `tag`.
pub fn expect<'a>(buf: &mut &'a [u8], tag: u8) -> Result<&'a [u8], Malformed> {
    let t = next(buf)?;
    if t.tag != tag {
        return Err(Malformed("unexpected element"));
    }
    Ok(t.body)
}

/// A signed integer of at most 8 bytes.
pub fn to_int(body: &[u8]) -> Result<i64, Malformed> {
    if body.is_empty() || body.len() > 8 {
        return Err(Malformed("bad integer"));
    }
    let init: i64 = if body[0] & 0x80 != 0 { -1 } else { 0 };
    Ok(body.iter().fold(init, |acc, b| (acc << 8) | *b as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers_round_trip() {
        for n in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let v = tlv(OCTETS, &vec![7u8; n]);
            let mut s = &v[..];
            let t = next(&mut s).unwrap();
            assert_eq!((t.tag, t.body.len(), s.len()), (OCTETS, n, 0));
        }
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            -1,
            -128,
            -129,
            i32::MAX as i64,
            i64::MIN,
        ] {
            let e = int(INTEGER, v);
            let mut s = &e[..];
            assert_eq!(
                to_int(expect(&mut s, INTEGER).unwrap()).unwrap(),
                v,
                "{e:02x?}"
            );
        }
        assert_eq!(int(INTEGER, 3), [2, 1, 3]);
        assert_eq!(int(INTEGER, 128), [2, 2, 0, 128]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x30u8][..],
            &[0x30, 0x05, 1],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x1f, 0],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            let mut s = bad;
            assert!(next(&mut s).is_err(), "{bad:02x?}");
        }
        assert!(to_int(&[]).is_err());
        assert!(to_int(&[1; 9]).is_err());
    }
}
