//! Incremental scanner for the command stream: finds where each complete command ends,
//! without copying, and keeps its progress inside a partly received command so a large
//! command arriving in many pieces is never rescanned from its start.

use super::error::ProtocolError;

/// Limits applied to the stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_bulk_len: u64,
    pub(crate) max_multibulk_len: u64,
    pub(crate) max_command_len: u64,
}

/// A complete command found by [`Scanner::scan`]: byte range relative to the scan base and
/// the ranges of its first two arguments (for classification).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) end: usize,
    pub(crate) argc: u32,
    pub(crate) a0: (usize, usize),
    pub(crate) a1: (usize, usize),
}

/// Progress inside the command being received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scanner {
    /// Inside an array: arguments still expected.
    left: u64,
    /// Whether the array header has been read.
    in_array: bool,
    /// Position (relative to the command start) of the next unparsed element.
    pos: usize,
    found: Found,
}

pub(crate) enum Scan {
    /// A command ends at `Found::end`.
    Done(Found),
    /// More bytes are needed.
    More,
}

/// Parses a decimal length terminated by `\r\n` at `buf[start..]` (after the type byte).
/// `Ok(None)`: incomplete. Accepts a leading `-` (negative lengths are handled by callers).
/// More than 18 digits is an error, so the value cannot overflow and needs no checked math.
#[inline(always)]
fn parse_len(buf: &[u8], start: usize) -> Result<Option<(i64, usize)>, ProtocolError> {
    const MAX_DIGITS: usize = 18;
    let mut i = start;
    let neg = buf.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    let digits_start = i;
    let mut v: i64 = 0;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        if i - digits_start == MAX_DIGITS {
            return Err(ProtocolError::BadLength);
        }
        v = v * 10 + i64::from(d);
        i += 1;
    }
    if i == digits_start || buf[i] != b'\r' {
        return Err(ProtocolError::BadLength);
    }
    match buf.get(i + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((if neg { -v } else { v }, i + 2))),
        Some(_) => Err(ProtocolError::BadLength),
    }
}

impl Scanner {
    /// Whether a command has been partly received.
    #[cfg(test)]
    pub(crate) fn is_partial(&self) -> bool {
        self.in_array
    }

