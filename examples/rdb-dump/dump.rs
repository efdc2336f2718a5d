//! JSON-lines output and `--stats` summary for `rdb-dump`, driven by parser events.
//! (Kept in its own file so the tests can check the output against the corpus.)

use std::collections::BTreeMap;
use std::io::{self, Write};

use respsync::rdb::{
    Checksum, Expiry, KeyRef, ObjectKind, RawRef, RdbError, RdbEvent, ValueType, Visitor,
};

/// Writes `data` as a JSON string if it is UTF-8, else as `{"base64":"..."}`.
pub fn write_bytes(out: &mut Vec<u8>, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(s) => write_str(out, s),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            base64(out, data);
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Values longer than this are encoded to the output piece by piece.
const STREAM_ABOVE: usize = 64 << 10;

/// String values longer than this are not held whole: they are written as base64 (whether
/// or not they are UTF-8) piece by piece as they arrive.
pub const HOLD_AT_MOST: usize = 1 << 20;

/// Like [`write_bytes`], but writes to `w` in pieces of about 64 KiB (using `buf`).
pub fn write_bytes_to(w: &mut impl Write, data: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
    const PIECE: usize = 48 << 10; // a multiple of 3, for base64
    match std::str::from_utf8(data) {
        Ok(s) => {
            w.write_all(b"\"")?;
            let mut start = 0;
            while start < s.len() {
                let mut end = (start + PIECE).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                buf.clear();
                write_str(buf, &s[start..end]);
                // Strip the quotes write_str adds around each piece.
                w.write_all(&buf[1..buf.len() - 1])?;
                start = end;
            }
            w.write_all(b"\"")?;
        }
        Err(_) => {
            w.write_all(b"{\"base64\":\"")?;
            for piece in data.chunks(PIECE) {
                buf.clear();
                base64(buf, piece);
                w.write_all(buf)?;
            }
            w.write_all(b"\"}")?;
        }
    }
    buf.clear();
    Ok(())
}

/// Writes a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Standard base64 with padding.
pub fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
    }
}

/// Writes an integer in decimal.
pub fn write_int(out: &mut Vec<u8>, v: i128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

/// A zset score: a JSON number, or "inf" / "-inf".
pub fn write_score(out: &mut Vec<u8>, f: f64) {
    if f == f64::INFINITY {
        out.extend_from_slice(b"\"inf\"");
    } else if f == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-inf\"");
    } else {
        // Debug gives the shortest round-trip form ("1.0", "1e300"), valid JSON.
        let _ = write!(out, "{f:?}");
    }
}

#[derive(PartialEq)]
enum StreamPart {
    Entries,
    Groups,
    Group,
}

/// Turns events into one JSON line per key.
pub struct JsonDumper {
    line: Vec<u8>,
    vt: Option<ValueType>,
    first: bool,
    string: Vec<u8>,
    module_name: String,
    module_bytes: u64,
    stream: StreamPart,
    first_consumer: bool,
    /// A long string value is being written as base64; up to 2 bytes wait for a full triple.
    base64_tail: Option<Vec<u8>>,
}

impl Default for JsonDumper {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonDumper {
    /// A dumper with nothing written.
    pub fn new() -> Self {
        JsonDumper {
            line: Vec::with_capacity(1 << 16),
            vt: None,
            first: true,
            string: Vec::new(),
            module_name: String::new(),
            module_bytes: 0,
            stream: StreamPart::Entries,
            first_consumer: true,
            base64_tail: None,
        }
    }

    fn sep(&mut self) {
        if !self.first {
            self.line.push(b',');
        }
        self.first = false;
    }

