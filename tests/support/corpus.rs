//! Shared helpers for the RDB tests: corpus location, event-to-JSON conversion in the
//! corpus' `.expected.json` conventions, canonical JSON and SHA-256 of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use respsync::rdb::{Checksum, Parser, ParserConfig, RdbError, RdbEvent, ValueType};
use serde_json::{json, Map, Value as J};
use sha2::{Digest, Sha256};

/// The corpus directory: `RESPSYNC_CORPUS`, else `<crate>/../shared/corpus/rdb`. Panics
/// loudly when it is missing: corpus tests never skip.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("RESPSYNC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/rdb"));
    assert!(
        dir.join("INDEX.md").is_file(),
        "RDB corpus not found at {} (set RESPSYNC_CORPUS)",
        dir.display()
    );
    dir
}

/// Every `.rdb` file of the corpus, sorted.
pub fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rdb") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&corpus_dir(), &mut out);
    out.sort();
    assert!(
        out.len() >= 280,
        "corpus looks incomplete: {} files",
        out.len()
    );
    out
}

pub fn expected(path: &Path) -> J {
    let mut p = path.as_os_str().to_owned();
    p.push(".expected.json");
    serde_json::from_slice(&std::fs::read(PathBuf::from(p)).unwrap()).unwrap()
}

/// Parses `data` fed in the given chunk sizes (cycled), returning all events or the error.
///
/// Every parse runs through both ways of pushing input — copied slices (`push`) and
/// zero-copy `Bytes` (`push_bytes`) — and asserts that they give identical results.
pub fn parse_chunked(
    data: &[u8],
    sizes: &[usize],
    config: &ParserConfig,
) -> (Vec<RdbEvent>, Option<RdbError>) {
    let copied = parse_chunked_with(data, sizes, config, Push::Copy);
    let in_place = parse_chunked_with(data, sizes, config, Push::Bytes);
    assert_eq!(copied, in_place, "push and push_bytes differ");
    let mut lazy = config.clone();
    lazy.lazy_values(true);
    let (events, err) = parse_chunked_with(data, sizes, &lazy, Push::Bytes);
    assert_eq!(
        copied,
        expand_raw(events, err),
        "lazy values, decoded, differ from eager parsing"
    );
    copied
}

/// Replaces every `RdbEvent::Raw` of a lazy parse by the events decoding it gives; a decode
/// error ends the result there (as the eager parse would have stopped).
pub fn expand_raw(
    events: Vec<RdbEvent>,
    err: Option<RdbError>,
) -> (Vec<RdbEvent>, Option<RdbError>) {
    struct Out(Vec<RdbEvent>);
    impl respsync::rdb::Visitor for Out {
        fn event(&mut self, event: RdbEvent) {
            self.0.push(event);
        }
    }
    let mut out = Out(Vec::new());
    for ev in events {
        match ev {
            RdbEvent::Raw(raw) => {
                if let Err(e) = raw.as_raw_ref().decode(&mut out) {
                    return (out.0, Some(e));
                }
            }
            ev => out.0.push(ev),
        }
    }
    (out.0, err)
}

/// How a test pushes input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Push {
    /// `Parser::push(&[u8])`.
    Copy,
    /// `Parser::push_bytes`, slices of one `Bytes` holding the file.
    Bytes,
}

/// [`parse_chunked`] through one way of pushing.
pub fn parse_chunked_with(
    data: &[u8],
    sizes: &[usize],
    config: &ParserConfig,
    how: Push,
) -> (Vec<RdbEvent>, Option<RdbError>) {
    let file = bytes::Bytes::copy_from_slice(data);
    let mut parser = Parser::new(config.clone());
    let mut events = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    loop {
        if pos < data.len() {
            let n = sizes[i % sizes.len()].max(1).min(data.len() - pos);
            i += 1;
            match how {
                Push::Copy => parser.push(&data[pos..pos + n]),
                Push::Bytes => parser.push_bytes(file.slice(pos..pos + n)),
            }
            pos += n;
        } else {
            parser.finish();
        }
        loop {
            match parser.poll_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
        if pos >= data.len() && parser.is_done() {
            return (events, None);
        }
    }
}

pub fn parse_whole(data: &[u8]) -> (Vec<RdbEvent>, Option<RdbError>) {
    parse_chunked(data, &[usize::MAX], &ParserConfig::default())
}

pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// A byte string in the corpus convention.
pub fn jbytes(b: &[u8]) -> J {
    match std::str::from_utf8(b) {
        Ok(s) => J::String(s.to_owned()),
        Err(_) => json!({ "base64": b64(b) }),
    }
}

/// A map key in the corpus convention.
pub fn jkey(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("base64:{}", b64(b)),
    }
}

