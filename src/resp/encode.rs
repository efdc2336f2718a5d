//! Encoders: frames, commands and replies into a caller-owned [`BytesMut`].
//!
//! Every function appends to `out` and never fails. The output is byte for byte what Redis 7
//! writes for the same value (`addReply*` in Redis's `src/networking.c`).

use core::fmt;

use bytes::{BufMut, BytesMut};

use super::Frame;

/// Appends the RESP encoding of `frame` to `out`.
///
/// Simple strings and errors cannot carry `\r` or `\n`; any found are written as spaces (as
/// Redis's `addReplyErrorLength` does), so the output always stays in sync.
///
/// ```
/// use bytes::BytesMut;
/// use respsync::resp::{encode, encoded_len, Frame};
///
/// let f = Frame::Array(vec![Frame::Integer(1), Frame::bulk("a"), Frame::NullBulk]);
/// let mut out = BytesMut::new();
/// encode(&f, &mut out);
/// assert_eq!(&out[..], b"*3\r\n:1\r\n$1\r\na\r\n$-1\r\n");
/// assert_eq!(encoded_len(&f), out.len());
/// ```
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    out.reserve(encoded_len(frame));
    encode_inner(frame, out);
}

fn encode_inner(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::SimpleString(s) => line(b'+', s, out),
        Frame::Error(s) => line(b'-', s, out),
        Frame::Integer(i) => encode_integer(*i, out),
        Frame::BulkString(b) => encode_bulk(b, out),
        Frame::NullBulk => encode_null_bulk(out),
        Frame::Array(items) => aggregate(b'*', items, out),
        Frame::NullArray => encode_null_array(out),
        Frame::Null => encode_null(out),
        Frame::Boolean(b) => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Double(d) => {
            out.put_u8(b',');
            let mut w = BufWriter(out);
            // Writing into a BytesMut cannot fail.
            let _ = write_double(*d, &mut w);
            out.put_slice(b"\r\n");
        }
        Frame::BigNumber(b) => {
            out.put_u8(b'(');
            out.put_slice(b);
            out.put_slice(b"\r\n");
        }
        Frame::BulkError(b) => length_prefixed(b'!', b, out),
        Frame::Verbatim { format, text } => {
            header(b'=', text.len() as u64 + 4, out);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Map(pairs) => {
            header(b'%', pairs.len() as u64, out);
            pairs_inner(pairs, out);
        }
        Frame::Set(items) => aggregate(b'~', items, out),
        Frame::Attribute { attrs, value } => {
            header(b'|', attrs.len() as u64, out);
            pairs_inner(attrs, out);
            encode_inner(value, out);
        }
        Frame::Push(items) => aggregate(b'>', items, out),
    }
}

fn pairs_inner(pairs: &[(Frame, Frame)], out: &mut BytesMut) {
    for (k, v) in pairs {
        encode_inner(k, out);
        encode_inner(v, out);
    }
}

fn aggregate(ty: u8, items: &[Frame], out: &mut BytesMut) {
    header(ty, items.len() as u64, out);
    for f in items {
        encode_inner(f, out);
    }
}

fn line(ty: u8, s: &[u8], out: &mut BytesMut) {
    out.put_u8(ty);
    if s.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            s.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(s);
    }
    out.put_slice(b"\r\n");
}

fn length_prefixed(ty: u8, b: &[u8], out: &mut BytesMut) {
    header(ty, b.len() as u64, out);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn header(ty: u8, n: u64, out: &mut BytesMut) {
    out.put_u8(ty);
    put_u64(n, out);
    out.put_slice(b"\r\n");
}

/// Number of bytes [`encode`] appends for `frame`, computed without encoding.
pub fn encoded_len(frame: &Frame) -> usize {
    match frame {
        Frame::SimpleString(s) | Frame::Error(s) => s.len() + 3,
        Frame::Integer(i) => 3 + i64_len(*i),
        Frame::BulkString(b) | Frame::BulkError(b) => bulk_len(b.len()),
        Frame::NullBulk | Frame::NullArray => 5,
        Frame::Null => 3,
        Frame::Boolean(_) => 4,
        Frame::Double(d) => {
            let mut c = Counter(0);
            // A counting writer cannot fail.
            let _ = write_double(*d, &mut c);
            c.0 + 3
        }
        Frame::BigNumber(b) => b.len() + 3,
        Frame::Verbatim { text, .. } => bulk_len(text.len() + 4),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            header_len(items.len()) + items.iter().map(encoded_len).sum::<usize>()
        }
        Frame::Map(pairs) => header_len(pairs.len()) + pairs_len(pairs),
        Frame::Attribute { attrs, value } => {
            header_len(attrs.len()) + pairs_len(attrs) + encoded_len(value)
        }
    }
}

