//! A whole key collected into memory: [`Value`] and the [`Collector`] that builds it.

use bytes::{Bytes, BytesMut};

use super::error::{Limit, RdbError};
use super::event::{
    KeyInfo, ModuleId, PendingEntry, RdbEvent, StreamConsumerInfo, StreamGroupInfo, StreamId,
    StreamMeta,
};

/// A hash field with its value and optional per-field expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashEntry {
    /// Field name.
    pub field: Bytes,
    /// Value.
    pub value: Bytes,
    /// Expiry in ms since the Unix epoch, if the field has its own TTL.
    pub expire_ms: Option<i64>,
}

/// A stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Entry id.
    pub id: StreamId,
    /// Field/value pairs in order.
    pub fields: Vec<(Bytes, Bytes)>,
}

/// A consumer with its pending ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    /// Header as stored.
    pub info: StreamConsumerInfo,
    /// Pending ids owned by the consumer.
    pub pending: Vec<StreamId>,
}

/// A consumer group with its pending list and consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroup {
    /// Header as stored.
    pub info: StreamGroupInfo,
    /// Group pending entries list.
    pub pending: Vec<PendingEntry>,
    /// Consumers.
    pub consumers: Vec<StreamConsumer>,
}

/// A whole stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Live entries in id order.
    pub entries: Vec<StreamEntry>,
    /// Metadata.
    pub meta: StreamMeta,
    /// Consumer groups.
    pub groups: Vec<StreamGroup>,
}

/// A module value passed through unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleValue {
    /// Module type id.
    pub id: ModuleId,
    /// The raw opcode stream after the id, including the terminating opcode 0.
    pub raw: Bytes,
}

/// A key's value, whatever its encoding in the file. Integers stored compactly are given as
/// their decimal text; set, hash and zset elements keep file order.
///
/// ```
/// use bytes::Bytes;
/// use respsync::rdb::Value;
///
/// let v = Value::List(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
/// assert_eq!(v.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A string.
    String(Bytes),
    /// A list.
    List(Vec<Bytes>),
    /// A set, in file order.
    Set(Vec<Bytes>),
    /// A sorted set as (member, score), in file order.
    Zset(Vec<(Bytes, f64)>),
    /// A hash, in file order.
    Hash(Vec<HashEntry>),
    /// A stream.
    Stream(Box<Stream>),
    /// A module value.
    Module(ModuleValue),
}

impl Value {
    /// Number of elements (bytes for a string, live entries for a stream, opcode stream
    /// bytes for a module value).
    pub fn len(&self) -> usize {
        match self {
            Value::String(b) => b.len(),
            Value::List(v) | Value::Set(v) => v.len(),
            Value::Zset(v) => v.len(),
            Value::Hash(v) => v.len(),
            Value::Stream(s) => s.entries.len(),
            Value::Module(m) => m.raw.len(),
        }
    }

    /// Whether [`Value::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
enum Building {
    String(BytesMut),
    Module(ModuleId, BytesMut),
    Value(Value),
}

/// Builds whole keys from [`RdbEvent`]s, under a limit on the bytes a value may hold.
///
/// Feed it every event; it returns the key and its value at each [`RdbEvent::KeyEnd`]. Events
/// outside keys are ignored (handle them before passing them on if you need them).
///
/// ```
/// use respsync::rdb::{Collector, RdbEvent, Value};
/// use respsync::rdb::{KeyInfo, ObjectKind};
///
/// let key_start = || RdbEvent::KeyStart(KeyInfo::new(0, "k".into(), ObjectKind::List));
///
/// let mut collector = Collector::new(1 << 20);
/// assert!(collector.handle_event(key_start()).unwrap().is_none());
/// collector.handle_event(RdbEvent::Element("a".into())).unwrap();
/// collector.handle_event(RdbEvent::Element("b".into())).unwrap();
/// let (info, value) = collector.handle_event(RdbEvent::KeyEnd).unwrap().unwrap();
/// assert_eq!(&info.key[..], b"k");
/// assert_eq!(value, Value::List(vec!["a".into(), "b".into()]));
///
/// // Over the limit: a typed error.
/// let mut small = Collector::new(20);
/// small.handle_event(key_start()).unwrap();
/// assert!(small.handle_event(RdbEvent::Element(vec![0u8; 64].into())).is_err());
/// ```
#[derive(Debug)]
pub struct Collector {
    max_bytes: u64,
    used: u64,
    current: Option<(KeyInfo, Building)>,
}

/// Fixed per-element overhead counted against the limit, so that many empty elements still
/// count.
const ELEMENT_OVERHEAD: u64 = 16;

impl Collector {
    /// A collector refusing values larger than `max_bytes` (element bytes plus a small
    /// per-element overhead).
    pub fn new(max_bytes: u64) -> Self {
        Collector {
            max_bytes,
            used: 0,
            current: None,
        }
    }

    fn charge(&mut self, bytes: usize, offset: u64) -> Result<(), RdbError> {
        self.used = self
            .used
            .saturating_add(bytes as u64)
            .saturating_add(ELEMENT_OVERHEAD);
        if self.used > self.max_bytes {
            return Err(RdbError::LimitExceeded {
                limit: Limit::ValueSize,
                len: self.used,
                max: self.max_bytes,
                offset,
            });
        }
        Ok(())
    }

