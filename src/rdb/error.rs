//! Errors of the RDB parser.

use std::fmt;

use super::encoding::ContainerErrorKind;

/// Which configured limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`ParserConfig::max_string_len`](super::ParserConfig::max_string_len).
    StringLen,
    /// [`ParserConfig::max_blob_len`](super::ParserConfig::max_blob_len).
    BlobLen,
    /// [`ParserConfig::max_collection_len`](super::ParserConfig::max_collection_len).
    CollectionLen,
    /// The value size limit of a [`Collector`](super::Collector).
    ValueSize,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::StringLen => "string length",
            Limit::BlobLen => "container length",
            Limit::CollectionLen => "collection length",
            Limit::ValueSize => "value size",
        })
    }
}

/// Which embedded container a [`RdbError::Container`] error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContainerKind {
    /// A ziplist.
    Ziplist,
    /// A listpack.
    Listpack,
    /// An intset.
    Intset,
    /// A zipmap.
    Zipmap,
    /// LZF-compressed data.
    Lzf,
}

impl fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerKind::Ziplist => "ziplist",
            ContainerKind::Listpack => "listpack",
            ContainerKind::Intset => "intset",
            ContainerKind::Zipmap => "zipmap",
            ContainerKind::Lzf => "lzf string",
        })
    }
}

/// An error found while parsing an RDB file. Every variant that can point at a place in the
/// input carries the absolute byte `offset` (from the first byte of the magic).
///
/// Errors are sticky: once [`Parser::poll_event`](super::Parser::poll_event) has returned one,
/// every later call returns the same error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RdbError {
    /// The file does not start with `REDIS` + 4 digits or `VALKEY` + 3 digits.
    #[error("bad magic at offset 0")]
    BadMagic,
    /// The header names version 0, or a version newer than the newest this crate knows for
    /// its magic (see [`Magic::newest_version`](super::Magic::newest_version)) while
    /// [`ParserConfig::allow_newer_versions`](super::ParserConfig::allow_newer_versions) is off.
    #[error("unsupported rdb version {version} (newest known for {magic}: {newest})")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
        /// The file's magic.
        magic: super::Magic,
        /// The newest version this crate knows for that magic.
        newest: u32,
    },
    /// A record starts with a byte that is neither a known opcode nor a known object type.
    #[error("unknown object type {type_byte} at offset {offset}")]
    UnknownType {
        /// The byte.
        type_byte: u8,
        /// Where it was found.
        offset: u64,
    },
    /// An opcode byte this parser recognises but cannot parse (e.g. Valkey `SLOT_IMPORT`).
    #[error("unsupported opcode {opcode:#04x} at offset {offset}")]
    UnsupportedOpcode {
        /// The opcode.
        opcode: u8,
        /// Where it was found.
        offset: u64,
    },
    /// Object type 6 (pre-GA module format) cannot be parsed without the module.
    #[error("pre-release module value (type 6) cannot be parsed at offset {offset}")]
    ModulePreGa {
        /// Offset of the type byte.
        offset: u64,
    },
    /// A length starts with an invalid byte (0x82–0xBF, or a special encoding where a plain
    /// length is required).
    #[error("invalid length encoding {byte:#04x} at offset {offset}")]
    InvalidLength {
        /// The first byte of the length.
        byte: u8,
        /// Its offset.
        offset: u64,
    },
    /// A string starts with an unknown special encoding (0xC4–0xFF).
    #[error("invalid string encoding {byte:#04x} at offset {offset}")]
    InvalidStringEncoding {
        /// The first byte.
        byte: u8,
        /// Its offset.
        offset: u64,
    },
    /// A declared length exceeds a configured limit.
    #[error("{limit} {len} exceeds the limit {max} at offset {offset}")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// The declared length.
        len: u64,
        /// The configured maximum.
        max: u64,
        /// Offset of the length.
        offset: u64,
    },
    /// An embedded container (or LZF data) failed validation.
    #[error("corrupt {container} at offset {offset}: {kind}")]
    Container {
        /// Which container.
        container: ContainerKind,
        /// Absolute offset of the error inside the file (for LZF-compressed containers: of
        /// the compressed string).
        offset: u64,
        /// What was wrong.
        kind: ContainerErrorKind,
    },
    /// A value breaks a structural rule of the format.
    #[error("corrupt {what} at offset {offset}")]
    Corrupt {
        /// What rule was broken.
        what: &'static str,
        /// Where.
        offset: u64,
    },
    /// The stored CRC-64 does not match the computed one.
    #[error(
        "checksum mismatch at offset {offset}: stored {stored:016x}, computed {computed:016x}"
    )]
    ChecksumMismatch {
        /// Stored value.
        stored: u64,
        /// Computed value.
        computed: u64,
        /// Offset of the stored checksum.
        offset: u64,
    },
    /// The input ended (see [`Parser::finish`](super::Parser::finish)) before the file did.
    #[error("unexpected end of input at offset {offset}")]
    UnexpectedEof {
        /// Number of bytes received.
        offset: u64,
    },
}

impl RdbError {
    /// The absolute byte offset the error points at, if it has one.
    pub fn offset(&self) -> Option<u64> {
        match *self {
            RdbError::BadMagic => Some(0),
            RdbError::UnsupportedVersion { .. } => Some(0),
            RdbError::UnknownType { offset, .. }
            | RdbError::UnsupportedOpcode { offset, .. }
            | RdbError::ModulePreGa { offset }
            | RdbError::InvalidLength { offset, .. }
            | RdbError::InvalidStringEncoding { offset, .. }
            | RdbError::LimitExceeded { offset, .. }
            | RdbError::Container { offset, .. }
            | RdbError::Corrupt { offset, .. }
            | RdbError::ChecksumMismatch { offset, .. }
            | RdbError::UnexpectedEof { offset } => Some(offset),
        }
    }
}