fn pairs_len(pairs: &[(Frame, Frame)]) -> usize {
    pairs
        .iter()
        .map(|(k, v)| encoded_len(k) + encoded_len(v))
        .sum()
}

fn header_len(n: usize) -> usize {
    3 + u64_len(n as u64)
}

fn bulk_len(n: usize) -> usize {
    header_len(n) + n + 2
}

/// Appends a command (an array of bulk strings) to `out`: the form clients send and the
/// replication stream carries.
///
/// ```
/// use bytes::BytesMut;
/// use respsync::resp::{command_len, encode_command};
///
/// let mut out = BytesMut::new();
/// encode_command(&["SELECT", "0"], &mut out);
/// assert_eq!(&out[..], b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n");
/// assert_eq!(command_len(&["SELECT", "0"]), out.len());
/// ```
pub fn encode_command<A: AsRef<[u8]>>(argv: &[A], out: &mut BytesMut) {
    out.reserve(command_len(argv));
    header(b'*', argv.len() as u64, out);
    for a in argv {
        length_prefixed(b'$', a.as_ref(), out);
    }
}

/// Number of bytes [`encode_command`] appends for `argv`.
pub fn command_len<A: AsRef<[u8]>>(argv: &[A]) -> usize {
    header_len(argv.len())
        + argv
            .iter()
            .map(|a| bulk_len(a.as_ref().len()))
            .sum::<usize>()
}

/// Appends a simple string reply `+<s>\r\n` (`\r`/`\n` in `s` become spaces).
pub fn encode_simple(s: &[u8], out: &mut BytesMut) {
    line(b'+', s, out);
}

/// Appends `+OK\r\n`.
pub fn encode_ok(out: &mut BytesMut) {
    out.put_slice(b"+OK\r\n");
}

/// Appends an error reply `-<s>\r\n` (`\r`/`\n` in `s` become spaces, as in Redis). Redis
/// prefixes error messages with a code such as `ERR` or `READONLY`; pass it as part of `s`.
pub fn encode_error(s: &[u8], out: &mut BytesMut) {
    line(b'-', s, out);
}

/// Appends an integer reply `:<i>\r\n`.
pub fn encode_integer(i: i64, out: &mut BytesMut) {
    out.put_u8(b':');
    put_i64(i, out);
    out.put_slice(b"\r\n");
}

/// Appends a bulk string reply `$<len>\r\n<b>\r\n`.
pub fn encode_bulk(b: &[u8], out: &mut BytesMut) {
    out.reserve(bulk_len(b.len()));
    length_prefixed(b'$', b, out);
}

/// Appends the RESP2 null bulk string `$-1\r\n`.
pub fn encode_null_bulk(out: &mut BytesMut) {
    out.put_slice(b"$-1\r\n");
}

/// Appends the RESP2 null array `*-1\r\n`.
pub fn encode_null_array(out: &mut BytesMut) {
    out.put_slice(b"*-1\r\n");
}

/// Appends the RESP3 null `_\r\n`.
pub fn encode_null(out: &mut BytesMut) {
    out.put_slice(b"_\r\n");
}

/// Appends an array header `*<n>\r\n`; the caller then appends the `n` elements.
pub fn encode_array_header(n: usize, out: &mut BytesMut) {
    header(b'*', n as u64, out);
}

/// Appends a RESP3 map header `%<n>\r\n`; the caller then appends `n` key/value pairs.
pub fn encode_map_header(n: usize, out: &mut BytesMut) {
    header(b'%', n as u64, out);
}

/// Appends a RESP3 set header `~<n>\r\n`; the caller then appends the `n` elements.
pub fn encode_set_header(n: usize, out: &mut BytesMut) {
    header(b'~', n as u64, out);
}

/// Appends a RESP3 push header `><n>\r\n`; the caller then appends the `n` elements.
pub fn encode_push_header(n: usize, out: &mut BytesMut) {
    header(b'>', n as u64, out);
}

