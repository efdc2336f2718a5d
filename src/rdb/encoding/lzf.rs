//! LZF, the compression Redis applies to long strings in RDB files (liblzf format, no header).
//!
//! A compressed string in an RDB is `0xC3`, the compressed length, the uncompressed length and
//! the compressed bytes. [`decompress`] checks every literal run and back-reference against both
//! the input and the declared output length; [`compress`] produces what Redis's `lzf_compress`
//! produces and applies Redis's "worth it" rule.
//!
//! Format: a control byte `c < 32` is a literal run of `c + 1` bytes; otherwise `n = c >> 5`
//! (plus the next byte if `n == 7`) and the back-reference copies `n + 2` bytes from
//! `((c & 0x1f) << 8) + next + 1` bytes back in the output, one byte at a time (runs overlap).
//!
//! ```
//! use respsync::rdb::encoding::lzf;
//!
//! let text = b"abcabcabcabcabcabcabcabcabcabcabcabc";
//! let mut packed = Vec::new();
//! assert!(lzf::compress(text, &mut packed));
//! assert!(packed.len() <= text.len() - 4);
//!
//! let mut out = Vec::new();
//! lzf::decompress(&packed, text.len(), &mut out).unwrap();
//! assert_eq!(out, text);
//! ```

use std::cell::RefCell;

use super::{ContainerError, ContainerErrorKind};

/// Longest literal run.
const MAX_LIT: usize = 1 << 5;
/// Back-references reach at most this far back (distance − 1 < `MAX_OFF`).
const MAX_OFF: usize = 1 << 13;
/// Longest back-reference.
const MAX_REF: usize = (1 << 8) + (1 << 3);
/// Hash table size, log2 (liblzf's `HLOG` as Redis builds it).
const HLOG: u32 = 16;
/// Most output bytes one input byte can produce: a 3-byte back-reference yields 264 bytes.
const MAX_EXPANSION: usize = 88;

/// Decompresses `input` (exactly the compressed bytes), appending exactly `out_len` bytes to
/// `out`.
///
/// Errors (with the offset in `input`) on a truncated literal run or back-reference, a
/// back-reference before the start of the output, output that would exceed `out_len`, or output
/// that ends short of it. On error, `out` may hold a partial result past its original length;
/// nothing beyond `out_len` bytes is ever appended. The caller bounds `out_len` by its own limit
/// first; this function additionally refuses, before allocating, an `out_len` that `input`
/// could not possibly produce.
///
/// ```
/// use respsync::rdb::encoding::{lzf, ContainerErrorKind};
///
/// // Literal "a", then a back-reference at distance 1 copying 9 bytes: "a" × 10.
/// let mut out = Vec::new();
/// lzf::decompress(&[0x00, b'a', 0xe0, 0x00, 0x00], 10, &mut out).unwrap();
/// assert_eq!(out, b"aaaaaaaaaa");
///
/// let err = lzf::decompress(&[0x00, b'a'], 2, &mut Vec::new()).unwrap_err();
/// assert!(matches!(err.kind, ContainerErrorKind::LzfOutputTooShort { declared: 2, actual: 1 }));
/// ```
pub fn decompress(input: &[u8], out_len: usize, out: &mut Vec<u8>) -> Result<(), ContainerError> {
    decompress_upto(input, out_len, out_len, out)
}

/// Decompresses only the start of `input`: appends at least `min(want, out_len)` bytes of the
/// output to `out` (and at most one back-reference or literal run more), checking what it
/// decodes exactly as [`decompress`] does; the rest of the input is not read. Used to read a
/// container's header (its element count) without decompressing the container.
///
/// ```
/// use respsync::rdb::encoding::lzf;
///
/// let text = b"abcabcabcabcabcabcabcabcabcabcabcabc";
/// let mut packed = Vec::new();
/// assert!(lzf::compress(text, &mut packed));
/// let mut head = Vec::new();
/// lzf::decompress_prefix(&packed, text.len(), 4, &mut head).unwrap();
/// assert!(head.len() >= 4 && text.starts_with(&head));
/// ```
pub fn decompress_prefix(
    input: &[u8],
    out_len: usize,
    want: usize,
    out: &mut Vec<u8>,
) -> Result<(), ContainerError> {
    decompress_upto(input, out_len, want.min(out_len), out)
}

