//! The inner level of the codec: parsers over one complete, already delimited line or payload,
//! written with nom's `complete` combinators.
//!
//! The outer, resumable framer in [`decode`](super::decode) finds where each line or payload
//! ends and keeps its progress across calls; only once a line is whole does it hand the
//! content (without `\r\n`) to these parsers. Running out of input here is therefore never
//! "need more data" but a malformed value, and every parser must consume its whole input
//! (`all_consuming`).

use nom::branch::alt;
use nom::bytes::complete::{tag, take};
use nom::character::complete::{char, digit0, digit1, satisfy};
use nom::combinator::{all_consuming, eof, map, map_opt, opt, recognize, rest, value};
use nom::sequence::{pair, preceded, tuple};
use nom::IResult;

use super::DecodeErrorKind as K;

type Res<'a, T> = IResult<&'a [u8], T>;

/// Redis's `string2ll` shape: an optional `-`, then `0` or digits without a leading zero.
/// Returns the sign and the digits.
fn ll_shape(s: &[u8]) -> Res<'_, (bool, &[u8])> {
    pair(
        map(opt(char('-')), |m| m.is_some()),
        alt((
            tag("0"),
            recognize(pair(satisfy(|c| ('1'..='9').contains(&c)), digit0)),
        )),
    )(s)
}

/// Parses a whole decimal integer with Redis's `string2ll` rules: no sign but `-`, no leading
/// zero, no `-0`, no blanks, and a value that fits an `i64`.
pub(crate) fn string2ll(s: &[u8]) -> Result<i64, K> {
    let (_, (neg, digits)) = all_consuming(ll_shape)(s).map_err(|_| K::InvalidInteger)?;
    if neg && digits == b"0" {
        return Err(K::InvalidInteger);
    }
    // Accumulate the magnitude, bounded by 2^63 (the magnitude of i64::MIN).
    let mut mag: u64 = 0;
    for &d in digits {
        mag = mag
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(d - b'0')))
            .filter(|&m| m <= i64::MAX as u64 + 1)
            .ok_or(K::Overflow)?;
    }
    if neg {
        // mag <= 2^63, so the wrapping negation is exact (2^63 becomes i64::MIN).
        Ok((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).map_err(|_| K::Overflow)
    }
}

/// A RESP3 double (the content of a `,` line): `inf`, `-inf`, `nan` (also `+inf` and
/// `-nan`), or `[+-]digits[.digits][(e|E)[+-]digits]` (either side of the point may be empty,
/// not both).
pub(crate) fn double(s: &[u8]) -> Option<f64> {
    // Numbers first: they are the common case.
    let mantissa = alt((
        recognize(pair(digit1, opt(pair(char('.'), digit0)))),
        recognize(pair(char('.'), digit1)),
    ));
    let number = recognize(tuple((
        opt(sign),
        mantissa,
        opt(tuple((
            satisfy(|c| c == 'e' || c == 'E'),
            opt(sign),
            digit1,
        ))),
    )));
    // The recognized text is ASCII and in the grammar Rust's float parser accepts.
    let number = map_opt(number, |t: &[u8]| {
        core::str::from_utf8(t).ok()?.parse().ok()
    });
    let special = alt((
        value(f64::INFINITY, alt((tag("inf"), tag("+inf")))),
        value(f64::NEG_INFINITY, tag("-inf")),
        value(f64::NAN, alt((tag("nan"), tag("-nan")))),
    ));
    let r: Res<'_, f64> = all_consuming(alt((number, special)))(s);
    r.ok().map(|(_, v)| v)
}

/// `+` or `-`.
fn sign(s: &[u8]) -> Res<'_, char> {
    satisfy(|c| c == '+' || c == '-')(s)
}

/// A RESP3 big number (the content of a `(` line): an optional sign and at least one digit.
pub(crate) fn is_big_number(s: &[u8]) -> bool {
    let r: Res<'_, _> = all_consuming(pair(opt(sign), digit1))(s);
    r.is_ok()
}

/// The payload of a RESP3 verbatim string: a 3-byte format, `:`, then the text. Returns the
/// format and the offset of the text in `s`.
pub(crate) fn verbatim(s: &[u8]) -> Option<([u8; 3], usize)> {
    let r: Res<'_, &[u8]> = preceded(pair(take(3usize), char(':')), rest)(s);
    let (_, text) = r.ok()?;
    Some(([s[0], s[1], s[2]], s.len() - text.len()))
}