/// Appends a RESP3 double `,<d>\r\n`, formatted as Redis 7.0 does (`%.17g`, `inf`, `-inf`,
/// `nan`).
///
/// ```
/// use bytes::BytesMut;
/// use respsync::resp::encode_double;
///
/// let mut out = BytesMut::new();
/// encode_double(0.1, &mut out);
/// encode_double(f64::NEG_INFINITY, &mut out);
/// assert_eq!(&out[..], b",0.10000000000000001\r\n,-inf\r\n");
/// ```
pub fn encode_double(d: f64, out: &mut BytesMut) {
    encode_inner(&Frame::Double(d), out);
}

/// Appends a RESP3 boolean `#t\r\n` or `#f\r\n`.
pub fn encode_boolean(b: bool, out: &mut BytesMut) {
    encode_inner(&Frame::Boolean(b), out);
}

/// Appends the header of a disk-format RDB transfer, `$<len>\r\n`. The `len` RDB bytes follow
/// with no trailing CRLF.
pub fn encode_transfer_len(len: u64, out: &mut BytesMut) {
    header(b'$', len, out);
}

/// Appends the header of a diskless (EOF-marked) RDB transfer, `$EOF:<mark>\r\n`. The RDB bytes
/// follow, then the same 40-byte mark.
pub fn encode_transfer_eof(mark: &[u8; 40], out: &mut BytesMut) {
    out.put_slice(b"$EOF:");
    out.put_slice(mark);
    out.put_slice(b"\r\n");
}

/// Writes `d` the way Redis 7.0 writes RESP3 doubles (`addReplyDouble`): `inf`, `-inf`, `nan`,
/// otherwise C's `%.17g` (17 significant digits, trailing zeros dropped, exponent form below
/// 1e-4 or from 1e17 on), which always parses back to the same value.
fn write_double(d: f64, w: &mut impl fmt::Write) -> fmt::Result {
    if d.is_nan() {
        return w.write_str("nan");
    }
    if d.is_infinite() {
        return w.write_str(if d > 0.0 { "inf" } else { "-inf" });
    }
    // 17 significant digits, correctly rounded: "d.dddddddddddddddde<exp>".
    let mut sci = StackStr::default();
    fmt::write(&mut sci, format_args!("{:.16e}", d.abs()))?;
    let s = sci.as_str();
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits = [b'0'; 17];
    for (slot, b) in digits
        .iter_mut()
        .zip(mant.bytes().filter(u8::is_ascii_digit))
    {
        *slot = b;
    }
    // Significant digits without trailing zeros (at least one).
    let sig = digits.iter().rposition(|&b| b != b'0').map_or(1, |i| i + 1);
    let digit = |i: usize| char::from(digits[i]);
    if d.is_sign_negative() {
        w.write_char('-')?;
    }
    if !(-4..17).contains(&exp) {
        w.write_char(digit(0))?;
        if sig > 1 {
            w.write_char('.')?;
            (1..sig).try_for_each(|i| w.write_char(digit(i)))?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(w, "e{sign}{:02}", exp.unsigned_abs())
    } else if exp >= 0 {
        let int_digits = exp as usize + 1;
        (0..int_digits).try_for_each(|i| w.write_char(digit(i)))?;
        if sig > int_digits {
            w.write_char('.')?;
            (int_digits..sig).try_for_each(|i| w.write_char(digit(i)))?;
        }
        Ok(())
    } else {
        w.write_str("0.")?;
        (0..(-exp - 1)).try_for_each(|_| w.write_char('0'))?;
        (0..sig).try_for_each(|i| w.write_char(digit(i)))
    }
}

/// A small fixed buffer for formatting one number without allocating.
struct StackStr {
    buf: [u8; 40],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        Self {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl StackStr {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are valid UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

struct Counter(usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

struct BufWriter<'a>(&'a mut BytesMut);

impl fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

fn u64_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn i64_len(i: i64) -> usize {
    u64_len(i.unsigned_abs()) + usize::from(i < 0)
}

fn put_u64(mut n: u64, out: &mut BytesMut) {
    if n < 10 {
        out.put_u8(b'0' + n as u8);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while n > 0 {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.put_slice(&tmp[i..]);
}

fn put_i64(i: i64, out: &mut BytesMut) {
    if i < 0 {
        out.put_u8(b'-');
    }
    put_u64(i.unsigned_abs(), out);
}