fn decompress_upto(
    input: &[u8],
    out_len: usize,
    want: usize,
    out: &mut Vec<u8>,
) -> Result<(), ContainerError> {
    if out_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(ContainerError::new(
            ContainerErrorKind::LzfOutputTooShort {
                declared: out_len,
                actual: 0,
            },
            input.len(),
        ));
    }
    let base = out.len();
    out.reserve(want);
    let mut ip = 0;
    while ip < input.len() {
        let start = ip;
        let ctrl = usize::from(input[ip]);
        ip += 1;
        let produced = out.len() - base;
        if produced >= want && want < out_len {
            return Ok(());
        }
        if ctrl < MAX_LIT {
            let run = ctrl + 1;
            if produced + run > out_len {
                return Err(too_long(out_len, start));
            }
            let lit = input
                .get(ip..ip + run)
                .ok_or_else(|| ContainerError::new(ContainerErrorKind::LzfTruncated, start))?;
            out.extend_from_slice(lit);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                let extra = *input
                    .get(ip)
                    .ok_or_else(|| ContainerError::new(ContainerErrorKind::LzfTruncated, start))?;
                len += usize::from(extra);
                ip += 1;
            }
            let low = *input
                .get(ip)
                .ok_or_else(|| ContainerError::new(ContainerErrorKind::LzfTruncated, start))?;
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + usize::from(low) + 1;
            let len = len + 2;
            if produced + len > out_len {
                return Err(too_long(out_len, start));
            }
            if distance > produced {
                return Err(ContainerError::new(
                    ContainerErrorKind::LzfBadBackReference,
                    start,
                ));
            }
            let from = out.len() - distance;
            if distance >= len {
                // Disjoint source and destination: copy in one go.
                out.extend_from_within(from..from + len);
            } else if distance == 1 {
                // A run of one repeated byte (the common case: padding, zeros).
                let byte = out[from];
                out.resize(out.len() + len, byte);
            } else {
                // Overlapping run: the output repeats the last `distance` bytes with that
                // period, so copy what exists, doubling the chunk each time.
                let mut left = len;
                let mut chunk = distance;
                while left > 0 {
                    let n = chunk.min(left);
                    out.extend_from_within(from..from + n);
                    left -= n;
                    chunk *= 2;
                }
            }
        }
    }
    let actual = out.len() - base;
    if actual != out_len {
        return Err(ContainerError::new(
            ContainerErrorKind::LzfOutputTooShort {
                declared: out_len,
                actual,
            },
            input.len(),
        ));
    }
    Ok(())
}

fn too_long(declared: usize, offset: usize) -> ContainerError {
    ContainerError::new(ContainerErrorKind::LzfOutputTooLong { declared }, offset)
}

thread_local! {
    static COMPRESSOR: RefCell<Compressor> = RefCell::new(Compressor::new());
}

/// Compresses `input` the way Redis stores a string in an RDB, appending the compressed bytes
/// to `out` and returning `true` only if that is worth it by Redis's rule: the compressed form
/// saves at least 4 bytes (`rdbSaveLzfStringObject` gives `lzf_compress` a budget of
/// `len − 4` bytes). Otherwise `out` is left unchanged and the result is `false`.
///
/// Redis only tries this for strings longer than 20 bytes (and only with `rdbcompression yes`,
/// the default); that choice is the caller's. This function reuses a per-thread
/// [`Compressor`]; use one directly to control its lifetime.
///
/// ```
/// use respsync::rdb::encoding::lzf;
///
/// let mut out = Vec::new();
/// assert!(!lzf::compress(b"no repetition here at all", &mut out));
/// assert!(out.is_empty());
/// assert!(lzf::compress(&[b'x'; 100], &mut out));
/// ```
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> bool {
    COMPRESSOR.with(|c| c.borrow_mut().compress(input, out))
}

/// A reusable LZF compressor: holds liblzf's 64 Ki-entry hash table (256 KiB) so that
/// compressing many strings does not allocate or clear it each time.
///
/// Output is identical to Redis's `lzf_compress` run with a zeroed hash table.
///
/// ```
/// use respsync::rdb::encoding::lzf::Compressor;
///
/// let mut c = Compressor::new();
/// let mut out = Vec::new();
/// assert!(c.compress(b"hello hello hello hello hello", &mut out));
/// ```
#[derive(Clone)]
pub struct Compressor {
    /// Hash slot → `epoch + position`; values `<= epoch` are from earlier inputs (empty).
    table: Vec<u32>,
    /// Added to positions so that entries from earlier calls read as empty without clearing.
    epoch: u32,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// A compressor with an empty hash table.
    pub fn new() -> Self {
        Self {
            table: vec![0; 1 << HLOG],
            epoch: 0,
        }
    }

