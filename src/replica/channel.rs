//! Two-connection full syncs, replica side: Redis 8's "rdb channel" and Valkey 8's "dual
//! channel" (rdb-channel.md, protocol.md §11).
//!
//! The main connection asks `PSYNC` as usual. A master that cannot continue and supports the
//! capability we offered answers `+RDBCHANNELSYNC <id>` (Redis) or `+DUALCHANNELSYNC`
//! (Valkey); the session then asks for a second connection ([`ReplicaEvent::RdbChannelOpen`]),
//! runs its short handshake there, and receives the snapshot on it exactly as a classic
//! diskless transfer, while whatever arrives on the main connection (the stream, from the
//! snapshot's offset on) is kept. When the snapshot is complete
//! ([`ReplicaEvent::RdbChannelClose`]) the kept bytes are processed as the stream, so the
//! application sees the same events as in a one-connection full sync: `FullResync`,
//! `RdbBegin`, `RdbChunk`s, `RdbEnd`, then commands (Valkey adds a `Continue`, because its
//! main connection resumes with a `PSYNC` of its own).
//!
//! Any failure on either connection before the snapshot is complete abandons the whole
//! attempt ([`ReplicaError::RdbChannelLost`] or the error itself): close both connections and
//! reconnect, as the servers do.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{
    put_array, split_line, Body, CachedMaster, Handshake, ReplicaError, ReplicaEvent,
    ReplicaSession, State, Step, Transfer,
};
use crate::ids::{ReplId, ReplOffset, ReplicationIds};
use crate::replica::aux::AuxScan;
use crate::replica::error::ProtocolError;

/// Which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Redis 8: `+RDBCHANNELSYNC <main client id>`.
    Redis(u64),
    /// Valkey 8: `+DUALCHANNELSYNC`.
    Valkey,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the application to open the second connection.
    Opening,
    /// Handshake replies expected on the second connection (`+OK` per command sent).
    Handshake { oks: usize },
    /// Waiting for `+FULLRESYNC` (Redis) or `$ENDOFF:` (Valkey).
    Header,
    /// The snapshot is arriving on the second connection (the session is in `Transfer`).
    Transfer,
}

#[derive(Debug)]
pub(super) struct Channel {
    kind: Kind,
    phase: Phase,
    /// To write on the second connection.
    out: BytesMut,
    /// Read from the second connection, not yet parsed (before the transfer).
    buf: BytesMut,
    /// Read from the main connection since the switch: kept until the snapshot is loaded.
    pub(super) main: BytesMut,
    /// Valkey: the `$ENDOFF:` fields (replid, offset, db).
    endoff: Option<(ReplId, ReplOffset, u32)>,
    /// Valkey: replies still expected first on the main connection.
    main_pending: Option<MainStep>,
    /// Bytes of the main connection consumed so far (its error offsets; restored as the
    /// session's count when the kept bytes become the input again).
    main_consumed: u64,
    /// Bytes of the second connection consumed as lines (its error offsets).
    chan_consumed: u64,
}

/// Valkey's main connection answers `REPLCONF set-rdb-client-id` (after which we send
/// `PSYNC`, not before: a server refuses a PSYNC while a reply is pending) and then `PSYNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MainStep {
    RdbClientId,
    Continue,
    /// `+CONTINUE` arrived and was checked; it stays at the front of the kept bytes.
    Checked,
}

impl ReplicaSession {
    /// Recognises the two-connection PSYNC replies; `None` for any other reply.
    pub(super) fn two_channel_reply(&mut self, line: &[u8]) -> Option<Result<(), ReplicaError>> {
        let kind = if let Some(rest) = line.strip_prefix(b"+RDBCHANNELSYNC") {
            let id = std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            match (self.config.rdb_channel && self.config.capa_eof, id) {
                (true, Some(id)) => Kind::Redis(id),
                _ => return Some(Err(self.protocol(0, ProtocolError::BadPsyncReply))),
            }
        } else if line.starts_with(b"+DUALCHANNELSYNC") {
            if !(self.config.dual_channel && self.config.capa_eof) {
                return Some(Err(self.protocol(0, ProtocolError::BadPsyncReply)));
            }
            Kind::Valkey
        } else {
            return None;
        };
        // The main connection now only waits: what arrives on it is kept for later.
        let main = self.buf.split();
        self.state = State::Handshake(Handshake {
            expect: VecDeque::new(),
        });
        self.chan = Some(Channel {
            kind,
            phase: Phase::Opening,
            out: BytesMut::new(),
            buf: BytesMut::new(),
            main,
            endoff: None,
            main_pending: None,
            main_consumed: self.consumed,
            chan_consumed: 0,
        });
        self.events.push_back(ReplicaEvent::RdbChannelOpen);
        Some(Ok(()))
    }

