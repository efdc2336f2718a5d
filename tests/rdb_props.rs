//! Property tests: random datasets written as RDB files (plain and compact encodings, LZF,
//! integer strings, expiries, several dbs) parse back to exactly the dataset, however the
//! bytes are split.

mod support;

use std::collections::BTreeSet;

use proptest::prelude::*;
use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::encoding::intset::IntsetBuilder;
use respsync::rdb::encoding::listpack::ListpackBuilder;
use respsync::rdb::encoding::lzf;
use respsync::rdb::{Collector, ParserConfig, Value};
use support::corpus::parse_chunked;

#[derive(Debug, Clone)]
enum Model {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    IntSet(Vec<i64>),
    Zset(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
}

#[derive(Debug, Clone)]
struct Key {
    db: u64,
    key: Vec<u8>,
    expire_ms: Option<i64>,
    model: Model,
    compact: bool,
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        (0u8..3, 20usize..400).prop_map(|(b, n)| vec![b'a' + b; n]), // compressible
        any::<i32>().prop_map(|i| i.to_string().into_bytes()),
        any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        Just(b"007".to_vec()),
    ]
}

fn unique(v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

fn model() -> impl Strategy<Value = Model> {
    let elems = || proptest::collection::vec(bytes(), 1..20);
    prop_oneof![
        bytes().prop_map(Model::String),
        elems().prop_map(Model::List),
        elems().prop_map(|v| Model::Set(unique(v))),
        proptest::collection::btree_set(any::<i64>(), 1..20)
            .prop_map(|s| Model::IntSet(s.into_iter().collect())),
        proptest::collection::vec(
            (
                bytes(),
                prop_oneof![
                    any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
                    Just(1.5)
                ]
            ),
            1..20
        )
        .prop_map(|v| {
            let mut seen = BTreeSet::new();
            Model::Zset(
                v.into_iter()
                    .filter(|(m, _)| seen.insert(m.clone()))
                    .collect(),
            )
        }),
        proptest::collection::vec((bytes(), bytes()), 1..20).prop_map(|v| {
            let mut seen = BTreeSet::new();
            Model::Hash(
                v.into_iter()
                    .filter(|(f, _)| seen.insert(f.clone()))
                    .collect(),
            )
        }),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    (
        0u64..3,
        bytes(),
        proptest::option::of(0i64..5_000_000_000_000),
        model(),
        any::<bool>(),
    )
        .prop_map(|(db, key, expire_ms, model, compact)| Key {
            db,
            key,
            expire_ms,
            model,
            compact,
        })
}

fn len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Writes a string the way Redis does: int encoding for canonical int32s, LZF when it helps.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    if let Some(i) = std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<i32>().ok())
        .filter(|i| i.to_string().as_bytes() == s)
    {
        if let Ok(b) = i8::try_from(i) {
            out.extend_from_slice(&[0xC0, b as u8]);
        } else if let Ok(h) = i16::try_from(i) {
            out.push(0xC1);
            out.extend_from_slice(&h.to_le_bytes());
        } else {
            out.push(0xC2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        return;
    }
    let mut packed = Vec::new();
    if s.len() > 20 && lzf::compress(s, &mut packed) {
        out.push(0xC3);
        len(out, packed.len() as u64);
        len(out, s.len() as u64);
        out.extend_from_slice(&packed);
        return;
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn write(keys: &[Key]) -> Vec<u8> {
    let mut out = b"REDIS0010".to_vec();
    let mut db = u64::MAX;
    for k in keys {
        if k.db != db {
            out.push(0xFE);
            len(&mut out, k.db);
            db = k.db;
        }
        if let Some(ms) = k.expire_ms {
            out.push(0xFC);
            out.extend_from_slice(&ms.to_le_bytes());
        }
        let mut v = Vec::new();
        let ty = match (&k.model, k.compact) {
            (Model::String(s), _) => {
                string(&mut v, s);
                0
            }
            (Model::List(l), false) => {
                len(&mut v, l.len() as u64);
                l.iter().for_each(|e| string(&mut v, e));
                1
            }
            (Model::List(l), true) => {
                // Quicklist 2: a packed node with the first half, a plain node, the rest packed.
                let mid = l.len() / 2;
                let nodes: Vec<(u64, Vec<u8>)> = [&l[..mid], &l[mid..]]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|part| {
                        if part.len() == 1 {
                            (1, part[0].clone())
                        } else {
                            let mut b = ListpackBuilder::new();
                            part.iter().for_each(|e| b.push(e));
                            (2, b.finish())
                        }
                    })
                    .collect();
                len(&mut v, nodes.len() as u64);
                for (container, data) in nodes {
                    len(&mut v, container);
                    string(&mut v, &data);
                }
                18
            }
            (Model::Set(s), false) => {
                len(&mut v, s.len() as u64);
                s.iter().for_each(|e| string(&mut v, e));
                2
            }
            (Model::Set(s), true) => {
                let mut b = ListpackBuilder::new();
                s.iter().for_each(|e| b.push(e));
                string(&mut v, &b.finish());
                20
            }
            (Model::IntSet(s), _) => {
                let mut b = IntsetBuilder::new();
                s.iter().for_each(|&i| b.push(i));
                string(&mut v, &b.finish());
                11
            }
            (Model::Zset(z), false) => {
                len(&mut v, z.len() as u64);
                for (m, sc) in z {
                    string(&mut v, m);
                    v.extend_from_slice(&sc.to_le_bytes());
                }
                5
            }
            (Model::Zset(z), true) => {
                // Type 3: scores as text (253 NaN / 254 +inf / 255 -inf).
                len(&mut v, z.len() as u64);
                for (m, sc) in z {
                    string(&mut v, m);
                    if *sc == f64::INFINITY {
                        v.push(254);
                    } else if *sc == f64::NEG_INFINITY {
                        v.push(255);
                    } else {
                        let t = format!("{sc:e}");
                        v.push(t.len() as u8);
                        v.extend_from_slice(t.as_bytes());
                    }
                }
                3
            }
            (Model::Hash(h), false) => {
                len(&mut v, h.len() as u64);
                for (f, val) in h {
                    string(&mut v, f);
                    string(&mut v, val);
                }
                4
            }
            (Model::Hash(h), true) => {
                let mut b = ListpackBuilder::new();
                for (f, val) in h {
                    b.push(f);
                    b.push(val);
                }
                string(&mut v, &b.finish());
                16
            }
        };
        out.push(ty);
        string(&mut out, &k.key);
        out.extend_from_slice(&v);
    }
    out.push(0xFF);
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn expected(m: &Model) -> Value {
    let b = |v: &[u8]| v.to_vec().into();
    match m {
        Model::String(s) => Value::String(b(s)),
        Model::List(l) => Value::List(l.iter().map(|e| b(e)).collect()),
        Model::Set(s) => Value::Set(s.iter().map(|e| b(e)).collect()),
        Model::IntSet(s) => Value::Set(s.iter().map(|i| i.to_string().into()).collect()),
        Model::Zset(z) => Value::Zset(z.iter().map(|(m, s)| (b(m), *s)).collect()),
        Model::Hash(h) => Value::Hash(
            h.iter()
                .map(|(f, v)| respsync::rdb::HashEntry {
                    field: b(f),
                    value: b(v),
                    expire_ms: None,
                })
                .collect(),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_datasets_round_trip(
        keys in proptest::collection::vec(key(), 0..12),
        sizes in proptest::collection::vec(1usize..300, 1..8),
    ) {
        let file = write(&keys);
        let (events, err) = parse_chunked(&file, &sizes, &ParserConfig::default());
        prop_assert_eq!(err, None);
        let (whole, _) = parse_chunked(&file, &[usize::MAX], &ParserConfig::default());
        prop_assert_eq!(&whole, &events);
        let mut c = Collector::new(u64::MAX);
        let got: Vec<_> = events
            .into_iter()
            .filter_map(|ev| c.handle_event(ev).unwrap())
            .collect();
        prop_assert_eq!(got.len(), keys.len());
        for ((info, value), k) in got.iter().zip(&keys) {
            prop_assert_eq!(info.db, k.db);
            prop_assert_eq!(&info.key[..], &k.key[..]);
            prop_assert_eq!(info.expire.map(|e| e.as_millis()), k.expire_ms);
            prop_assert_eq!(value, &expected(&k.model));
        }
    }
}