    /// Same as the free function [`compress`]: appends the compressed form of `input` to `out`
    /// and returns `true` if it saves at least 4 bytes; otherwise leaves `out` unchanged and
    /// returns `false`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if input.len() <= 4 {
            return false;
        }
        let budget = input.len() - 4;
        // Positions are stored as `epoch + pos + 1`; make sure they fit and stay above the
        // entries of earlier calls, clearing the table when the counter would overflow.
        let needed = u32::try_from(input.len())
            .ok()
            .and_then(|l| l.checked_add(1));
        let Some(needed) = needed else {
            // Inputs of 4 GiB and more are beyond what Redis stores as one string anyway.
            return false;
        };
        if self.epoch.checked_add(needed).is_none() {
            self.table.iter_mut().for_each(|slot| *slot = 0);
            self.epoch = 0;
        }
        let start = out.len();
        let ok = self.run(input, budget, out);
        self.epoch += needed;
        if !ok {
            out.truncate(start);
        }
        ok
    }

    /// liblzf's `lzf_compress` with `out_len = budget`, VERY_FAST hashing and its exact
    /// conservative space checks, so that the yes/no decision matches Redis. Returns `false`
    /// where liblzf returns 0. Needs `input.len() >= 3`.
    fn run(&mut self, input: &[u8], budget: usize, out: &mut Vec<u8>) -> bool {
        let n = input.len();
        let base = out.len();
        // liblzf's output cursor `op` is `out.len() - base`: the control byte of the current
        // literal run is reserved (pushed as 0) when the run starts and sits at `op - lit - 1`.
        let mut lit: usize = 0;
        out.push(0);
        let mut hval: u32 = (u32::from(input[0]) << 8) | u32::from(input[1]);
        let mut ip = 0usize;
        while ip + 2 < n {
            hval = (hval << 8) | u32::from(input[ip + 2]);
            let slot = idx(hval);
            let reference = self.untag(self.table[slot]);
            self.table[slot] = self.tag(ip);
            let matched = reference.filter(|&r| {
                r > 0
                    && r < ip
                    && ip - r - 1 < MAX_OFF
                    && input[r + 2] == input[ip + 2]
                    && input[r] == input[ip]
                    && input[r + 1] == input[ip + 1]
            });
            let op = out.len() - base;
            let Some(r) = matched else {
                // One more literal byte.
                if op >= budget {
                    return false;
                }
                lit += 1;
                out.push(input[ip]);
                ip += 1;
                if lit == MAX_LIT {
                    close_run(out, lit);
                    lit = 0;
                    out.push(0);
                }
                continue;
            };
            let off = ip - r - 1;
            if op - usize::from(lit == 0) + 4 >= budget {
                return false;
            }
            if lit == 0 {
                out.pop(); // the reserved control byte is not needed
            } else {
                close_run(out, lit);
            }
            // `len` ends as the number of matching octets (3 are known to match).
            let maxlen = (n - ip - 2).min(MAX_REF);
            let mut len = 2;
            let mut mismatch = false;
            if maxlen > 16 {
                // liblzf compares 16 octets unrolled without looking at `maxlen`; `maxlen > 16`
                // guarantees `ip + 18 < n`. The match may then exceed `maxlen` by up to two
                // octets (when it is 17 or 18), exactly as in liblzf.
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        mismatch = true;
                        break;
                    }
                }
            }
            if !mismatch {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            let code = len - 2; // the decoder copies `code + 2` octets
                                // `off < 8192` so `off >> 8` fits in the low 5 bits; `code <= 262`.
            let high = (off >> 8) as u8;
            if code < 7 {
                out.push(high + ((code as u8) << 5));
            } else {
                out.push(high + (7 << 5));
                out.push((code - 7) as u8);
            }
            out.push((off & 0xff) as u8);
            lit = 0;
            out.push(0);
            ip += len;
            if ip + 2 >= n {
                break;
            }
            // VERY_FAST: hash the last two positions of the match too.
            ip -= 2;
            hval = (u32::from(input[ip]) << 8) | u32::from(input[ip + 1]);
            hval = (hval << 8) | u32::from(input[ip + 2]);
            self.table[idx(hval)] = self.tag(ip);
            ip += 1;
            hval = (hval << 8) | u32::from(input[ip + 2]);
            self.table[idx(hval)] = self.tag(ip);
            ip += 1;
        }
        if out.len() - base + 3 > budget {
            return false;
        }
        while ip < n {
            lit += 1;
            out.push(input[ip]);
            ip += 1;
            if lit == MAX_LIT {
                close_run(out, lit);
                lit = 0;
                out.push(0);
            }
        }
        if lit == 0 {
            out.pop();
        } else {
            close_run(out, lit);
        }
        true
    }

    /// The table value for input position `pos` in the current call.
    fn tag(&self, pos: usize) -> u32 {
        // `compress` made sure `epoch + len + 1` fits in a u32 and `pos < len`.
        self.epoch + pos as u32 + 1
    }

    /// The input position a table value stands for, if it was stored during the current call.
    fn untag(&self, value: u32) -> Option<usize> {
        (value > self.epoch).then(|| (value - self.epoch - 1) as usize)
    }
}

