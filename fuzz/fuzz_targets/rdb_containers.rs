//! Any bytes, to every container decoder and to LZF: each returns a value or a typed error,
//! never panics or reads out of bounds; whatever parses iterates to exactly its length, and
//! re-encoding what a listpack, ziplist or intset holds gives a blob that parses to the same
//! values. LZF output never exceeds the declared length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use respsync::rdb::encoding::{
    intset::{Intset, IntsetBuilder},
    listpack::{Listpack, ListpackBuilder},
    lzf,
    ziplist::{Ziplist, ZiplistBuilder},
    zipmap::Zipmap,
    PackedValue,
};

fn logical(values: &[PackedValue<'_>]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.to_bytes().into_owned()).collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(zl) = Ziplist::parse(data) {
        let values: Vec<_> = zl.iter().collect();
        assert_eq!(values.len(), zl.len());
        let mut b = ZiplistBuilder::new();
        values.iter().for_each(|&v| b.push_value(v));
        let blob = b.finish();
        let again = Ziplist::parse(&blob).expect("rebuilt ziplist parses");
        assert_eq!(logical(&values), logical(&again.iter().collect::<Vec<_>>()));
    }

    if let Ok(lp) = Listpack::parse(data) {
        let values: Vec<_> = lp.iter().collect();
        assert_eq!(values.len(), lp.len());
        let mut b = ListpackBuilder::new();
        values.iter().for_each(|&v| b.push_value(v));
        let blob = b.finish();
        let again = Listpack::parse(&blob).expect("rebuilt listpack parses");
        assert_eq!(logical(&values), logical(&again.iter().collect::<Vec<_>>()));
    }

    if let Ok(set) = Intset::parse(data) {
        let values: Vec<_> = set.iter().collect();
        assert_eq!(values.len(), set.len());
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        let mut b = IntsetBuilder::new();
        values.iter().for_each(|&v| b.push(v));
        let blob = b.finish();
        let again = Intset::parse(&blob).expect("rebuilt intset parses");
        assert_eq!(again.iter().collect::<Vec<_>>(), values);
        assert!(again.width() <= set.width());
    }

    if let Ok(zm) = Zipmap::parse(data) {
        assert_eq!(zm.iter().count(), zm.len());
    }

    // LZF: the first two bytes choose the declared length (up to 64 KiB).
    if let [a, b, rest @ ..] = data {
        let declared = usize::from(u16::from_le_bytes([*a, *b]));
        let mut out = vec![0xee];
        match lzf::decompress(rest, declared, &mut out) {
            Ok(()) => assert_eq!(out.len(), 1 + declared),
            Err(e) => {
                assert!(out.len() <= 1 + declared);
                assert!(e.offset <= rest.len());
            }
        }
        assert_eq!(out[0], 0xee);
    }

    // LZF round trip of the raw input.
    let mut packed = Vec::new();
    if lzf::compress(data, &mut packed) {
        assert!(packed.len() + 4 <= data.len());
        let mut out = Vec::new();
        lzf::decompress(&packed, data.len(), &mut out).expect("own output decompresses");
        assert_eq!(out, data);
    }
});