    /// Whether a two-connection full sync is in progress (the second connection is wanted or
    /// open).
    pub fn rdb_channel_active(&self) -> bool {
        self.chan.is_some()
    }

    /// Whether the application should stop reading the main connection for now: the stream
    /// kept during a two-connection full sync passed
    /// [`ReplicaConfig::full_sync_buffer_limit`](super::ReplicaConfig::full_sync_buffer_limit)
    /// (back-pressure onto the master, as Redis does).
    pub fn main_read_paused(&self) -> bool {
        // 0 means the replica output-buffer hard limit, as Redis reads it.
        let limit = match self.config.full_sync_buffer_limit {
            0 => 256 * 1024 * 1024,
            n => n,
        };
        self.chan
            .as_ref()
            .is_some_and(|c| c.main.len() as u64 >= limit)
    }

    /// Bytes of the stream kept during a two-connection full sync (Redis's
    /// `replica_full_sync_buffer_size`).
    pub fn full_sync_buffered(&self) -> usize {
        self.chan.as_ref().map_or(0, |c| c.main.len())
    }

    /// The second connection is up: its handshake starts (optional `AUTH`, one `REPLCONF`,
    /// then `PSYNC ? -1` for Redis or `SYNC` for Valkey).
    pub fn rdb_channel_connected(&mut self, now: Instant) -> Result<(), ReplicaError> {
        self.touch(now);
        let port = self.config.listening_port.to_string();
        let auth = self.config.auth.clone();
        let Some(ch) = &mut self.chan else {
            return Err(super::ApiMisuse::NotConnected.into());
        };
        if !matches!(ch.phase, Phase::Opening) {
            return Err(super::ApiMisuse::AlreadyConnected.into());
        }
        let mut oks = 1;
        if let Some(auth) = &auth {
            match &auth.user {
                Some(u) => put_array(
                    &mut ch.out,
                    &[b"AUTH", u.as_bytes(), auth.password.as_bytes()],
                ),
                None => put_array(&mut ch.out, &[b"AUTH", auth.password.as_bytes()]),
            }
            oks += 1;
        }
        // One REPLCONF: Redis's names the main connection's client id, Valkey's does not.
        let id = match ch.kind {
            Kind::Redis(id) => Some(id.to_string()),
            Kind::Valkey => None,
        };
        let mut args: Vec<&[u8]> = vec![
            b"REPLCONF",
            b"capa",
            b"eof",
            b"rdb-only",
            b"1",
            b"rdb-channel",
            b"1",
        ];
        if let Some(id) = &id {
            args.extend([&b"main-ch-client-id"[..], id.as_bytes()]);
        }
        args.extend([&b"listening-port"[..], port.as_bytes()]);
        put_array(&mut ch.out, &args);
        ch.phase = Phase::Handshake { oks };
        self.last_rx = self.now;
        self.arm_silence();
        Ok(())
    }

    /// Bytes to write on the second connection, if any.
    pub fn poll_rdb_channel_transmit(&mut self) -> Option<Bytes> {
        let ch = self.chan.as_mut()?;
        (!ch.out.is_empty()).then(|| ch.out.split().freeze())
    }

    /// Bytes read from the second connection. Errors fail the whole attempt (reported once as
    /// [`ReplicaEvent::LinkLost`]).
    pub fn handle_rdb_channel_input(
        &mut self,
        now: Instant,
        data: &[u8],
    ) -> Result<(), ReplicaError> {
        self.touch(now);
        match &self.state {
            State::Failed(e) | State::LinkDown(e) => return Err(e.clone()),
            _ => {}
        }
        let Some(ch) = &mut self.chan else {
            return Err(super::ApiMisuse::NotConnected.into());
        };
        if data.is_empty() {
            return Ok(());
        }
        self.last_rx = self.now;
        let result = if matches!(ch.phase, Phase::Transfer) {
            self.buf.extend_from_slice(data);
            self.process()
        } else {
            ch.buf.extend_from_slice(data);
            self.process_channel_lines()
        };
        if let Err(e) = result {
            self.fail(e.clone());
            return Err(e);
        }
        self.arm_silence();
        Ok(())
    }