    /// Scans the command starting at `buf[0]`. On error, the `usize` is the position of the
    /// offending byte relative to `buf`.
    #[inline]
    pub(crate) fn scan(
        &mut self,
        buf: &[u8],
        lim: &Limits,
    ) -> Result<Scan, (ProtocolError, usize)> {
        if !self.in_array {
            let Some(&first) = buf.first() else {
                return Ok(Scan::More);
            };
            match first {
                b'*' => {}
                b'\n' => {
                    return Ok(Scan::Done(Found {
                        end: 1,
                        ..Found::default()
                    }))
                }
                b'\r' => {
                    return match buf.get(1) {
                        None => Ok(Scan::More),
                        Some(b'\n') => Ok(Scan::Done(Found {
                            end: 2,
                            ..Found::default()
                        })),
                        Some(_) => Err((ProtocolError::InlineCommand, 0)),
                    }
                }
                _ => return Err((ProtocolError::InlineCommand, 0)),
            }
            let Some((n, next)) = parse_len(buf, 1).map_err(|e| (e, 0))? else {
                if buf.len() > 24 {
                    return Err((ProtocolError::BadLength, 0));
                }
                return Ok(Scan::More);
            };
            if n <= 0 {
                return Ok(Scan::Done(Found {
                    end: next,
                    ..Found::default()
                }));
            }
            let n = n as u64;
            if n > lim.max_multibulk_len {
                return Err((ProtocolError::MultibulkTooLong(n), 0));
            }
            self.in_array = true;
            self.left = n;
            self.pos = next;
            self.found = Found::default();
        }
        while self.left > 0 {
            let p = self.pos;
            let Some(&t) = buf.get(p) else {
                return Ok(Scan::More);
            };
            if t != b'$' {
                return Err((ProtocolError::ExpectedBulk(t), p));
            }
            let Some((len, data)) = parse_len(buf, p + 1).map_err(|e| (e, p))? else {
                if buf.len() - p > 24 {
                    return Err((ProtocolError::BadLength, p));
                }
                return Ok(Scan::More);
            };
            if len < 0 {
                return Err((ProtocolError::BadLength, p));
            }
            let len = len as u64;
            if len > lim.max_bulk_len {
                return Err((ProtocolError::BulkTooLong(len), p));
            }
            // `len <= max_bulk_len`, which the caller keeps within memory; the sum cannot
            // overflow usize on 64-bit targets and is checked anyway.
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| data.checked_add(l))
                .ok_or((ProtocolError::CommandTooLong, p))?;
            if end as u64 + 2 > lim.max_command_len {
                return Err((ProtocolError::CommandTooLong, p));
            }
            if buf.len() < end + 2 {
                return Ok(Scan::More);
            }
            if buf[end] != b'\r' || buf[end + 1] != b'\n' {
                return Err((ProtocolError::MissingCrlf, end));
            }
            match self.found.argc {
                0 => self.found.a0 = (data, end),
                1 => self.found.a1 = (data, end),
                _ => {}
            }
            self.found.argc = self.found.argc.saturating_add(1);
            self.left -= 1;
            self.pos = end + 2;
        }
        self.in_array = false;
        self.found.end = self.pos;
        self.pos = 0;
        Ok(Scan::Done(self.found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_bulk_len: 1000,
        max_multibulk_len: 100,
        max_command_len: 10_000,
    };

    fn scan_all(input: &[u8]) -> Result<Option<Found>, ProtocolError> {
        let mut s = Scanner::default();
        match s.scan(input, &LIM).map_err(|e| e.0)? {
            Scan::Done(f) => Ok(Some(f)),
            Scan::More => Ok(None),
        }
    }

    #[test]
    fn finds_ends_and_rejects_garbage() {
        let set = b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n";
        let f = scan_all(set).unwrap().unwrap();
        assert_eq!((f.end, f.argc, f.a0, f.a1), (31, 3, (8, 11), (17, 20)));
        for cut in 0..set.len() {
            assert!(scan_all(&set[..cut]).unwrap().is_none(), "cut {cut}");
        }
        assert_eq!(scan_all(b"*0\r\n").unwrap().unwrap().end, 4);
        assert_eq!(scan_all(b"\n").unwrap().unwrap().end, 1);
        assert_eq!(scan_all(b"set a b\r\n"), Err(ProtocolError::InlineCommand));
        assert_eq!(
            scan_all(b"*1\r\n+x\r\n"),
            Err(ProtocolError::ExpectedBulk(b'+'))
        );
        assert_eq!(
            scan_all(b"*1\r\n$1\r\nxy\r\n"),
            Err(ProtocolError::MissingCrlf)
        );
        assert_eq!(scan_all(b"*1\r\n$-1\r\n"), Err(ProtocolError::BadLength));
        assert_eq!(scan_all(b"*1\r\n$1x\r\n"), Err(ProtocolError::BadLength));
        assert_eq!(
            scan_all(b"*101\r\n"),
            Err(ProtocolError::MultibulkTooLong(101))
        );
        assert_eq!(
            scan_all(b"*1\r\n$1001\r\n"),
            Err(ProtocolError::BulkTooLong(1001))
        );
        assert_eq!(
            scan_all(b"*1\r\n$99999999999999999999999\r\n"),
            Err(ProtocolError::BadLength)
        );
    }

    #[test]
    fn resumes_inside_a_command() {
        let set = b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n";
        let mut s = Scanner::default();
        for cut in 1..set.len() {
            assert!(matches!(s.scan(&set[..cut], &LIM), Ok(Scan::More)));
        }
        assert!(matches!(s.scan(set, &LIM), Ok(Scan::Done(f)) if f.end == 31));
        assert!(!s.is_partial());
    }
}