    /// Handles one event; complete output (at least every finished line) is flushed to `w`
    /// whenever the line buffer grows past 64 KiB.
    pub fn event(&mut self, ev: &RdbEvent, w: &mut impl Write) -> io::Result<()> {
        match ev {
            RdbEvent::KeyStart(info) => self.key_start(info.db, &info.key, info.kind, info.expire),
            RdbEvent::StringChunk(c) => return self.string_chunk(c, w),
            RdbEvent::Element(e) => self.element(e),
            RdbEvent::ZsetMember { member, score } => self.zset_member(member, *score),
            RdbEvent::HashField {
                field,
                value,
                expire_ms,
            } => self.hash_field(field, value, *expire_ms),
            RdbEvent::StreamEntry { id, fields } => {
                self.sep();
                let out = &mut self.line;
                out.extend_from_slice(b"[\"");
                let _ = write!(out, "{id}");
                out.extend_from_slice(b"\",[");
                for (i, (f, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    write_bytes(out, f);
                    out.push(b',');
                    write_bytes(out, v);
                    out.push(b']');
                }
                out.extend_from_slice(b"]]");
            }
            RdbEvent::StreamMeta(m) => {
                let _ = write!(self.line, "],\"last_id\":\"{}\",\"groups\":[", m.last_id);
                self.stream = StreamPart::Groups;
                self.first = true;
            }
            RdbEvent::StreamGroup(g) => {
                if self.stream == StreamPart::Group {
                    self.line.extend_from_slice(b"]}");
                }
                self.sep();
                let out = &mut self.line;
                out.extend_from_slice(b"{\"name\":");
                write_bytes(out, &g.name);
                let _ = write!(
                    out,
                    ",\"last_id\":\"{}\",\"pending\":{},\"consumers\":[",
                    g.last_id, g.pending
                );
                self.stream = StreamPart::Group;
                self.first_consumer = true;
            }
            RdbEvent::StreamConsumer(c) => {
                let out = &mut self.line;
                if !self.first_consumer {
                    out.push(b',');
                }
                self.first_consumer = false;
                out.extend_from_slice(b"{\"name\":");
                write_bytes(out, &c.name);
                let _ = write!(out, ",\"pending\":{}}}", c.pending);
            }
            RdbEvent::Module { id } => self.module_name = id.name(),
            RdbEvent::ModuleChunk(c) if self.vt.is_some() => self.module_bytes += c.len() as u64,
            RdbEvent::KeyEnd => self.key_end(w)?,
            _ => {}
        }
        if self.line.len() >= 1 << 16 {
            w.write_all(&self.line)?;
            self.line.clear();
        }
        Ok(())
    }

    fn element(&mut self, e: &[u8]) {
        self.sep();
        write_bytes(&mut self.line, e);
    }

    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.sep();
        self.line.push(b'[');
        write_bytes(&mut self.line, member);
        self.line.push(b',');
        write_score(&mut self.line, score);
        self.line.push(b']');
    }

    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.sep();
        self.line.push(b'[');
        write_bytes(&mut self.line, field);
        self.line.push(b',');
        write_bytes(&mut self.line, value);
        if let Some(t) = expire_ms {
            self.line.push(b',');
            write_int(&mut self.line, i128::from(t));
        }
        self.line.push(b']');
    }

    /// A piece of a string value: held until the key ends, unless the value grows past
    /// [`HOLD_AT_MOST`]; then it is written out as base64 as it comes.
    fn string_chunk(&mut self, c: &[u8], w: &mut impl Write) -> io::Result<()> {
        if self.base64_tail.is_none() && self.string.len() + c.len() <= HOLD_AT_MOST {
            self.string.extend_from_slice(c);
            return Ok(());
        }
        let tail = match &mut self.base64_tail {
            Some(t) => t,
            None => {
                self.line.extend_from_slice(b"{\"base64\":\"");
                w.write_all(&self.line)?;
                self.line.clear();
                self.base64_tail.insert(std::mem::take(&mut self.string))
            }
        };
        tail.extend_from_slice(c);
        let whole = tail.len() / 3 * 3;
        let mut buf = std::mem::take(&mut self.line);
        for piece in tail[..whole].chunks(48 << 10) {
            buf.clear();
            base64(&mut buf, piece);
            w.write_all(&buf)?;
        }
        buf.clear();
        self.line = buf;
        tail.drain(..whole);
        Ok(())
    }