/// Writes the control byte of a finished literal run of `lit` (1..=32) bytes.
fn close_run(out: &mut [u8], lit: usize) {
    let at = out.len() - lit - 1;
    out[at] = (lit - 1) as u8;
}

/// liblzf's VERY_FAST hash of three octets to a table slot.
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) & ((1 << HLOG) - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unpack(input: &[u8], len: usize) -> Result<Vec<u8>, ContainerError> {
        let mut out = Vec::new();
        decompress(input, len, &mut out).map(|()| out)
    }

    /// The key of `easily_compressible_string_key.rdb` as Redis wrote it: 200 × `a`.
    const REDIS_200_A: [u8; 9] = [0x01, 0x61, 0x61, 0xe0, 0xbb, 0x00, 0x01, 0x61, 0x61];

    #[test]
    fn decodes_redis_output() {
        assert_eq!(unpack(&REDIS_200_A, 200).unwrap(), vec![b'a'; 200]);
    }

    #[test]
    fn compresses_like_redis() {
        let mut out = Vec::new();
        assert!(compress(&[b'a'; 200], &mut out));
        assert_eq!(out, REDIS_200_A);
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut out = b"prefix".to_vec();
        decompress(&REDIS_200_A, 200, &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(out.len(), 206);
        let mut packed = b"xy".to_vec();
        assert!(compress(&[b'a'; 200], &mut packed));
        assert_eq!(&packed[2..], REDIS_200_A);
    }

    #[test]
    fn overlapping_reference_at_distance_one() {
        // "ab", then copy 5 bytes from distance 1: "abbbbbb".
        assert_eq!(
            unpack(&[0x01, b'a', b'b', 0x60, 0x00], 7).unwrap(),
            b"abbbbbb"
        );
        // Distance 2 overlapping: "ab" + 6 bytes from 2 back = "abababab".
        assert_eq!(
            unpack(&[0x01, b'a', b'b', 0x80, 0x01], 8).unwrap(),
            b"abababab"
        );
    }

    #[test]
    fn long_reference_uses_extra_length_byte() {
        // Literal "x", then n = 7 + 255 → 264 bytes from distance 1.
        assert_eq!(
            unpack(&[0x00, b'x', 0xe0, 0xff, 0x00], 265).unwrap(),
            vec![b'x'; 265]
        );
    }

    #[test]
    fn truncated_input() {
        // Literal run of 3 with only 2 bytes.
        let err = unpack(&[0x02, b'a', b'b'], 3).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(ContainerErrorKind::LzfTruncated, 0)
        );
        // Back-reference missing its offset byte.
        let err = unpack(&[0x00, b'a', 0x20], 4).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(ContainerErrorKind::LzfTruncated, 2)
        );
        // Long back-reference missing its length byte, then its offset byte.
        let err = unpack(&[0x00, b'a', 0xe0], 10).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(ContainerErrorKind::LzfTruncated, 2)
        );
        let err = unpack(&[0x00, b'a', 0xe0, 0x01], 11).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(ContainerErrorKind::LzfTruncated, 2)
        );
    }

    #[test]
    fn reference_before_start() {
        // Back-reference as the very first item.
        let err = unpack(&[0x20, 0x00], 3).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(ContainerErrorKind::LzfBadBackReference, 0)
        );
        // Distance 2 with one byte of output.
        let err = unpack(&[0x00, b'a', 0x20, 0x01], 4).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(ContainerErrorKind::LzfBadBackReference, 2)
        );
        // Far distance (high bits of the offset).
        let err = unpack(&[0x00, b'a', 0x3f, 0xff], 4).unwrap_err();
        assert_eq!(err.kind, ContainerErrorKind::LzfBadBackReference);
    }

    #[test]
    fn output_longer_than_declared() {
        let err = unpack(&[0x02, b'a', b'b', b'c'], 2).unwrap_err();
        assert_eq!(err, too_long(2, 0));
        let err = unpack(&REDIS_200_A, 199).unwrap_err();
        assert_eq!(
            err.kind,
            ContainerErrorKind::LzfOutputTooLong { declared: 199 }
        );
        // Nothing beyond the declared length was appended.
        let mut out = Vec::new();
        assert!(decompress(&REDIS_200_A, 150, &mut out).is_err());
        assert!(out.len() <= 150);
    }

    #[test]
    fn output_shorter_than_declared() {
        let err = unpack(&REDIS_200_A, 201).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(
                ContainerErrorKind::LzfOutputTooShort {
                    declared: 201,
                    actual: 200
                },
                9
            )
        );
        // An absurd declared length is refused before allocating anything.
        let mut out = Vec::new();
        let err = decompress(&REDIS_200_A, usize::MAX, &mut out).unwrap_err();
        assert!(matches!(
            err.kind,
            ContainerErrorKind::LzfOutputTooShort { .. }
        ));
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn empty() {
        assert_eq!(unpack(&[], 0).unwrap(), b"");
        assert!(unpack(&[], 1).is_err());
    }

    #[test]
    fn compress_refuses_what_does_not_pay() {
        let mut out = vec![7];
        assert!(!compress(b"abcd", &mut out));
        assert!(!compress(
            b"the quick brown fox jumps over the lazy dog",
            &mut out
        ));
        assert_eq!(out, [7]);
    }

    #[test]
    fn compressor_reuse_is_deterministic() {
        let mut c = Compressor::new();
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 13) as u8).collect();
        let mut first = Vec::new();
        assert!(c.compress(&data, &mut first));
        for _ in 0..3 {
            let mut again = Vec::new();
            assert!(c.compress(&data, &mut again));
            assert_eq!(again, first);
        }
        let mut fresh = Vec::new();
        assert!(Compressor::new().compress(&data, &mut fresh));
        assert_eq!(fresh, first);
    }

    #[test]
    fn compressor_epoch_wraps() {
        let mut c = Compressor::new();
        c.epoch = u32::MAX - 10;
        let mut out = Vec::new();
        assert!(c.compress(&[b'z'; 300], &mut out));
        assert_eq!(unpack(&out, 300).unwrap(), vec![b'z'; 300]);
        assert!(c.epoch < 1000);
    }

    fn compressible() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct symbols and repeated chunks so matches are common.
        proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(0u8..4, 1..20),
                proptest::collection::vec(any::<u8>(), 1..8),
                (any::<u8>(), 1usize..600).prop_map(|(b, n)| vec![b; n]),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn roundtrip(data in compressible()) {
            let mut packed = Vec::new();
            if compress(&data, &mut packed) {
                prop_assert!(packed.len() + 4 <= data.len());
                prop_assert_eq!(unpack(&packed, data.len()).unwrap(), data);
            } else {
                prop_assert!(packed.is_empty());
            }
        }

        /// Chunked copying of references gives exactly what the byte-at-a-time
        /// definition gives: a literal of 1..32 bytes, then references of any distance
        /// within the output so far (short periods, block-sized and longer) and any length.
        #[test]
        fn references_match_bytewise_copy(
            lit in proptest::collection::vec(any::<u8>(), 1..33),
            refs in proptest::collection::vec((0usize..8192, 0usize..256), 1..12),
            short in any::<bool>(),
        ) {
            let mut input = vec![(lit.len() - 1) as u8];
            input.extend_from_slice(&lit);
            let mut want = lit.clone();
            for &(d, extra) in &refs {
                // Half the cases favour periods below the block size.
                let distance = if short { d % want.len().min(20) + 1 } else { d % want.len() + 1 };
                // The long form: 7 in the control byte plus an extra length byte.
                let len = extra + 9;
                input.push((7 << 5) | ((distance - 1) >> 8) as u8);
                input.push(extra as u8);
                input.push(((distance - 1) & 0xff) as u8);
                for _ in 0..len {
                    want.push(want[want.len() - distance]);
                }
            }
            prop_assert_eq!(unpack(&input, want.len()).unwrap(), want);
        }

        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64), len in 0usize..2000) {
            let mut out = vec![1, 2, 3];
            match decompress(&input, len, &mut out) {
                Ok(()) => prop_assert_eq!(out.len(), 3 + len),
                Err(e) => {
                    prop_assert!(out.len() <= 3 + len);
                    prop_assert!(e.offset <= input.len());
                }
            }
            prop_assert_eq!(&out[..3], &[1, 2, 3]);
        }
    }
}
