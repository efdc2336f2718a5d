//! `rdb-dump`'s JSON lines, checked against the corpus (via the event conversion that
//! `rdb_corpus` validates) for every file.

#[path = "../examples/rdb-dump/dump.rs"]
#[allow(dead_code)]
mod dump;
mod support;

use bytes::Bytes;
use respsync::rdb::{KeyInfo, ObjectKind, Parser, ParserConfig, RdbEvent};
use serde_json::{json, Map, Value as J};
use support::corpus::*;

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0,
    };
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let n = q
            .iter()
            .fold(0u32, |acc, &c| (acc << 6) | u32::from(val(c)));
        let pad = q.iter().filter(|&&c| c == b'=').count();
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

fn raw(j: &J) -> Vec<u8> {
    match j {
        J::String(s) => s.as_bytes().to_vec(),
        J::Object(o) => b64_decode(o["base64"].as_str().unwrap()),
        other => panic!("not a byte string: {other}"),
    }
}

/// rdb-dump's value shape → the corpus' value shape.
fn to_corpus(t: &str, v: &J) -> J {
    match t {
        "string" | "list" => v.clone(),
        "set" => {
            let mut items: Vec<Vec<u8>> = v.as_array().unwrap().iter().map(raw).collect();
            items.sort();
            J::Array(items.iter().map(|b| jbytes(b)).collect())
        }
        "zset" => {
            let mut items: Vec<(Vec<u8>, f64, J)> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let s = match &p[1] {
                        J::String(s) if s == "inf" => f64::INFINITY,
                        J::String(s) if s == "-inf" => f64::NEG_INFINITY,
                        n => n.as_f64().unwrap(),
                    };
                    (raw(&p[0]), s, p[1].clone())
                })
                .collect();
            items.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
            J::Array(
                items
                    .into_iter()
                    .map(|(m, _, s)| json!([jbytes(&m), s]))
                    .collect(),
            )
        }
        "hash" => {
            let mut m = Map::new();
            for p in v.as_array().unwrap() {
                let f = jkey(&raw(&p[0]));
                let val = match p.get(2) {
                    Some(t) => json!({ "value": p[1], "expire_ms": t }),
                    None => p[1].clone(),
                };
                m.insert(f, val);
            }
            J::Object(m)
        }
        other => panic!("no conversion for {other}"),
    }
}

fn check_stream(dumped: &J, want: &J) {
    let entries: Vec<J> = dumped["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let flat: Vec<J> = e[1]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| [p[0].clone(), p[1].clone()])
                .collect();
            json!([e[0], flat])
        })
        .collect();
    assert_eq!(J::Array(entries), want["entries"]);
    assert_eq!(dumped["last_id"], want["last_id"]);
    let groups: Vec<J> = want["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let consumers: Vec<J> = g["consumers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| json!({"name": c["name"], "pending": c["pel"].as_array().unwrap().len()}))
                .collect();
            json!({
                "name": g["name"],
                "last_id": g["last_id"],
                "pending": g["pel"].as_array().unwrap().len(),
                "consumers": consumers,
            })
        })
        .collect();
    assert_eq!(dumped["groups"], J::Array(groups));
}