    fn key_start(&mut self, db: u64, key: &[u8], kind: ObjectKind, expire: Option<Expiry>) {
        let out = &mut self.line;
        out.extend_from_slice(b"{\"db\":");
        write_int(out, i128::from(db));
        out.extend_from_slice(b",\"key\":");
        write_bytes(out, key);
        let vt = kind.value_type();
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(vt.name().as_bytes());
        out.extend_from_slice(b"\",\"expire_ms\":");
        match expire {
            Some(e) => write_int(out, i128::from(e.as_millis())),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"value\":");
        match vt {
            ValueType::List | ValueType::Set | ValueType::Zset | ValueType::Hash => out.push(b'['),
            ValueType::Stream => out.extend_from_slice(b"{\"entries\":["),
            _ => {}
        }
        self.vt = Some(vt);
        self.first = true;
        self.string.clear();
        self.base64_tail = None;
        self.module_bytes = 0;
        self.stream = StreamPart::Entries;
    }

    fn key_end(&mut self, w: &mut impl Write) -> io::Result<()> {
        let out = &mut self.line;
        match self.vt.take() {
            Some(ValueType::String) if self.base64_tail.is_some() => {
                let tail = self.base64_tail.take().unwrap_or_default();
                base64(out, &tail);
                out.extend_from_slice(b"\"}");
            }
            Some(ValueType::String) if self.string.len() > STREAM_ABOVE => {
                // Encode a long value straight to the output in pieces, so that only the
                // raw value is held, never its (up to 6x longer) JSON form.
                w.write_all(out)?;
                out.clear();
                write_bytes_to(w, &self.string, out)?;
            }
            Some(ValueType::String) => write_bytes(out, &self.string),
            Some(ValueType::Stream) => {
                if self.stream == StreamPart::Group {
                    out.extend_from_slice(b"]}");
                }
                out.extend_from_slice(b"]}");
            }
            Some(ValueType::Module) => {
                out.extend_from_slice(b"{\"module\":");
                write_str(out, &self.module_name);
                let _ = write!(out, ",\"bytes\":{}}}", self.module_bytes);
            }
            _ => out.push(b']'),
        }
        out.extend_from_slice(b"}\n");
        if self.string.capacity() > 1 << 20 {
            self.string = Vec::new();
        }
        Ok(())
    }

    /// Writes the complete lines buffered (after an error: the keys parsed before it).
    pub fn flush_complete(&mut self, w: &mut impl Write) -> io::Result<()> {
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            w.write_all(&self.line[..=end])?;
            self.line.drain(..=end);
        }
        w.flush()
    }

    /// Writes what is buffered.
    pub fn flush(&mut self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.line)?;
        self.line.clear();
        w.flush()
    }
}

/// [`JsonDumper`] as a [`Visitor`] writing to `w`: keys and values arrive as borrowed slices
/// (the parser's fastest path). The first write error is kept in `error`.
pub struct JsonVisitor<'a, W: Write> {
    pub dumper: &'a mut JsonDumper,
    pub w: &'a mut W,
    pub error: Option<io::Error>,
}

impl<W: Write> JsonVisitor<'_, W> {
    fn flushed(&mut self) {
        if self.dumper.line.len() >= 1 << 16 && self.error.is_none() {
            if let Err(e) = self.w.write_all(&self.dumper.line) {
                self.error = Some(e);
            }
            self.dumper.line.clear();
        }
    }
}

