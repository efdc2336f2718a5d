//! Streaming behaviour over the whole corpus: feeding in any chunking gives identical events;
//! truncated and bit-flipped files give typed errors and never panic.

mod support;

use proptest::prelude::*;
use respsync::rdb::{Checksum, ParserConfig, RdbError, RdbEvent};
use support::corpus::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn load() -> Vec<(String, Vec<u8>)> {
    corpus_files()
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn chunking_never_changes_events() {
    let cfg = ParserConfig::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, data) in load() {
        let whole = parse_chunked(&data, &[usize::MAX], &cfg);
        let bytewise = parse_chunked(&data, &[1], &cfg);
        assert_eq!(whole, bytewise, "{name}: 1-byte feeding differs");
        let sizes: Vec<usize> = (0..16).map(|_| 1 + rng.below(4096) as usize).collect();
        let random = parse_chunked(&data, &sizes, &cfg);
        assert_eq!(whole, random, "{name}: random chunks {sizes:?} differ");
    }
}

#[test]
fn small_chunk_size_only_splits_strings() {
    // With 7-byte string chunks, the concatenated value is unchanged.
    let mut small = ParserConfig::default();
    small.chunk_size(7);
    for (name, data) in load() {
        let (a, ea) = parse_whole(&data);
        let (b, eb) = parse_chunked(&data, &[usize::MAX], &small);
        assert_eq!(ea, eb, "{name}");
        if ea.is_none() {
            let ja = events_to_json(&a);
            let jb = events_to_json(&b);
            let va: Vec<_> = ja.keys.iter().map(|k| &k.obj).collect();
            let vb: Vec<_> = jb.keys.iter().map(|k| &k.obj).collect();
            assert_eq!(va, vb, "{name}");
        }
        for ev in &b {
            if let RdbEvent::StringChunk(c) = ev {
                assert!(c.len() <= 7, "{name}: chunk of {}", c.len());
            }
        }
    }
}

#[test]
fn truncation_is_a_typed_error() {
    for path in corpus_files() {
        let name = path.display().to_string();
        let data = std::fs::read(&path).unwrap();
        // Bytes after the checksum (e.g. a diskless-transfer end mark) are not part of the file.
        let exp = expected(&path);
        let end = exp["checksum"]["covered_bytes"]
            .as_u64()
            .unwrap_or(u64::MAX)
            + if exp["rdb_version"].as_u64().unwrap_or(0) >= 5 {
                8
            } else {
                0
            };
        for i in 0..64u64 {
            let cut = (data.len() as u64 * i / 64) as usize;
            if cut as u64 >= end {
                continue;
            }
            let (_, err) = parse_whole(&data[..cut]);
            match err {
                Some(RdbError::UnexpectedEof { offset }) => {
                    assert_eq!(offset, cut as u64, "{name} cut at {cut}")
                }
                // A cut inside a declared item can also be reported as that item's error
                // when the prefix is itself invalid (e.g. corrupt-by-design files).
                Some(e) => assert!(e.offset().is_some(), "{name} cut at {cut}: {e}"),
                None => panic!("{name} truncated at {cut} parsed without error"),
            }
        }
    }
}

#[test]
fn bit_flips_are_typed_errors_or_valid() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for (name, data) in load() {
        let (_, clean_err) = parse_whole(&data);
        let (clean_events, _) = parse_whole(&data);
        let checksummed = clean_err.is_none()
            && clean_events.iter().any(|e| {
                matches!(
                    e,
                    RdbEvent::End {
                        checksum: Checksum::Verified(_)
                    }
                )
            });
        for _ in 0..16 {
            let mut bad = data.clone();
            let at = rng.below(bad.len() as u64) as usize;
            bad[at] ^= 1 << rng.below(8);
            let (_, err) = parse_whole(&bad);
            // A flip in the header may turn the version below 5 (no checksum at all), and one
            // in the stored CRC can only go unseen if it became 0.
            if checksummed && at >= 9 && at + 8 < data.len() {
                let e = err.unwrap_or_else(|| panic!("{name}: flip at {at} not detected"));
                assert!(e.offset().is_some(), "{name}: {e}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_split_points(file_idx in 0usize..1000, cuts in proptest::collection::vec(0usize..1 << 20, 0..12)) {
        let files = load_cached();
        let (name, data) = &files[file_idx % files.len()];
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort();
        let mut sizes = Vec::new();
        let mut last = 0;
        for c in cuts { sizes.push((c - last).max(1)); last = c; }
        sizes.push(usize::MAX);
        let cfg = ParserConfig::default();
        prop_assert_eq!(parse_chunked(data, &[usize::MAX], &cfg), parse_chunked(data, &sizes, &cfg), "{}", name);
    }
}

fn load_cached() -> &'static [(String, Vec<u8>)] {
    static FILES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    FILES.get_or_init(load)
}