#[test]
fn rdb_dump_lines_match_the_corpus() {
    let mut checked = 0;
    for path in corpus_files() {
        let data = std::fs::read(&path).unwrap();
        let (events, err) = parse_whole(&data);
        if err.is_some() {
            continue;
        }
        let want = events_to_json(&events);
        let mut dumper = dump::JsonDumper::new();
        let mut out = Vec::new();
        for ev in &events {
            dumper.event(ev, &mut out).unwrap();
        }
        dumper.flush(&mut out).unwrap();
        // The visitor path rdb-dump runs gives the same bytes.
        let mut dumper2 = dump::JsonDumper::new();
        let mut out2 = Vec::new();
        let mut parser = Parser::new(ParserConfig::default());
        let mut v = dump::JsonVisitor {
            dumper: &mut dumper2,
            w: &mut out2,
            error: None,
        };
        for piece in data.chunks(1000) {
            parser.feed_with(piece, &mut v).unwrap();
        }
        parser.finish();
        parser.parse_with(&mut v).unwrap();
        assert!(v.error.is_none());
        dumper2.flush(&mut out2).unwrap();
        assert!(out == out2, "{}: visitor output differs", path.display());
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), want.keys.len(), "{}", path.display());
        for (line, k) in lines.iter().zip(&want.keys) {
            let got: J = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad JSON {e}: {line}", path.display()));
            let ctx = format!(
                "{} key {:?}",
                path.display(),
                String::from_utf8_lossy(&k.key)
            );
            assert_eq!(got.as_object().unwrap().len(), 5, "{ctx}");
            assert_eq!(got["db"], json!(k.db), "{ctx}");
            assert_eq!(got["key"], jbytes(&k.key), "{ctx}");
            assert_eq!(got["type"], k.obj["type"], "{ctx}");
            assert_eq!(
                got["expire_ms"],
                k.obj.get("expire_ms").cloned().unwrap_or(J::Null),
                "{ctx}"
            );
            let t = got["type"].as_str().unwrap();
            let wv = &k.obj["value"];
            match t {
                "stream" => check_stream(&got["value"], wv),
                "module" => {
                    assert_eq!(got["value"]["module"], wv["module"], "{ctx}");
                    assert_eq!(got["value"]["bytes"], wv["payload_bytes"], "{ctx}");
                }
                _ => assert!(
                    json_close(&to_corpus(t, &got["value"]), wv),
                    "{ctx}: {line}"
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 3000, "only {checked} keys checked");
}

#[test]
fn json_helpers() {
    let mut out = Vec::new();
    dump::write_bytes(&mut out, b"a\"b\\c\n\x01\xe2\x9c\x93");
    assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001✓\"".as_bytes());
    out.clear();
    dump::write_bytes(&mut out, b"\xff\x00a");
    assert_eq!(out, b"{\"base64\":\"/wBh\"}");
    out.clear();
    dump::write_int(&mut out, i128::from(i64::MIN));
    assert_eq!(out, b"-9223372036854775808");
    out.clear();
    dump::write_score(&mut out, 1e300);
    dump::write_score(&mut out, f64::NEG_INFINITY);
    assert_eq!(out, b"1e300\"-inf\"");
    for (input, want) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
    ] {
        out.clear();
        dump::base64(&mut out, input);
        assert_eq!(out, want.as_bytes());
        assert_eq!(b64_decode(want), input);
    }
}

#[test]
fn after_an_error_only_complete_lines_are_written() {
    let path = corpus_dir().join("HDT3213_rdb/listpack.rdb");
    let data = std::fs::read(path).unwrap();
    let (events, err) = parse_whole(&data[..200]);
    assert!(err.is_some());
    let mut dumper = dump::JsonDumper::new();
    let mut out = Vec::new();
    for ev in &events {
        dumper.event(ev, &mut out).unwrap();
    }
    dumper.flush_complete(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<J>(line).unwrap();
    }
    assert!(!text.is_empty());
}

#[test]
fn long_values_are_encoded_in_pieces_identically() {
    let utf8: Vec<u8> = "añ✓\"\\\n\u{1F600}".repeat(40_000).into_bytes();
    let mut binary = utf8.clone();
    binary.push(0xFF);
    for data in [utf8, binary, vec![b'a'; 200_000], vec![0u8; 100_001]] {
        let mut whole = Vec::new();
        dump::write_bytes(&mut whole, &data);
        let mut pieces = Vec::new();
        let mut buf = Vec::new();
        dump::write_bytes_to(&mut pieces, &data, &mut buf).unwrap();
        assert!(whole == pieces, "len {}", data.len());
        let back: J = serde_json::from_slice(&pieces).unwrap();
        assert_eq!(raw(&back), data);
    }
}

/// The JSON line `rdb-dump` writes for a string key whose value arrives in `piece`-byte chunks.
fn dump_string(data: &[u8], piece: usize) -> J {
    let mut dumper = dump::JsonDumper::new();
    let mut out = Vec::new();
    let start = RdbEvent::KeyStart(KeyInfo::new(
        0,
        Bytes::from_static(b"k"),
        ObjectKind::String,
    ));
    dumper.event(&start, &mut out).unwrap();
    for c in data.chunks(piece) {
        dumper
            .event(&RdbEvent::StringChunk(Bytes::copy_from_slice(c)), &mut out)
            .unwrap();
    }
    dumper.event(&RdbEvent::KeyEnd, &mut out).unwrap();
    dumper.flush(&mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn strings_over_the_hold_limit_stream_out_as_base64() {
    // UTF-8 text, longer than the dumper holds: written as base64 while it arrives.
    let data: Vec<u8> = "abc✓".repeat(dump::HOLD_AT_MOST / 2).into_bytes();
    for piece in [1000, 65536, 7] {
        let line = dump_string(&data, piece);
        assert!(line["value"]["base64"].is_string(), "piece {piece}");
        assert_eq!(raw(&line["value"]), data, "piece {piece}");
    }
    // At the limit, the value is still held and written as text.
    let short = vec![b'x'; dump::HOLD_AT_MOST];
    let line = dump_string(&short, 1 << 16);
    assert_eq!(line["value"].as_str().unwrap().as_bytes(), &short[..]);
}