/// A transfer header line (content without `\r\n`), borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer<'a> {
    Keepalive,
    Error(&'a [u8]),
    EofMark(&'a [u8; 40]),
    Len(u64),
}

/// Parses a transfer header line as Redis's `readSyncBulkPayload` does: empty, `-<error>`,
/// `$EOF:<40-byte mark>` (anything after the mark is ignored), or `$<len>` with `string2ll`
/// rules. Errors carry the position in `line`.
pub(crate) fn transfer(line: &[u8]) -> Result<Transfer<'_>, (K, usize)> {
    let keepalive = value(Transfer::Keepalive, eof);
    let error = map(preceded(char('-'), rest), Transfer::Error);
    let mark = map_opt(preceded(tag("$EOF:"), take(40usize)), |m: &[u8]| {
        <&[u8; 40]>::try_from(m).ok().map(Transfer::EofMark)
    });
    let r: Res<'_, Transfer<'_>> = alt((keepalive, error, mark))(line);
    if let Ok((_, t)) = r {
        return Ok(t);
    }
    let r: Res<'_, &[u8]> = preceded(char('$'), rest)(line);
    match r {
        Ok((_, len)) => match string2ll(len) {
            Ok(v) if v < 0 => Err((K::NegativeLength, 1)),
            Ok(v) => Ok(Transfer::Len(v.unsigned_abs())),
            Err(k) => Err((k, 1)),
        },
        // `line` is not empty here (an empty line is a keepalive).
        Err(_) => Err((K::BadTransferHeader(line.first().copied().unwrap_or(0)), 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_follows_redis() {
        assert_eq!(string2ll(b"0"), Ok(0));
        assert_eq!(string2ll(b"-12"), Ok(-12));
        assert_eq!(string2ll(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(string2ll(b"9223372036854775808"), Err(K::Overflow));
        assert_eq!(string2ll(b"-9223372036854775809"), Err(K::Overflow));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"--1",
        ] {
            assert_eq!(string2ll(bad), Err(K::InvalidInteger), "{bad:?}");
        }
    }

    #[test]
    fn doubles_as_resp3_writes_them() {
        assert_eq!(double(b"1.5"), Some(1.5));
        assert_eq!(double(b"-0.25"), Some(-0.25));
        assert_eq!(double(b"3"), Some(3.0));
        assert_eq!(double(b"1e300"), Some(1e300));
        assert_eq!(double(b"1.5E-7"), Some(1.5e-7));
        assert_eq!(double(b"+.5"), Some(0.5));
        assert_eq!(double(b"inf"), Some(f64::INFINITY));
        assert_eq!(double(b"-inf"), Some(f64::NEG_INFINITY));
        assert!(double(b"nan").is_some_and(f64::is_nan));
        for bad in [
            &b""[..],
            b".",
            b"e5",
            b"1e",
            b"1..2",
            b"infinity",
            b"NaN",
            b"1 ",
            b"0x10",
        ] {
            assert_eq!(double(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn big_numbers_and_verbatim() {
        assert!(is_big_number(
            b"3492890328409238509324850943850943825024385"
        ));
        assert!(is_big_number(b"-1"));
        assert!(!is_big_number(b"1.0"));
        assert!(!is_big_number(b""));
        assert!(!is_big_number(b"-"));
        assert_eq!(verbatim(b"txt:hi"), Some((*b"txt", 4)));
        assert_eq!(verbatim(b"mkd:"), Some((*b"mkd", 4)));
        assert_eq!(verbatim(b"txt"), None);
        assert_eq!(verbatim(b"txtx:"), None);
    }

    #[test]
    fn transfer_headers() {
        let mark = [b'm'; 40];
        let mut eof = b"$EOF:".to_vec();
        eof.extend_from_slice(&mark);
        assert_eq!(transfer(&eof), Ok(Transfer::EofMark(&mark)));
        assert_eq!(transfer(b""), Ok(Transfer::Keepalive));
        assert_eq!(transfer(b"-ERR x"), Ok(Transfer::Error(b"ERR x")));
        assert_eq!(transfer(b"$175"), Ok(Transfer::Len(175)));
        assert_eq!(transfer(b"$EOF:short"), Err((K::InvalidInteger, 1)));
        assert_eq!(transfer(b"$-1"), Err((K::NegativeLength, 1)));
        assert_eq!(transfer(b"+OK"), Err((K::BadTransferHeader(b'+'), 0)));
    }
}