    /// The second connection closed. Before the snapshot is complete that abandons the
    /// attempt ([`ReplicaError::RdbChannelLost`]); after it, it is expected.
    pub fn rdb_channel_disconnected(&mut self, now: Instant) {
        self.touch(now);
        if self.chan.is_some() {
            self.fail(ReplicaError::RdbChannelLost);
        }
    }

    /// Handshake replies and the header on the second connection.
    fn process_channel_lines(&mut self) -> Result<(), ReplicaError> {
        loop {
            let Some(ch) = &mut self.chan else {
                return Ok(());
            };
            let at = ch.chan_consumed;
            let bad = |error| ReplicaError::Protocol { offset: at, error };
            let Ok(split) = split_line(&mut ch.buf, self.config.max_line_len) else {
                return Err(bad(ProtocolError::LineTooLong));
            };
            let Some((line, used)) = split else {
                return Ok(());
            };
            ch.chan_consumed += used as u64;
            if line.is_empty() {
                continue; // keepalive while the master waits for its fork
            }
            let reply = || String::from_utf8_lossy(&line).into_owned();
            match &mut ch.phase {
                Phase::Opening | Phase::Transfer => return Err(bad(ProtocolError::BadPsyncReply)),
                Phase::Handshake { oks } => {
                    if !line.starts_with(b"+") {
                        return Err(
                            if line.starts_with(b"-NOAUTH") || line.starts_with(b"-WRONGPASS") {
                                ReplicaError::AuthRejected { reply: reply() }
                            } else {
                                ReplicaError::MasterError { reply: reply() }
                            },
                        );
                    }
                    *oks -= 1;
                    if *oks == 0 {
                        match ch.kind {
                            Kind::Redis(_) => put_array(&mut ch.out, &[b"PSYNC", b"?", b"-1"]),
                            Kind::Valkey => ch.out.extend_from_slice(b"SYNC\r\n"),
                        }
                        ch.phase = Phase::Header;
                    }
                }
                Phase::Header => {
                    let (replid, offset, db) = match ch.kind {
                        Kind::Redis(_) => match super::psync_reply(&line) {
                            super::PsyncReply::FullResync(Some((id, off))) => {
                                let parsed = ReplId::parse(id).ok().zip(ReplOffset::parse(off));
                                let Some((id, off)) = parsed else {
                                    return Err(bad(ProtocolError::BadPsyncReply));
                                };
                                (id, off, 0)
                            }
                            _ => return Err(ReplicaError::MasterError { reply: reply() }),
                        },
                        Kind::Valkey => {
                            let Some(f) = parse_endoff(&line) else {
                                return Err(ReplicaError::MasterError { reply: reply() });
                            };
                            // The main connection resumes the stream from the snapshot point:
                            // first `set-rdb-client-id`, then (after its `+OK`) `PSYNC`.
                            let id = f.3.to_string();
                            put_array(
                                &mut self.out,
                                &[b"REPLCONF", b"set-rdb-client-id", id.as_bytes()],
                            );
                            (f.0, f.1, f.2)
                        }
                    };
                    let Some(ch) = &mut self.chan else {
                        return Ok(());
                    };
                    ch.endoff = Some((replid, offset, db));
                    ch.phase = Phase::Transfer;
                    // The snapshot follows on this connection, as a classic transfer (error
                    // offsets relative to this connection until it ends).
                    self.buf = ch.buf.split();
                    self.consumed = ch.chan_consumed;
                    self.events
                        .push_back(ReplicaEvent::FullResync { replid, offset });
                    if ch.kind == Kind::Valkey {
                        ch.main_pending = Some(MainStep::RdbClientId);
                        // Whatever the main connection sent meanwhile is judged now.
                        self.process_main_replies()?;
                    }
                    self.state = State::Transfer(Transfer {
                        sync: Some((replid, offset)),
                        body: Body::Header,
                        done: 0,
                        aux: AuxScan::default(),
                    });
                    return self.process();
                }
            }
        }
    }