pub fn jscore(f: f64) -> J {
    if f == f64::INFINITY {
        J::from("inf")
    } else if f == f64::NEG_INFINITY {
        J::from("-inf")
    } else {
        J::from(f)
    }
}

/// One key as the corpus describes it (`type`, `rdb_type`, `expire_ms`, `value`, ...).
#[derive(Debug, Clone)]
pub struct KeyJson {
    pub db: u64,
    pub key: Vec<u8>,
    pub obj: Map<String, J>,
}

/// Everything a file holds, in the corpus' conventions.
#[derive(Debug, Default)]
pub struct FileJson {
    pub aux: Vec<(J, J)>,
    pub functions: Vec<J>,
    pub module_aux: Vec<J>,
    pub slot_info: Vec<J>,
    pub keys: Vec<KeyJson>,
    pub checksum: Option<Checksum>,
}

/// Converts parser events into the corpus' JSON conventions.
pub fn events_to_json(events: &[RdbEvent]) -> FileJson {
    let mut out = FileJson::default();
    let mut cur: Option<(KeyJson, Builder)> = None;
    let mut module_items = 0u64;
    let mut module_bytes = 0u64;
    let mut in_key_meta = false;
    for ev in events {
        match ev {
            RdbEvent::Aux { name, value } => out.aux.push((jbytes(name), jbytes(value))),
            RdbEvent::Function { code } => out.functions.push(json!({ "code": jbytes(code) })),
            RdbEvent::FunctionPreGa(f) => out.functions.push(json!({
                "name": jbytes(&f.name),
                "engine": jbytes(&f.engine),
                "code_len": f.code.len(),
                "pre_ga": true,
            })),
            RdbEvent::SlotInfo {
                slot,
                keys,
                expires,
            } => out.slot_info.push(json!([slot, keys, expires])),
            RdbEvent::ModuleAux { module, when } => {
                module_items = 0;
                module_bytes = 0;
                out.module_aux.push(json!({
                    "module": module.name(),
                    "encver": module.encver(),
                    "when": when,
                }));
            }
            RdbEvent::ModuleAuxEnd => {
                let last = out.module_aux.last_mut().unwrap();
                last["items"] = json!(module_items);
                last["payload_bytes"] = json!(module_bytes);
            }
            RdbEvent::KeyMeta { .. } => in_key_meta = true,
            RdbEvent::ModuleChunk(_) if in_key_meta => {}
            RdbEvent::ModuleChunk(c) if cur.is_none() => {
                // The corpus counts the items before the EOF opcode (and all bytes).
                module_items += u64::from(c[..] != [0]);
                module_bytes += c.len() as u64;
            }
            RdbEvent::End { checksum } => out.checksum = Some(*checksum),
            RdbEvent::KeyStart(info) => {
                in_key_meta = false;
                let mut obj = Map::new();
                obj.insert("type".into(), json!(info.kind.value_type().name()));
                obj.insert("rdb_type".into(), json!(info.kind.type_byte()));
                if let Some(e) = info.expire {
                    obj.insert("expire_ms".into(), json!(e.as_millis()));
                }
                if let Some(i) = info.idle_s {
                    obj.insert("idle_s".into(), json!(i));
                }
                if let Some(f) = info.freq {
                    obj.insert("lfu_freq".into(), json!(f));
                }
                let b = Builder::new(info.kind.value_type());
                cur = Some((
                    KeyJson {
                        db: info.db,
                        key: info.key.to_vec(),
                        obj,
                    },
                    b,
                ));
            }
            RdbEvent::KeyEnd => {
                let (mut k, b) = cur.take().expect("KeyEnd without KeyStart");
                k.obj.insert("value".into(), b.finish());
                out.keys.push(k);
            }
            other => {
                if let Some((_, b)) = &mut cur {
                    b.event(other);
                }
            }
        }
    }
    assert!(cur.is_none(), "unterminated key");
    out
}

