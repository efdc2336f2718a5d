//! Replies: RESP2 frames appended to a client's output buffer (or dropped, for the master link).

use bytes::BytesMut;
use respsync::resp;

/// Where a command's reply goes.
pub struct Out {
    buf: BytesMut,
    mute: bool,
}

impl Out {
    /// An output buffer for a client.
    pub fn new() -> Out {
        Out {
            buf: BytesMut::with_capacity(16 * 1024),
            mute: false,
        }
    }

    /// A sink that discards everything (commands applied from the master stream).
    #[allow(dead_code)] // used by the replication driver
    pub fn muted() -> Out {
        Out {
            buf: BytesMut::new(),
            mute: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes what has been written so far.
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Bytes already encoded (a reply the crate's `Node` built).
    pub fn raw(&mut self, b: &[u8]) {
        if !self.mute {
            self.buf.extend_from_slice(b);
        }
    }

    pub fn simple(&mut self, s: &str) {
        if !self.mute {
            resp::encode_simple(s.as_bytes(), &mut self.buf);
        }
    }

    pub fn ok(&mut self) {
        if !self.mute {
            resp::encode_ok(&mut self.buf);
        }
    }

    /// An error line; `msg` starts with its code (`ERR ...`, `WRONGTYPE ...`).
    pub fn error(&mut self, msg: &str) {
        if !self.mute {
            resp::encode_error(msg.as_bytes(), &mut self.buf);
        }
    }

    pub fn int(&mut self, n: i64) {
        if !self.mute {
            resp::encode_integer(n, &mut self.buf);
        }
    }

    pub fn bulk(&mut self, b: &[u8]) {
        if !self.mute {
            resp::encode_bulk(b, &mut self.buf);
        }
    }

    pub fn null(&mut self) {
        if !self.mute {
            resp::encode_null_bulk(&mut self.buf);
        }
    }

    pub fn null_array(&mut self) {
        if !self.mute {
            resp::encode_null_array(&mut self.buf);
        }
    }

    pub fn array(&mut self, n: usize) {
        if !self.mute {
            resp::encode_array_header(n, &mut self.buf);
        }
    }

    /// A double as Redis 7.0 prints it (`%.17g`, `inf`, `-inf`).
    pub fn double(&mut self, d: f64) {
        self.bulk(fmt_double(d).as_bytes());
    }
}

/// Formats like C's `%.17g` (what Redis 7.0 uses for scores), with `inf`/`-inf`.
pub fn fmt_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // 17 significant digits in scientific form, then pick %e or %f style as %g does.
    let sci = format!("{:.16e}", d);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if (-4..17).contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.abs()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_like_percent_17g() {
        assert_eq!(fmt_double(1.1), "1.1000000000000001");
        assert_eq!(fmt_double(3.0), "3");
        assert_eq!(fmt_double(1.1 + 1.0), "2.1000000000000001");
        assert_eq!(fmt_double(-0.5), "-0.5");
        assert_eq!(fmt_double(1e20), "1e+20");
        assert_eq!(fmt_double(0.0001), "0.0001");
        assert_eq!(fmt_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(fmt_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(fmt_double(123456789.0), "123456789");
    }

    #[test]
    fn muted_writes_nothing() {
        let mut o = Out::muted();
        o.ok();
        o.bulk(b"x");
        o.int(3);
        assert!(o.is_empty());
        let mut o = Out::new();
        o.bulk(b"ab");
        o.int(-2);
        o.error("ERR a\r\nb");
        assert_eq!(&o.take()[..], b"$2\r\nab\r\n:-2\r\n-ERR a  b\r\n");
    }
}