    /// Handles one event; returns the finished key at its end.
    pub fn handle_event(&mut self, event: RdbEvent) -> Result<Option<(KeyInfo, Value)>, RdbError> {
        let offset = self.current.as_ref().map_or(0, |(info, _)| info.offset);
        match event {
            RdbEvent::KeyStart(info) => {
                use super::event::ValueType as T;
                let building = match info.kind.value_type() {
                    T::String => Building::String(BytesMut::new()),
                    T::List => Building::Value(Value::List(Vec::new())),
                    T::Set => Building::Value(Value::Set(Vec::new())),
                    T::Zset => Building::Value(Value::Zset(Vec::new())),
                    T::Hash => Building::Value(Value::Hash(Vec::new())),
                    T::Stream => Building::Value(Value::Stream(Box::new(Stream {
                        entries: Vec::new(),
                        meta: StreamMeta {
                            length: 0,
                            last_id: StreamId::default(),
                            first_id: None,
                            max_deleted_id: None,
                            entries_added: None,
                            groups: 0,
                        },
                        groups: Vec::new(),
                    }))),
                    T::Module => Building::Module(ModuleId(0), BytesMut::new()),
                };
                self.used = 0;
                self.current = Some((info, building));
                Ok(None)
            }
            RdbEvent::KeyEnd => {
                let Some((info, building)) = self.current.take() else {
                    return Ok(None);
                };
                let value = match building {
                    Building::String(b) => Value::String(b.freeze()),
                    Building::Module(id, raw) => Value::Module(ModuleValue {
                        id,
                        raw: raw.freeze(),
                    }),
                    Building::Value(v) => v,
                };
                Ok(Some((info, value)))
            }
            RdbEvent::StringChunk(data) => {
                self.charge(data.len(), offset)?;
                if let Some((_, Building::String(buf))) = &mut self.current {
                    buf.extend_from_slice(&data);
                }
                Ok(None)
            }
            RdbEvent::Element(e) => {
                self.charge(e.len(), offset)?;
                if let Some((_, Building::Value(Value::List(v) | Value::Set(v)))) =
                    &mut self.current
                {
                    v.push(e);
                }
                Ok(None)
            }
            RdbEvent::ZsetMember { member, score } => {
                self.charge(member.len() + 8, offset)?;
                if let Some((_, Building::Value(Value::Zset(v)))) = &mut self.current {
                    v.push((member, score));
                }
                Ok(None)
            }
            RdbEvent::HashField {
                field,
                value,
                expire_ms,
            } => {
                self.charge(field.len() + value.len(), offset)?;
                if let Some((_, Building::Value(Value::Hash(v)))) = &mut self.current {
                    v.push(HashEntry {
                        field,
                        value,
                        expire_ms,
                    });
                }
                Ok(None)
            }
            RdbEvent::StreamEntry { id, fields } => {
                let size: usize = fields.iter().map(|(f, v)| f.len() + v.len() + 16).sum();
                self.charge(size, offset)?;
                if let Some(s) = self.stream() {
                    s.entries.push(StreamEntry { id, fields });
                }
                Ok(None)
            }
            RdbEvent::StreamMeta(meta) => {
                if let Some(s) = self.stream() {
                    s.meta = meta;
                }
                Ok(None)
            }
            RdbEvent::StreamGroup(info) => {
                self.charge(info.name.len(), offset)?;
                if let Some(s) = self.stream() {
                    s.groups.push(StreamGroup {
                        info,
                        pending: Vec::new(),
                        consumers: Vec::new(),
                    });
                }
                Ok(None)
            }
            RdbEvent::StreamPending(p) => {
                self.charge(32, offset)?;
                if let Some(g) = self.stream().and_then(|s| s.groups.last_mut()) {
                    g.pending.push(p);
                }
                Ok(None)
            }
            RdbEvent::StreamConsumer(info) => {
                self.charge(info.name.len(), offset)?;
                if let Some(g) = self.stream().and_then(|s| s.groups.last_mut()) {
                    g.consumers.push(StreamConsumer {
                        info,
                        pending: Vec::new(),
                    });
                }
                Ok(None)
            }
            RdbEvent::StreamConsumerPending(id) => {
                self.charge(16, offset)?;
                if let Some(c) = self
                    .stream()
                    .and_then(|s| s.groups.last_mut())
                    .and_then(|g| g.consumers.last_mut())
                {
                    c.pending.push(id);
                }
                Ok(None)
            }
            RdbEvent::Module { id } => {
                if let Some((_, Building::Module(m, _))) = &mut self.current {
                    *m = id;
                }
                Ok(None)
            }
            RdbEvent::ModuleChunk(chunk) => {
                self.charge(chunk.len(), offset)?;
                if let Some((_, Building::Module(_, raw))) = &mut self.current {
                    raw.extend_from_slice(&chunk);
                }
                Ok(None)
            }
            RdbEvent::Raw(raw) => {
                // A lazy value: collecting it means decoding it.
                for event in raw.events()? {
                    self.handle_event(event)?;
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn stream(&mut self) -> Option<&mut Stream> {
        match &mut self.current {
            Some((_, Building::Value(Value::Stream(s)))) => Some(s),
            _ => None,
        }
    }
}
