//! RDB snapshots: a resumable push parser, the low-level encodings, and a collect layer.
//!
//! [`Parser`] takes the file in chunks of any size and produces [`RdbEvent`]s; it never needs
//! the whole file or a whole value in memory (see the format notes in the project docs).
//! Input pushed as `Bytes` ([`Parser::push_bytes`]) is parsed in place: the events' keys and
//! raw values are slices of it, with no allocation per key.
//! [`Collector`] turns a key's events into a [`Value`] for callers that want whole values.
//! [`Parser::parse_with`] is the zero-allocation alternative to events: a [`Visitor`] gets
//! keys, string pieces and elements as borrowed slices.
//! [`Writer`] writes files (versions 9–12) as a stream of chunks, and [`parse_dump_payload`]
//! decodes `DUMP` payloads.
//!
//! ## Lazy values
//!
//! With [`ParserConfig::lazy_values`] on, a value the file stores as one encoded string (an
//! LZF-compressed string, a ziplist, listpack, intset or zipmap, each quicklist node and
//! stream node) is not decoded: it arrives as one [`RdbEvent::Raw`] ([`Visitor::raw_value`]
//! for visitors), whose sizes and element count come from its header, and which
//! [`RawRef::decode`] turns into the events it stands for when the consumer wants them.
//! Values stored as separate records (hash-table, skiplist and linked-list elements, raw and
//! integer strings, which cost nothing to "decode") are delivered as usual.
//!
//! ## Memory
//!
//! The parser holds the unparsed input plus the item it is working on: one key, element,
//! hash field and value, stream entry, or embedded container (ziplist, listpack, intset,
//! zipmap — a container is decoded as a whole, so its elements are queued together). String
//! values of any length are delivered in chunks of [`ParserConfig::chunk_size`]; every length
//! is checked against [`ParserConfig`]'s limits before anything is buffered or allocated, and
//! element counts never drive allocation. Push input in moderate pieces (e.g. 64–256 KiB)
//! and drain the events after each push.
//!
//! ## Versions
//!
//! Known: magic `REDIS` with versions 1–13 (`REDIS0001`–`REDIS0013`, including Redis 7.4
//! hash field TTLs and Redis 8.6 `KEY_META` and stream type 26), and magic `VALKEY` up to
//! version 80 (`VALKEY080`, Valkey 9.0/9.1). A newer version than that
//! ([`Magic::newest_version`]) is an [`RdbError::UnsupportedVersion`] unless
//! [`ParserConfig::allow_newer_versions`] says to try anyway; version 0 always is. Codes whose
//! meaning differs (type 22, opcode 243) are resolved by the magic. Module values (type 7)
//! pass through as raw opcode streams; pre-GA module values (type 6) are a typed error.

pub mod encoding;

mod config;
pub mod dump;
mod error;
mod event;
mod parser;
mod raw;
mod value;
mod visitor;
pub mod writer;

pub use config::ParserConfig;
pub use dump::{parse_dump_payload, DumpError, DumpPayload};
pub use error::{ContainerKind, Limit, RdbError};
pub use event::{
    Checksum, Expiry, KeyInfo, Magic, ModuleId, ObjectKind, PendingEntry, PreGaFunction, RdbEvent,
    StreamConsumerInfo, StreamGroupInfo, StreamId, StreamMeta, ValueType,
};
pub use parser::Parser;
pub use raw::{RawKind, RawRef, RawValue};
pub use value::{
    Collector, HashEntry, ModuleValue, Stream, StreamConsumer, StreamEntry, StreamGroup, Value,
};
pub use visitor::{KeyRef, KeysOnly, Visitor};
pub use writer::{AuxFields, KeyOptions, ReplInfo, WriteError, Writer, WriterConfig};
