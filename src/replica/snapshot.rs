//! [`SnapshotLoader`]: feeds the snapshot of a full sync to the crate's RDB parser and
//! checks it ends exactly where the transfer ends.

use bytes::Bytes;
use thiserror::Error;

use crate::rdb::{Checksum, Parser, ParserConfig, RdbError, RdbEvent};

/// Why a received snapshot is not acceptable.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The RDB itself is broken (including a checksum mismatch or a truncated file).
    #[error(transparent)]
    Rdb(#[from] RdbError),
    /// Bytes followed the RDB end inside the transfer: for a `$EOF:` transfer this means the
    /// mark did not come right after the RDB ("EOF marker is broken" in Redis).
    #[error("{count} bytes after the rdb end at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: u64,
        /// How many extra bytes.
        count: usize,
    },
}

/// Parses the snapshot of a full sync as it arrives from a
/// [`ReplicaSession`](super::ReplicaSession).
///
/// Push each [`ReplicaEvent::RdbChunk`](super::ReplicaEvent::RdbChunk), drain
/// [`poll_event`](SnapshotLoader::poll_event), and on
/// [`ReplicaEvent::RdbEnd`](super::ReplicaEvent::RdbEnd) call
/// [`finish`](SnapshotLoader::finish) and drain again: the last event is
/// [`RdbEvent::End`] with the checksum outcome, or an error if the file was truncated, had
/// a bad checksum, or did not end exactly where the transfer did.
///
/// ```
/// use respsync::rdb::{Checksum, ParserConfig, RdbEvent};
/// use respsync::replica::SnapshotLoader;
///
/// let mut loader = SnapshotLoader::new(ParserConfig::default());
/// loader.push(b"REDIS0010\xff\0\0\0\0\0\0\0\0"); // an empty RDB, checksum disabled
/// loader.finish();
/// let mut last = None;
/// while let Some(ev) = loader.poll_event().unwrap() {
///     last = Some(ev);
/// }
/// assert_eq!(last, Some(RdbEvent::End { checksum: Checksum::Disabled }));
/// assert_eq!(loader.checksum(), Some(Checksum::Disabled));
/// ```
#[derive(Debug)]
pub struct SnapshotLoader {
    parser: Parser,
    finished: bool,
    checksum: Option<Checksum>,
}

impl SnapshotLoader {
    /// A loader whose parser has the given limits.
    pub fn new(config: ParserConfig) -> SnapshotLoader {
        SnapshotLoader {
            parser: Parser::new(config),
            finished: false,
            checksum: None,
        }
    }

    /// Feeds snapshot bytes (copied; [`SnapshotLoader::push_bytes`] avoids the copy).
    pub fn push(&mut self, data: &[u8]) {
        self.parser.push(data);
    }

    /// Feeds snapshot bytes without copying them: the events hold slices of `data`
    /// ([`Parser::push_bytes`]). `RdbChunk` events carry `Bytes`, so this is the fast path.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::rdb::{ParserConfig, RdbEvent};
    /// use respsync::replica::SnapshotLoader;
    ///
    /// let mut loader = SnapshotLoader::new(ParserConfig::default());
    /// loader.push_bytes(Bytes::from_static(b"REDIS0010\xff\0\0\0\0\0\0\0\0"));
    /// loader.finish();
    /// while loader.poll_event().unwrap().is_some() {}
    /// assert!(loader.is_done());
    /// ```
    pub fn push_bytes(&mut self, data: Bytes) {
        self.parser.push_bytes(data);
    }

    /// Declares that the transfer ended (the session emitted `RdbEnd`).
    pub fn finish(&mut self) {
        self.finished = true;
        self.parser.finish();
    }

    /// The next parsed event, `Ok(None)` when more input is needed or all is done.
    pub fn poll_event(&mut self) -> Result<Option<RdbEvent>, SnapshotError> {
        let ev = self.parser.poll_event()?;
        if let Some(RdbEvent::End { checksum }) = &ev {
            self.checksum = Some(*checksum);
        }
        if self.parser.is_done() && !self.parser.remaining().is_empty() {
            // Checked at every call after the end, so extra bytes are reported as soon as
            // they are pushed, not only at `finish`.
            return Err(SnapshotError::TrailingBytes {
                offset: self.parser.offset(),
                count: self.parser.remaining().len(),
            });
        }
        Ok(ev)
    }

    /// Whether the snapshot was parsed whole and the transfer ended right after it.
    pub fn is_done(&self) -> bool {
        self.finished && self.parser.is_done() && self.parser.remaining().is_empty()
    }

    /// The checksum outcome, once the end of the RDB was parsed.
    pub fn checksum(&self) -> Option<Checksum> {
        self.checksum
    }
}
