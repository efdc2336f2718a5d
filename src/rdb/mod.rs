//! RDB snapshots: a resumable push parser, the low-level encodings, and a collect layer.
//!
//! [`Parser`] takes the file in chunks of any size and produces [`RdbEvent`]s; it never needs
//! the whole file or a whole value in memory (see the format notes in the project docs).
//! [`Collector`] turns a key's events into a [`Value`] for callers that want whole values.

pub mod encoding;

mod config;
mod error;
mod event;
mod parser;
mod value;

pub use config::ParserConfig;
pub use error::{ContainerKind, Limit, RdbError};
pub use event::{
    Checksum, Expiry, KeyInfo, Magic, ModuleId, ObjectKind, PendingEntry, RdbEvent,
    StreamConsumerInfo, StreamGroupInfo, StreamId, StreamMeta, ValueType,
};
pub use parser::Parser;
pub use value::{
    Collector, HashEntry, ModuleValue, Stream, StreamConsumer, StreamEntry, StreamGroup, Value,
};
