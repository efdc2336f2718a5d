//! Values built from the fuzz input are encoded as RDB objects at version 9–12, wrapped in a
//! file and parsed back: the parser must return exactly the value (sets and hashes compared
//! without order, zsets by score then member), whatever encoding the encoder chose.
#![no_main]

use std::collections::HashSet;

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::encoding::object::{ObjectEncoder, Thresholds};
use respsync::rdb::{Collector, HashEntry, Parser, ParserConfig, Value};

fn element(u: &mut Unstructured<'_>) -> Result<Bytes> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Bytes::from(u.arbitrary::<i64>()?.to_string()),
        1 => Bytes::from(u.int_in_range(-300i64..=300)?.to_string()),
        2 => {
            let n = u.int_in_range(0..=80)?;
            Bytes::copy_from_slice(u.bytes(n)?)
        }
        _ => {
            let n = u.int_in_range(0..=600)?;
            Bytes::from(vec![u.arbitrary::<u8>()?; n])
        }
    })
}

fn unique(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<Bytes>> {
    let n = u.int_in_range(1..=max)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let e = element(u)?;
        if seen.insert(e.clone()) {
            out.push(e);
        }
    }
    Ok(out)
}

fn value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => Value::String(element(u)?),
        1 => {
            let n = u.int_in_range(1..=300)?;
            Value::List((0..n).map(|_| element(u)).collect::<Result<_>>()?)
        }
        2 => Value::Set(unique(u, 300)?),
        3 => {
            let members = unique(u, 200)?;
            let mut pairs = Vec::new();
            for m in members {
                let s: f64 = u.arbitrary()?;
                pairs.push((m, if s.is_nan() { 0.5 } else { s }));
            }
            Value::Zset(pairs)
        }
        _ => {
            let fields = unique(u, 200)?;
            let mut entries = Vec::new();
            for field in fields {
                entries.push(HashEntry {
                    field,
                    value: element(u)?,
                    expire_ms: None,
                });
            }
            Value::Hash(entries)
        }
    })
}

fn normalize(v: Value) -> Value {
    match v {
        Value::Set(mut m) => {
            m.sort();
            Value::Set(m)
        }
        Value::Hash(mut h) => {
            h.sort_by(|a, b| a.field.cmp(&b.field));
            Value::Hash(h)
        }
        Value::Zset(mut z) => {
            z.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            Value::Zset(z)
        }
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(version) = u.int_in_range(9u8..=12) else { return };
    let Ok(small) = u.arbitrary::<bool>() else { return };
    let Ok(v) = value(&mut u) else { return };
    let mut enc = ObjectEncoder::new(version).unwrap();
    if small {
        // Tiny thresholds so that both compact and plain encodings are reached.
        let mut t = Thresholds::default();
        t.hash_max_listpack_entries = 4;
        t.zset_max_listpack_entries = 4;
        t.set_max_intset_entries = 4;
        t.set_max_listpack_entries = 4;
        t.list_max_node_bytes = 64;
        t.list_packed_threshold = 100;
        enc.set_thresholds(t);
    }
    let mut file = format!("REDIS{version:04}").into_bytes();
    file.extend_from_slice(&[0xfe, 0x00]);
    enc.write_object(Some(b"k"), &v, &mut file).unwrap();
    file.push(0xff);
    let crc = crc64(0, &file);
    file.extend_from_slice(&crc.to_le_bytes());

    let mut parser = Parser::new(ParserConfig::default());
    let mut collector = Collector::new(u64::MAX);
    parser.push(&file);
    parser.finish();
    let mut got = None;
    while let Some(ev) = parser.poll_event().expect("encoder output parses") {
        if let Some((_, value)) = collector.handle_event(ev).unwrap() {
            got = Some(value);
        }
    }
    assert_eq!(got.map(normalize), Some(normalize(v)));
});