    /// Valkey: the replies at the front of the main connection, as they arrive. `+OK` to
    /// `set-rdb-client-id` is taken at once (it releases our `PSYNC`); `+CONTINUE` is checked
    /// at once (a refusal abandons the attempt) but left in place, for the handshake to take
    /// after the snapshot: the events then come in the same order whichever connection was
    /// read first.
    pub(super) fn process_main_replies(&mut self) -> Result<(), ReplicaError> {
        loop {
            let Some(ch) = &mut self.chan else {
                return Ok(());
            };
            let (Some(step), Some((replid, offset, _))) = (ch.main_pending, ch.endoff) else {
                return Ok(());
            };
            if step == MainStep::Checked {
                return Ok(());
            }
            let too_long = ReplicaError::Protocol {
                offset: ch.main_consumed,
                error: ProtocolError::LineTooLong,
            };
            let Some(nl) = ch.main.iter().position(|&b| b == b'\n') else {
                if ch.main.len() > self.config.max_line_len {
                    return Err(too_long);
                }
                return Ok(());
            };
            if nl > self.config.max_line_len {
                return Err(too_long);
            }
            let line = ch.main[..nl].strip_suffix(b"\r").unwrap_or(&ch.main[..nl]);
            let reply = || String::from_utf8_lossy(line).into_owned();
            match step {
                _ if line.is_empty() => {}
                MainStep::RdbClientId => {
                    if !line.starts_with(b"+") {
                        return Err(ReplicaError::MasterError { reply: reply() });
                    }
                    let off = offset.next().to_string();
                    put_array(
                        &mut self.out,
                        &[b"PSYNC", replid.as_bytes(), off.as_bytes()],
                    );
                    ch.main_pending = Some(MainStep::Continue);
                }
                MainStep::Continue | MainStep::Checked => match super::psync_reply(line) {
                    super::PsyncReply::Continue(_) => {
                        ch.main_pending = Some(MainStep::Checked);
                        return Ok(());
                    }
                    _ => return Err(ReplicaError::MasterError { reply: reply() }),
                },
            }
            let _ = ch.main.split_to(nl + 1);
            ch.main_consumed += (nl + 1) as u64;
        }
    }

    /// Called when a transfer ends: for a two-connection sync, brings the kept main-connection
    /// bytes back as the input. Returns true when it set up the rest itself (Valkey still
    /// waiting for its main connection's replies).
    pub(super) fn finish_two_channel(
        &mut self,
        sync: Option<(ReplId, ReplOffset)>,
        stream_db: u32,
    ) -> bool {
        let Some(ch) = self.chan.take() else {
            return false;
        };
        self.events.push_back(ReplicaEvent::RdbChannelClose);
        self.buf = ch.main;
        self.consumed = ch.main_consumed;
        match (ch.kind, ch.endoff.or(sync.map(|(r, o)| (r, o, stream_db)))) {
            (Kind::Valkey, Some((replid, offset, db))) => {
                // Valkey: the main connection's `+CONTINUE` (arrived or to come) starts the
                // stream, through the handshake like any partial resync.
                self.ids = ReplicationIds::new(replid);
                self.stream_out.clear();
                self.cached = Some(CachedMaster {
                    replid,
                    offset,
                    db: if db < self.config.databases {
                        db
                    } else {
                        stream_db
                    },
                });
                let expect = match ch.main_pending {
                    // `PSYNC` is sent when its `+OK` comes.
                    Some(MainStep::RdbClientId) => vec![Step::RdbClientId, Step::Psync],
                    _ => vec![Step::Psync],
                };
                self.strict_psync = Some((replid, offset));
                self.state = State::Handshake(Handshake {
                    expect: expect.into(),
                });
                true
            }
            _ => false,
        }
    }
}

/// `$ENDOFF:<offset> <replid> <dbid> <client id>`.
fn parse_endoff(line: &[u8]) -> Option<(ReplId, ReplOffset, u32, u64)> {
    let rest = std::str::from_utf8(line.strip_prefix(b"$ENDOFF:")?).ok()?;
    let mut f = rest.split(' ');
    let off = ReplOffset::parse(f.next()?.as_bytes())?;
    let id = ReplId::parse(f.next()?.as_bytes()).ok()?;
    let db = f.next()?.parse().ok()?;
    let client = f.next()?.parse().ok()?;
    Some((id, off, db, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endoff_line() {
        let id = "a".repeat(40);
        let line = format!("$ENDOFF:123 {id} 0 17");
        let (rid, off, db, client) = parse_endoff(line.as_bytes()).unwrap();
        assert_eq!(
            (rid.as_str(), off.value(), db, client),
            (&id[..], 123, 0, 17)
        );
        assert!(parse_endoff(b"$ENDOFF:x y").is_none());
        assert!(parse_endoff(b"$EOF:abc").is_none());
    }
}