impl<W: Write> Visitor for JsonVisitor<'_, W> {
    fn event(&mut self, event: RdbEvent) {
        if self.error.is_none() {
            if let Err(e) = self.dumper.event(&event, self.w) {
                self.error = Some(e);
            }
        }
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.dumper.key_start(key.db, key.key, key.kind, key.expire);
    }
    fn string_chunk(&mut self, data: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.dumper.string_chunk(data, self.w) {
                self.error = Some(e);
            }
        }
    }
    fn element(&mut self, element: &[u8]) {
        self.dumper.element(element);
        self.flushed();
    }
    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.dumper.zset_member(member, score);
        self.flushed();
    }
    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.dumper.hash_field(field, value, expire_ms);
        self.flushed();
    }
    fn key_end(&mut self) {
        self.event(RdbEvent::KeyEnd);
    }
}

/// The `--stats` summary.
#[derive(Default)]
pub struct Stats {
    header: String,
    aux: Vec<(String, String)>,
    functions: u64,
    module_aux: u64,
    keys_per_db: BTreeMap<u64, u64>,
    expires_per_db: BTreeMap<u64, u64>,
    /// Keys and value bytes per type byte (one file has one magic, so a byte is one kind).
    per_kind: Vec<(Option<ObjectKind>, u64, u64)>,
    total_bytes: u64,
    /// The key being read: db, name, kind, expiry, value bytes, elements.
    in_key: bool,
    db: u64,
    key: Vec<u8>,
    kind: Option<ObjectKind>,
    expire: bool,
    bytes: u64,
    elems: u64,
    largest: Vec<(u64, u64, u64, String, &'static str)>,
    checksum: String,
    /// A lazy value whose header could not be read.
    pub error: Option<RdbError>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const TOP: usize = 10;

impl Stats {
    /// Accounts for one event.
    pub fn event(&mut self, ev: &RdbEvent) {
        match ev {
            RdbEvent::Header { magic, version } => {
                self.header = format!("{} version {version}", magic.as_str())
            }
            RdbEvent::Aux { name, value } => self.aux.push((lossy(name), lossy(value))),
            RdbEvent::Function { .. } | RdbEvent::FunctionPreGa { .. } => self.functions += 1,
            RdbEvent::ModuleAux { .. } => self.module_aux += 1,
            RdbEvent::KeyStart(info) => {
                let mut key = KeyRef::new(info.db, &info.key, info.kind);
                key.expire = info.expire;
                self.key_start(key);
            }
            RdbEvent::StringChunk(c) => self.add(c.len(), 0),
            RdbEvent::Element(e) => self.add(e.len(), 1),
            RdbEvent::ZsetMember { member, .. } => self.add(member.len() + 8, 1),
            RdbEvent::HashField { field, value, .. } => self.add(field.len() + value.len(), 1),
            RdbEvent::StreamEntry { fields, .. } => {
                let n: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
                self.add(n + 16, 1)
            }
            RdbEvent::ModuleChunk(c) => self.add(c.len(), 0),
            RdbEvent::Raw(raw) => self.raw_value(raw.as_raw_ref()),
            RdbEvent::KeyEnd => self.key_done(),
            RdbEvent::End { checksum } => {
                self.checksum = match checksum {
                    Checksum::Verified(v) => format!("ok ({v:016x})"),
                    Checksum::Disabled => "not stored (0)".into(),
                    Checksum::Absent => "none (version < 5)".into(),
                    other => format!("{other:?}"),
                }
            }
            _ => {}
        }
    }

    /// Accounts for the key that just ended.
    fn key_done(&mut self) {
        if !std::mem::take(&mut self.in_key) {
            return;
        }
        let (db, bytes, elems) = (self.db, self.bytes, self.elems);
        if self.keys_per_db.last_key_value().map(|(k, _)| *k) == Some(db) {
            // Keys come grouped by db: the common case skips the tree search.
            if let Some(mut last) = self.keys_per_db.last_entry() {
                *last.get_mut() += 1;
            }
        } else {
            *self.keys_per_db.entry(db).or_default() += 1;
        }
        if self.expire {
            *self.expires_per_db.entry(db).or_default() += 1;
        }
        let Some(kind) = self.kind else { return };
        if self.per_kind.is_empty() {
            self.per_kind = vec![(None, 0, 0); 256];
        }
        let e = &mut self.per_kind[usize::from(kind.type_byte())];
        e.0 = Some(kind);
        e.1 += 1;
        e.2 += bytes;
        self.total_bytes += bytes;
        if self.largest.len() < TOP || bytes > self.largest[TOP - 1].0 {
            self.largest
                .push((bytes, elems, db, lossy(&self.key), kind.value_type().name()));
            self.largest.sort_by_key(|e| std::cmp::Reverse(e.0));
            self.largest.truncate(TOP);
        }
    }

    fn add(&mut self, bytes: usize, elems: u64) {
        self.bytes += bytes as u64;
        self.elems += elems;
    }

    /// Prints the summary.
    pub fn print(&self, w: &mut impl Write, file_bytes: u64) -> io::Result<()> {
        writeln!(w, "header: {}", self.header)?;
        writeln!(w, "file bytes: {file_bytes}")?;
        writeln!(w, "checksum: {}", self.checksum)?;
        writeln!(w, "aux fields:")?;
        for (k, v) in &self.aux {
            let v: String = v.chars().take(80).collect();
            writeln!(w, "  {k} = {v}")?;
        }
        writeln!(w, "functions: {}", self.functions)?;
        writeln!(w, "module aux records: {}", self.module_aux)?;
        let total: u64 = self.keys_per_db.values().sum();
        writeln!(w, "keys: {total}")?;
        for (db, n) in &self.keys_per_db {
            let e = self.expires_per_db.get(db).copied().unwrap_or(0);
            writeln!(w, "  db {db}: {n} keys, {e} with expiry")?;
        }
        writeln!(w, "keys by type and encoding:")?;
        let mut per_kind = BTreeMap::<_, (u64, u64)>::new();
        for (kind, n, b) in &self.per_kind {
            if let Some(kind) = kind {
                let e = per_kind
                    .entry((kind.value_type().name(), kind.encoding_name()))
                    .or_default();
                e.0 += n;
                e.1 += b;
            }
        }
        for ((t, enc), (n, b)) in &per_kind {
            writeln!(w, "  {t:<7} {enc:<20} {n:>10} keys {b:>14} bytes")?;
        }
        writeln!(
            w,
            "value bytes: {} (strings' lengths, packed encodings' decoded sizes, other elements' lengths)",
            self.total_bytes
        )?;
        writeln!(w, "largest keys:")?;
        for (b, e, db, k, t) in &self.largest {
            let k: String = k.chars().take(60).collect();
            writeln!(w, "  {b:>12} bytes {e:>10} elements  db {db} {t} {k}")?;
        }
        Ok(())
    }
}

/// With lazy values on, `--stats` reads every figure from headers: a compressed string's
/// length and a container's size and element count never need decompressing it.
impl Visitor for Stats {
    fn event(&mut self, event: RdbEvent) {
        Stats::event(self, &event);
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.in_key = true;
        self.db = key.db;
        self.key.clear();
        self.key.extend_from_slice(key.key);
        self.kind = Some(key.kind);
        self.expire = key.expire.is_some();
        self.bytes = 0;
        self.elems = 0;
    }
    fn string_chunk(&mut self, data: &[u8]) {
        self.add(data.len(), 0);
    }
    fn element(&mut self, element: &[u8]) {
        self.add(element.len(), 1);
    }
    fn zset_member(&mut self, member: &[u8], _score: f64) {
        self.add(member.len() + 8, 1);
    }
    fn hash_field(&mut self, field: &[u8], value: &[u8], _expire_ms: Option<i64>) {
        self.add(field.len() + value.len(), 1);
    }
    fn raw_value(&mut self, value: RawRef<'_>) {
        match value.count() {
            Ok(n) => {
                self.bytes += value.decoded_len();
                self.elems += n;
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
    fn key_end(&mut self) {
        Stats::event(self, &RdbEvent::KeyEnd);
    }
}
