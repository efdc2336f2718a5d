//! # respsync
//!
//! A **sans-IO** implementation of the Redis/Valkey master–replica replication protocol.
//!
//! The crate owns no sockets, threads, files or clocks. Every state machine in it consumes bytes
//! and time given by the caller and produces bytes, events and deadlines that the caller acts on:
//!
//! ```text
//!            bytes read from the peer           time (now: Instant)
//!                       │                                │
//!                       ▼                                ▼
//!   ┌──────────────────────────────────────────────────────────────┐
//!   │  session (replica link / master link)   handle_input / handle_timeout
//!   │      RESP decoder ─ RDB framing ─ offsets ─ backlog ─ timers  │
//!   └──────────────────────────────────────────────────────────────┘
//!          │                    │                         │
//!          ▼                    ▼                         ▼
//!   poll_transmit()        poll_event()             poll_timeout()
//!   bytes to write         commands, RDB chunks     next deadline
//! ```
//!
//! ## The drive rule
//!
//! After any `handle_*` call, drain `poll_transmit`, `poll_event` and `poll_timeout` until each
//! returns `None`, then wait for the socket or the deadline, whichever comes first. Time never goes
//! backwards: an older `now` is treated as the last one seen.
//!
//! ## Async embedding
//!
//! The same loop runs under any runtime: the session never blocks, so an async task awaits
//! whichever comes first, the socket or the session's deadline. Under tokio
//! (`examples/tokio-replica.rs` is the complete program, with reconnection):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, Instant};
//! use respsync::replica::{ReplicaConfig, ReplicaEvent, ReplicaSession};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let mut sock = tokio::net::TcpStream::connect("127.0.0.1:6379").await?;
//! let mut link = ReplicaSession::new(ReplicaConfig::default(), Instant::now())?;
//! link.connected(Instant::now())?;
//! let mut buf = vec![0u8; 64 * 1024];
//! loop {
//!     while let Some(bytes) = link.poll_transmit() {
//!         sock.write_all(&bytes).await?;
//!     }
//!     while let Some(ev) = link.poll_event() {
//!         if let ReplicaEvent::Command(cmd) = ev {
//!             println!("{} {:?}", cmd.db(), cmd.name());
//!         }
//!     }
//!     let deadline = link.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
//!     tokio::select! {
//!         n = sock.read(&mut buf) => match n? {
//!             0 => break,
//!             n => link.handle_input(Instant::now(), &buf[..n])?,
//!         },
//!         _ = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
//!     }
//! }
//! link.disconnected(Instant::now());
//! # Ok(()) }
//! ```
//!
//! ## Layers
//!
//! - [`resp`]: RESP2/RESP3 frames, a streaming decoder (commands, inline, replication-link
//!   primitives) and encoders, bounded by Redis's limits.
//! - [`ids`]: replication ids and offsets, id shifts and the PSYNC acceptance rule.
//! - [`backlog`]: the replication backlog, zero-copy `Bytes` chunks addressed by offset.
//! - [`replica`]: `ReplicaSession`, the replica side of a link to a master.
//! - [`node`]: `Node`, one server's replication state (ids, offset, the one backlog) and the
//!   master side of every replica link: handshake, partial or full resync, snapshots shared
//!   by every waiting replica (disk or diskless), zero-copy fan-out of the stream, PINGs,
//!   ACKs, timeouts and output-buffer limits.
//! - [`master`]: `MasterSession`, one replica as its master sees it.
//! - [`commands`]: which commands write, which run on a stale replica, Redis's errors for
//!   those checks, and `REPLICAOF`/`WAIT` argument parsing.
//! - [`rdb`]: RDB snapshots — streaming push parser ([`rdb::Parser`] → [`rdb::RdbEvent`], or
//!   zero-allocation through a [`rdb::Visitor`] given borrowed slices) and a
//!   [`rdb::Collector`] that gathers whole keys into [`rdb::Value`]s.
//! - [`rdb::Writer`]: streaming RDB writer (versions 9–12, header, AUX, functions, databases,
//!   expiries, CRC-64) and [`rdb::parse_dump_payload`] for `DUMP`/`RESTORE` payloads.
//! - [`rdb::encoding`]: the containers embedded in RDB values (ziplist, listpack, intset, zipmap),
//!   LZF and the CRC-64, with validating decoders and byte-exact builders; and
//!   [`rdb::encoding::object`], which encodes whole values as RDB objects the way Redis does.
//! - [`resp`]: RESP2/RESP3 frames, a streaming decoder (commands, inline, replication-link
//!   primitives), a resumable command scanner over byte slices, and encoders, bounded by
//!   Redis's limits.
//!
//! ## Errors and panics
//!
//! Nothing received from a peer or read from a file can make the crate panic, allocate without a
//! bound, or loop forever: every length is checked against a configurable limit (Redis's defaults)
//! before it is trusted, and every violation is a typed error that carries the byte offset where it
//! was found.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backlog;
pub mod commands;
pub mod ids;
pub mod master;
pub mod node;
pub mod rdb;
pub mod replica;
pub mod resp;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
