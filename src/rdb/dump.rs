//! `DUMP`/`RESTORE` payloads: parsing one back into a [`Value`].
//!
//! A payload is `type value rdb_version:u16le crc64:u64le`, the CRC covering everything before
//! it. [`ObjectEncoder::dump_payload`](super::encoding::object::ObjectEncoder::dump_payload)
//! builds them; [`parse_dump_payload`] checks the footer and decodes the value with the
//! regular [`Parser`], so every limit of its [`ParserConfig`] applies.
//!
//! ```
//! use bytes::Bytes;
//! use respsync::rdb::encoding::object::ObjectEncoder;
//! use respsync::rdb::{parse_dump_payload, ParserConfig, Value};
//!
//! let value = Value::Set(vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]);
//! let payload = ObjectEncoder::new(10).unwrap().dump_payload(&value).unwrap();
//! let dump = parse_dump_payload(&payload, &ParserConfig::default(), 1 << 20).unwrap();
//! assert_eq!((dump.version, dump.value), (10, value));
//!
//! let mut bad = payload.clone();
//! bad[1] ^= 1;
//! assert!(parse_dump_payload(&bad, &ParserConfig::default(), 1 << 20).is_err());
//! ```

use super::encoding::crc64::crc64;
use super::encoding::object::write_len;
use super::{Collector, ParserConfig, RdbError, RdbEvent, Value};
use crate::rdb::Parser;

/// A decoded `DUMP` payload.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DumpPayload {
    /// The RDB version stamped in the footer.
    pub version: u16,
    /// The value.
    pub value: Value,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// Shorter than the 10-byte footer plus a type byte.
    #[error("payload too short ({0} bytes)")]
    TooShort(usize),
    /// The stored CRC-64 does not match.
    #[error("payload checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    Checksum {
        /// Stored value.
        stored: u64,
        /// Computed value.
        computed: u64,
    },
    /// An RDB version this parser does not read (above 13 and not Valkey's 80).
    #[error("unsupported payload rdb version {0}")]
    Version(u16),
    /// The value is corrupt or over a limit; offsets are relative to the payload start.
    #[error("bad payload value: {0}")]
    Value(RdbError),
    /// The value does not end exactly at the footer.
    #[error("payload value does not end at the footer")]
    TrailingData,
}

/// Checks the footer of a `DUMP` payload and decodes its value, collecting at most
/// `max_value_bytes` (see [`Collector::new`]).
pub fn parse_dump_payload(
    payload: &[u8],
    config: &ParserConfig,
    max_value_bytes: u64,
) -> Result<DumpPayload, DumpError> {
    let n = payload.len();
    if n < 11 {
        return Err(DumpError::TooShort(n));
    }
    let (body, footer) = payload.split_at(n - 8);
    let mut crc_bytes = [0u8; 8];
    crc_bytes.copy_from_slice(footer);
    let stored = u64::from_le_bytes(crc_bytes);
    let computed = crc64(0, body);
    if stored != computed {
        return Err(DumpError::Checksum { stored, computed });
    }
    let version = u16::from_le_bytes([body[n - 10], body[n - 9]]);
    let header = match version {
        1..=13 => format!("REDIS{version:04}"),
        80 => "VALKEY080".to_owned(),
        _ => return Err(DumpError::Version(version)),
    };
    let object = &body[..n - 10];
    // Wrap the object as the only key (named "") of a file and let the parser decode it.
    let mut prefix = header.into_bytes();
    prefix.push(object[0]);
    write_len(0, &mut prefix);
    let shift = prefix.len() as u64 - 1;
    let mut parser = Parser::new(config.clone());
    parser.push(&prefix);
    let mut collector = Collector::new(max_value_bytes);
    let mut value = None;
    let mut step = |parser: &mut Parser, value: &mut Option<Value>| -> Result<bool, DumpError> {
        while let Some(ev) = parser
            .poll_event()
            .map_err(|e| DumpError::Value(rebase(e, shift)))?
        {
            match ev {
                RdbEvent::Header { .. } | RdbEvent::End { .. } => {}
                RdbEvent::KeyStart(_) if value.is_some() => return Err(DumpError::TrailingData),
                RdbEvent::KeyStart(_)
                | RdbEvent::KeyEnd
                | RdbEvent::StringChunk(_)
                | RdbEvent::Element(_)
                | RdbEvent::ZsetMember { .. }
                | RdbEvent::HashField { .. }
                | RdbEvent::StreamNode { .. }
                | RdbEvent::StreamEntry { .. }
                | RdbEvent::StreamMeta(_)
                | RdbEvent::StreamGroup(_)
                | RdbEvent::StreamPending(_)
                | RdbEvent::StreamConsumer(_)
                | RdbEvent::StreamConsumerPending(_)
                | RdbEvent::StreamIdmp { .. }
                | RdbEvent::StreamIdmpProducer { .. }
                | RdbEvent::StreamIdmpEntry { .. }
                | RdbEvent::StreamIdmpStats { .. }
                | RdbEvent::Module { .. }
                | RdbEvent::ModuleChunk(_) => {
                    if let Some((_, v)) = collector
                        .handle_event(ev)
                        .map_err(|e| DumpError::Value(rebase(e, shift)))?
                    {
                        *value = Some(v);
                        return Ok(true);
                    }
                }
                _ => return Err(DumpError::TrailingData),
            }
        }
        Ok(false)
    };
    step(&mut parser, &mut value)?;
    parser.push(&object[1..]);
    // The key is complete exactly when the object is: anything after it is trailing data.
    let done = step(&mut parser, &mut value)?;
    if !done {
        return Err(DumpError::Value(RdbError::UnexpectedEof {
            offset: object.len() as u64,
        }));
    }
    if !parser.remaining().is_empty() || parser.buffered() != 0 {
        return Err(DumpError::TrailingData);
    }
    let value = value.ok_or(DumpError::TrailingData)?;
    Ok(DumpPayload { version, value })
}

/// Moves an error's offset from the wrapped file to the payload.
fn rebase(mut e: RdbError, shift: u64) -> RdbError {
    match &mut e {
        RdbError::UnknownType { offset, .. }
        | RdbError::UnsupportedOpcode { offset, .. }
        | RdbError::ModulePreGa { offset }
        | RdbError::InvalidLength { offset, .. }
        | RdbError::InvalidStringEncoding { offset, .. }
        | RdbError::LimitExceeded { offset, .. }
        | RdbError::Container { offset, .. }
        | RdbError::Corrupt { offset, .. }
        | RdbError::ChecksumMismatch { offset, .. }
        | RdbError::UnexpectedEof { offset } => *offset = offset.saturating_sub(shift),
        _ => {}
    }
    e
}