/// Builds one value in the corpus convention.
pub struct Builder {
    vt: ValueType,
    string: Vec<u8>,
    items: Vec<J>,
    raw_items: Vec<Vec<u8>>,
    zset: Vec<(Vec<u8>, f64)>,
    hash: BTreeMap<String, J>,
    stream: Map<String, J>,
    entries: Vec<J>,
    groups: Vec<J>,
    nodes: u64,
    deleted: u64,
    module: Map<String, J>,
    module_items: u64,
    module_bytes: u64,
}

impl Builder {
    pub fn new(vt: ValueType) -> Self {
        Builder {
            vt,
            string: Vec::new(),
            items: Vec::new(),
            raw_items: Vec::new(),
            zset: Vec::new(),
            hash: BTreeMap::new(),
            stream: Map::new(),
            entries: Vec::new(),
            groups: Vec::new(),
            nodes: 0,
            deleted: 0,
            module: Map::new(),
            module_items: 0,
            module_bytes: 0,
        }
    }

    pub fn event(&mut self, ev: &RdbEvent) {
        match ev {
            RdbEvent::StringChunk(c) => self.string.extend_from_slice(c),
            RdbEvent::Element(e) => {
                self.raw_items.push(e.to_vec());
            }
            RdbEvent::ZsetMember { member, score } => self.zset.push((member.to_vec(), *score)),
            RdbEvent::HashField {
                field,
                value,
                expire_ms,
            } => {
                let v = match expire_ms {
                    Some(t) => json!({ "value": jbytes(value), "expire_ms": t }),
                    None => jbytes(value),
                };
                self.hash.insert(jkey(field), v);
            }
            RdbEvent::StreamNode { deleted, .. } => {
                self.nodes += 1;
                self.deleted += deleted;
            }
            RdbEvent::StreamEntry { id, fields } => {
                let flat: Vec<J> = fields
                    .iter()
                    .flat_map(|(f, v)| [jbytes(f), jbytes(v)])
                    .collect();
                self.entries.push(json!([id.to_string(), flat]));
            }
            RdbEvent::StreamMeta(m) => {
                self.stream.insert("length".into(), json!(m.length));
                self.stream
                    .insert("last_id".into(), json!(m.last_id.to_string()));
                if let Some(f) = m.first_id {
                    self.stream.insert("first_id".into(), json!(f.to_string()));
                }
                if let Some(f) = m.max_deleted_id {
                    self.stream
                        .insert("max_deleted_entry_id".into(), json!(f.to_string()));
                }
                if let Some(n) = m.entries_added {
                    self.stream.insert("entries_added".into(), json!(n));
                }
            }
            RdbEvent::StreamGroup(g) => {
                let mut o = json!({
                    "name": jbytes(&g.name),
                    "last_id": g.last_id.to_string(),
                    "pel": [],
                    "consumers": [],
                });
                if let Some(r) = g.entries_read {
                    o["entries_read"] = json!(r);
                }
                self.groups.push(o);
            }
            RdbEvent::StreamPending(p) => {
                let g = self.groups.last_mut().unwrap();
                g["pel"].as_array_mut().unwrap().push(json!({
                    "id": p.id.to_string(),
                    "delivery_time": p.delivery_time_ms,
                    "delivery_count": p.delivery_count,
                }));
            }
            RdbEvent::StreamConsumer(c) => {
                let g = self.groups.last_mut().unwrap();
                let mut o = json!({
                    "name": jbytes(&c.name),
                    "seen_time": c.seen_time_ms,
                    "pel": [],
                });
                if let Some(a) = c.active_time_ms {
                    o["active_time"] = json!(a);
                }
                g["consumers"].as_array_mut().unwrap().push(o);
            }
            RdbEvent::StreamConsumerPending(id) => {
                let g = self.groups.last_mut().unwrap();
                let c = g["consumers"].as_array_mut().unwrap().last_mut().unwrap();
                c["pel"].as_array_mut().unwrap().push(json!(id.to_string()));
            }
            RdbEvent::Module { id } => {
                self.module.insert("module".into(), json!(id.name()));
                self.module.insert("encver".into(), json!(id.encver()));
            }
            RdbEvent::ModuleChunk(c) => {
                self.module_items += u64::from(c[..] != [0]);
                self.module_bytes += c.len() as u64;
            }
            RdbEvent::StreamIdmp { .. }
            | RdbEvent::StreamIdmpProducer { .. }
            | RdbEvent::StreamIdmpEntry { .. }
            | RdbEvent::StreamIdmpStats { .. } => {}
            other => panic!("unexpected event inside a key: {other:?}"),
        }
    }

