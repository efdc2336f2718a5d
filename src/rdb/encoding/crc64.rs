//! CRC-64/Jones as Redis computes it for RDB files and DUMP payloads.
//!
//! Parameters: polynomial `0xad93d23594c935a9` (reflected `0x95ac9329ac4bc9b5`), reflected input
//! and output, initial value 0, no final XOR. The check value of `"123456789"` is
//! `0xe9c6d914c4b8d9ca`. The CRC is chainable: `crc64(crc64(0, a), b) == crc64(0, a ++ b)`, so a
//! streaming parser feeds it chunk by chunk.
//!
//! Two implementations give identical results:
//! - [`crc64_table`]: portable, table driven, slicing by 16 bytes (16 tables of 256 entries built
//!   at compile time), about the speed of Redis's own `crcspeed` (1–2 GB/s);
//! - with the default feature `crc-fast`, inputs of [`SIMD_MIN_LEN`] bytes or more go to the
//!   `crc-fast` crate's SIMD (carry-less multiply) CRC-64/REDIS, about 20 times faster on x86-64
//!   (see `benches/crc.rs`). [`crc64`] picks between them.
//!
//! ```
//! use respsync::rdb::encoding::crc64::{crc64, Crc64};
//!
//! assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
//!
//! let mut crc = Crc64::new();
//! crc.update(b"1234");
//! crc.update(b"56789");
//! assert_eq!(crc.value(), 0xe9c6d914c4b8d9ca);
//! ```

/// The reflected form of the Jones polynomial `0xad93d23594c935a9`.
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

/// `TABLES[0]` is the byte-at-a-time table; `TABLES[k][i]` is the CRC of byte `i` followed by
/// `k` zero bytes, which lets 16 input bytes be folded in with 16 independent lookups.
static TABLES: [[u64; 256]; 16] = build_tables();

