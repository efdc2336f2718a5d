//! Finds the `repl-stream-db` aux field at the start of an RDB as it streams past, so the
//! session knows the stream's starting database without the application's help
//! (protocol.md §3.7). Only the header and the leading aux fields are looked at; at most
//! [`SCAN_LIMIT`] bytes are kept.

/// Bytes of the RDB start kept while looking for the field.
pub(crate) const SCAN_LIMIT: usize = 64 * 1024;

const OP_AUX: u8 = 0xFA;

#[derive(Debug, Default)]
pub(crate) struct AuxScan {
    buf: Vec<u8>,
    /// Position of the next unparsed aux record in `buf`.
    pos: usize,
    done: bool,
    db: Option<u32>,
}

enum Str {
    Raw(usize, usize),
    Int(i64),
    Compressed,
}

impl AuxScan {
    /// The `repl-stream-db` value, once found.
    pub(crate) fn db(&self) -> Option<u32> {
        self.db
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        let room = SCAN_LIMIT - self.buf.len();
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.scan();
        if !self.done && self.buf.len() >= SCAN_LIMIT {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.buf = Vec::new();
    }

    fn scan(&mut self) {
        if self.pos == 0 {
            if self.buf.len() < 9 {
                return;
            }
            if &self.buf[..5] != b"REDIS" {
                return self.finish();
            }
            self.pos = 9;
        }
        loop {
            let Some(&op) = self.buf.get(self.pos) else {
                return;
            };
            if op != OP_AUX {
                return self.finish();
            }
            let Some((key, next)) = read_string(&self.buf, self.pos + 1) else {
                return;
            };
            let Some((val, next)) = read_string(&self.buf, next) else {
                return;
            };
            if let Str::Raw(s, e) = key {
                if &self.buf[s..e] == b"repl-stream-db" {
                    self.db = match val {
                        Str::Int(v) => u32::try_from(v).ok(),
                        Str::Raw(s, e) => std::str::from_utf8(&self.buf[s..e])
                            .ok()
                            .and_then(|t| t.parse().ok()),
                        Str::Compressed => None,
                    };
                    return self.finish();
                }
            }
            self.pos = next;
        }
    }
}

/// Reads an RDB length at `pos`: `(value, is_encoded, next)`.
fn read_len(buf: &[u8], pos: usize) -> Option<(u64, bool, usize)> {
    let b = *buf.get(pos)?;
    Some(match b >> 6 {
        0 => (u64::from(b & 0x3F), false, pos + 1),
        1 => (
            (u64::from(b & 0x3F) << 8) | u64::from(*buf.get(pos + 1)?),
            false,
            pos + 2,
        ),
        2 if b == 0x80 => {
            let v = buf.get(pos + 1..pos + 5)?;
            (
                u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                false,
                pos + 5,
            )
        }
        2 if b == 0x81 => {
            let v: [u8; 8] = buf.get(pos + 1..pos + 9)?.try_into().ok()?;
            (u64::from_be_bytes(v), false, pos + 9)
        }
        3 => (u64::from(b & 0x3F), true, pos + 1),
        // An unknown length byte: treat as an endless string so the scan gives up at the limit.
        _ => (u64::MAX, false, pos + 1),
    })
}

/// Reads an RDB string at `pos`; `None` if it is not complete in `buf`.
fn read_string(buf: &[u8], pos: usize) -> Option<(Str, usize)> {
    let (len, encoded, p) = read_len(buf, pos)?;
    if !encoded {
        let end = p.checked_add(usize::try_from(len).ok()?)?;
        buf.get(p..end)?;
        return Some((Str::Raw(p, end), end));
    }
    Some(match len {
        0 => (Str::Int(i64::from(*buf.get(p)? as i8)), p + 1),
        1 => {
            let v = buf.get(p..p + 2)?;
            (Str::Int(i64::from(i16::from_le_bytes([v[0], v[1]]))), p + 2)
        }
        2 => {
            let v = buf.get(p..p + 4)?;
            (
                Str::Int(i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))),
                p + 4,
            )
        }
        3 => {
            let (clen, _, p) = read_len(buf, p)?;
            let (_ulen, _, p) = read_len(buf, p)?;
            let end = p.checked_add(usize::try_from(clen).ok()?)?;
            buf.get(p..end)?;
            (Str::Compressed, end)
        }
        _ => (Str::Compressed, usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aux(k: &[u8], v: &[u8]) -> Vec<u8> {
        let mut out = vec![OP_AUX, k.len() as u8];
        out.extend_from_slice(k);
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn finds_repl_stream_db_in_any_split() {
        let mut rdb = b"REDIS0010".to_vec();
        rdb.extend(aux(b"redis-ver", b"\x067.0.15"));
        rdb.extend(aux(b"ctime", &[0xC2, 1, 2, 3, 4]));
        rdb.extend(aux(b"used-mem", &[0xC1, 1, 2]));
        rdb.extend(aux(b"repl-stream-db", &[0xC0, 3]));
        rdb.extend_from_slice(&[0xFE, 0]);
        for step in 1..rdb.len() {
            let mut s = AuxScan::default();
            for c in rdb.chunks(step) {
                s.feed(c);
            }
            assert_eq!(s.db(), Some(3), "step {step}");
        }
    }

    #[test]
    fn gives_up_without_the_field() {
        let mut s = AuxScan::default();
        s.feed(b"REDIS0010\xFE\x00");
        assert!(s.done);
        assert_eq!(s.db(), None);
        let mut s = AuxScan::default();
        s.feed(b"NOTANRDB!!");
        assert!(s.done);
        let mut s = AuxScan::default();
        let mut big = b"REDIS0011".to_vec();
        big.extend_from_slice(&[OP_AUX, 0x80, 0, 1, 0, 0]); // 64 KiB key
        big.resize(SCAN_LIMIT + 10, b'x');
        s.feed(&big);
        assert!(s.done && s.buf.capacity() == 0);
        let mut s = AuxScan::default();
        let mut txt = b"REDIS0009".to_vec();
        txt.extend(aux(b"repl-stream-db", b"\x0212"));
        s.feed(&txt);
        assert_eq!(s.db(), Some(12));
    }
}