    pub fn finish(mut self) -> J {
        match self.vt {
            ValueType::String => jbytes(&self.string),
            ValueType::List => J::Array(self.raw_items.iter().map(|e| jbytes(e)).collect()),
            ValueType::Set => {
                self.raw_items.sort();
                J::Array(self.raw_items.iter().map(|e| jbytes(e)).collect())
            }
            ValueType::Zset => {
                self.zset
                    .sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
                J::Array(
                    self.zset
                        .iter()
                        .map(|(m, s)| json!([jbytes(m), jscore(*s)]))
                        .collect(),
                )
            }
            ValueType::Hash => J::Object(self.hash.into_iter().collect()),
            ValueType::Stream => {
                let mut s = self.stream;
                s.insert("groups".into(), J::Array(self.groups));
                s.insert("entries".into(), J::Array(self.entries));
                s.insert("deleted_entries_in_listpacks".into(), json!(self.deleted));
                s.insert("listpack_nodes".into(), json!(self.nodes));
                J::Object(s)
            }
            ValueType::Module => {
                let mut m = self.module;
                m.insert("items".into(), json!(self.module_items));
                m.insert("payload_bytes".into(), json!(self.module_bytes));
                J::Object(m)
            }
            other => panic!("unknown value type {other:?}"),
        }
    }
}

/// Python's `repr(float)`, as `json.dumps` writes floats.
pub fn py_float(f: f64) -> String {
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let ip = exp as usize + 1;
            let (int, frac) = if digits.len() > ip {
                (digits[..ip].to_string(), digits[ip..].to_string())
            } else {
                (format!("{digits:0<ip$}"), "0".to_string())
            };
            format!("{sign}{int}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let rest = &digits[1..];
        let m = if rest.is_empty() {
            digits[..1].to_string()
        } else {
            format!("{}.{}", &digits[..1], rest)
        };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    }
}

/// `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=...)`.
pub fn canonical(v: &J, ensure_ascii: bool, out: &mut String) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            if n.is_f64() {
                out.push_str(&py_float(n.as_f64().unwrap()))
            } else {
                out.push_str(&n.to_string())
            }
        }
        J::String(s) => canonical_str(s, ensure_ascii, out),
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, ensure_ascii, out);
            }
            out.push(']');
        }
        J::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_str(k, ensure_ascii, out);
                out.push(':');
                canonical(&o[k], ensure_ascii, out);
            }
            out.push('}');
        }
    }
}

fn canonical_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn sha256_hex(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `actual` matches an expected value entry (`value`, or the truncated form).
pub fn value_matches(expected_key: &J, actual: &J) -> Result<(), String> {
    if expected_key.get("value_truncated").is_some() {
        let want = expected_key["value_sha256"].as_str().unwrap();
        for ascii in [false, true] {
            let mut s = String::new();
            canonical(actual, ascii, &mut s);
            if sha256_hex(&s) == want {
                return Ok(());
            }
        }
        let mut s = String::new();
        canonical(actual, false, &mut s);
        Err(format!(
            "sha256 mismatch; head of ours: {}",
            &s[..s.len().min(300)]
        ))
    } else if json_close(&expected_key["value"], actual) {
        Ok(())
    } else {
        Err(format!(
            "value mismatch:\n  expected {}\n  actual   {}",
            expected_key["value"], actual
        ))
    }
}

/// Equality, except that floats may differ by a few ULP: some corpus expectations parsed
/// decimal scores with a less exact algorithm than a correctly rounded `strtod`.
pub fn json_close(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x.to_bits() as i64 - y.to_bits() as i64).abs() <= 4
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_close(a, b))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// Wraps a `DUMP` payload (value type, value, 2-byte RDB version, 8-byte CRC) into a whole RDB
/// file of the payload's version holding one key `k` in db 0. Returns the version and the file.
pub fn payload_file(payload: &[u8]) -> (u16, Vec<u8>) {
    let n = payload.len();
    assert!(n >= 11, "a DUMP payload has at least 11 bytes, got {n}");
    let version = u16::from_le_bytes([payload[n - 10], payload[n - 9]]);
    let mut file = format!("REDIS{version:04}").into_bytes();
    file.extend_from_slice(&[0xfe, 0x00, payload[0], 0x01, b'k']);
    file.extend_from_slice(&payload[1..n - 10]);
    file.push(0xff);
    let crc = respsync::rdb::encoding::crc64::crc64(0, &file);
    file.extend_from_slice(&crc.to_le_bytes());
    (version, file)
}