const fn build_tables() -> [[u64; 256]; 16] {
    let mut t = [[0u64; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// Inputs at least this long use the SIMD implementation (feature `crc-fast`); shorter ones use
/// the tables, which are faster there because they need no setup.
pub const SIMD_MIN_LEN: usize = 256;

/// Continues the CRC `crc` over `data` (start from 0).
///
/// ```
/// use respsync::rdb::encoding::crc64::crc64;
///
/// let whole = crc64(0, b"hello world");
/// assert_eq!(crc64(crc64(0, b"hello "), b"world"), whole);
/// ```
pub fn crc64(crc: u64, data: &[u8]) -> u64 {
    #[cfg(feature = "crc-fast")]
    if data.len() >= SIMD_MIN_LEN {
        let mut digest =
            crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc64Redis, crc);
        digest.update(data);
        return digest.finalize();
    }
    crc64_table(crc, data)
}

/// The portable table-driven CRC (slicing by 16), whatever the features; same results as
/// [`crc64`].
///
/// ```
/// use respsync::rdb::encoding::crc64::{crc64, crc64_table};
///
/// let data = vec![0x5a; 1000];
/// assert_eq!(crc64_table(7, &data), crc64(7, &data));
/// ```
pub fn crc64_table(crc: u64, data: &[u8]) -> u64 {
    let mut crc = crc;
    let mut chunks = data.chunks_exact(16);
    for chunk in &mut chunks {
        let (a, b) = chunk.split_at(8);
        // Both halves are exactly 8 bytes: `chunks_exact(16)` split at 8.
        let a = crc ^ u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
        let b = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        crc = TABLES[15][(a & 0xff) as usize]
            ^ TABLES[14][((a >> 8) & 0xff) as usize]
            ^ TABLES[13][((a >> 16) & 0xff) as usize]
            ^ TABLES[12][((a >> 24) & 0xff) as usize]
            ^ TABLES[11][((a >> 32) & 0xff) as usize]
            ^ TABLES[10][((a >> 40) & 0xff) as usize]
            ^ TABLES[9][((a >> 48) & 0xff) as usize]
            ^ TABLES[8][(a >> 56) as usize]
            ^ TABLES[7][(b & 0xff) as usize]
            ^ TABLES[6][((b >> 8) & 0xff) as usize]
            ^ TABLES[5][((b >> 16) & 0xff) as usize]
            ^ TABLES[4][((b >> 24) & 0xff) as usize]
            ^ TABLES[3][((b >> 32) & 0xff) as usize]
            ^ TABLES[2][((b >> 40) & 0xff) as usize]
            ^ TABLES[1][((b >> 48) & 0xff) as usize]
            ^ TABLES[0][(b >> 56) as usize];
    }
    crc64_bytewise(crc, chunks.remainder())
}

/// The plain one-byte-at-a-time update; the reference the sliced version is tested against.
fn crc64_bytewise(mut crc: u64, data: &[u8]) -> u64 {
    for &byte in data {
        crc = TABLES[0][((crc ^ u64::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// A running CRC-64/Jones, for data that arrives in pieces.
///
/// ```
/// use respsync::rdb::encoding::crc64::Crc64;
///
/// let mut crc = Crc64::new();
/// for piece in [&b"REDIS"[..], b"0011", b"\xff"] {
///     crc.update(piece);
/// }
/// assert_eq!(crc.value(), respsync::rdb::encoding::crc64::crc64(0, b"REDIS0011\xff"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crc64 {
    crc: u64,
}

impl Crc64 {
    /// A CRC over no data (value 0).
    pub fn new() -> Self {
        Self { crc: 0 }
    }

    /// Continues the CRC over `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.crc = crc64(self.crc, data);
    }

    /// The CRC of everything passed to [`update`](Self::update) so far.
    pub fn value(&self) -> u64 {
        self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bit-at-a-time CRC straight from the definition, independent of the tables.
    fn crc64_bitwise(mut crc: u64, data: &[u8]) -> u64 {
        for &byte in data {
            crc ^= u64::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64_bitwise(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(0, b""), 0);
    }

    #[test]
    fn redis_self_test_vector() {
        // The second vector of Redis's crc64.c self test (C `sizeof` counts the final NUL).
        let text = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed \
do eiusmod tempor incididunt ut labore et dolore magna \
aliqua. Ut enim ad minim veniam, quis nostrud exercitation \
ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis \
aute irure dolor in reprehenderit in voluptate velit esse \
cillum dolore eu fugiat nulla pariatur. Excepteur sint \
occaecat cupidatat non proident, sunt in culpa qui officia \
deserunt mollit anim id est laborum.\0";
        assert_eq!(crc64(0, text), 0xc779_4709_e696_83b3);
    }

    #[test]
    fn real_rdb_trailer() {
        // A 40-byte RDB 6 file written by Redis: the trailer is the CRC of everything before it.
        let file: [u8; 40] = [
            0x52, 0x45, 0x44, 0x49, 0x53, 0x30, 0x30, 0x30, 0x36, 0xfe, 0x00, 0x00, 0x03, 0x66,
            0x6f, 0x6f, 0x03, 0x62, 0x61, 0x72, 0xfe, 0x01, 0x00, 0x03, 0x66, 0x6f, 0x6f, 0x03,
            0x62, 0x61, 0x72, 0xff, 0x5c, 0xba, 0x67, 0x08, 0xa7, 0x11, 0xf9, 0xfa,
        ];
        let (body, trailer) = file.split_at(32);
        let stored = u64::from_le_bytes(trailer.try_into().unwrap());
        assert_eq!(crc64(0, body), stored);
        assert_eq!(crc64_bitwise(0, body), stored);
    }

    proptest! {
        #[test]
        fn sliced_matches_bitwise(data in proptest::collection::vec(any::<u8>(), 0..1000), seed in any::<u64>()) {
            prop_assert_eq!(crc64(seed, &data), crc64_bitwise(seed, &data));
            prop_assert_eq!(crc64_table(seed, &data), crc64_bitwise(seed, &data));
            prop_assert_eq!(crc64_bytewise(seed, &data), crc64_bitwise(seed, &data));
        }

        #[test]
        fn chainable(data in proptest::collection::vec(any::<u8>(), 0..1000), split in any::<prop::sample::Index>()) {
            let at = split.index(data.len() + 1);
            let (a, b) = data.split_at(at);
            let mut c = Crc64::new();
            c.update(a);
            c.update(b);
            prop_assert_eq!(c.value(), crc64(0, &data));
        }
    }
}
