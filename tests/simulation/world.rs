//! The simulated world: nodes (a `Node`, a model store, and a `ReplicaSession` when it follows
//! a master), connections between them, one virtual clock and one random source.
//!
//! The drive loop is the crate's rule made concrete, as in `examples/server`: after every
//! `handle_*` call, drain `poll_transmit`, `poll_event` and `poll_stream`; then jump the clock
//! to the earliest deadline (`poll_timeout` of every node and session, the next delivery on a
//! link, the next scheduled fault or write) and run what is due.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use respsync::ids::{ReplId, ReplOffset, ReplicationIds};
use respsync::node::{
    Caller, CloseReason, FailoverState, Handled, LinkId, Node, NodeConfig, NodeEvent,
    OutputBufferLimit, SnapshotId, SnapshotTarget, Transmit, WaitId, WaitOutcome,
};
use respsync::rdb::ReplInfo;
use respsync::replica::{
    CachedMaster, CommandKind, LinkState, ReplicaConfig, ReplicaError, ReplicaEvent, ReplicaSession,
};
use respsync::resp::Decoder;

use crate::model::{self, Loader, Store, Val, DATABASES};
use crate::net::{Piece, Pipe};
use crate::rng::Rng;

/// Simulated wall clock at the start of a run (ms since the Unix epoch), for `PEXPIREAT`.
const EPOCH_MS: i64 = 1_700_000_000_000;
/// The address every simulated server has; ports tell them apart.
const HOST: &str = "10.0.0.1";
const BASE_PORT: u16 = 7000;
/// The client id under which the simulator sends `FAILOVER` and `WAIT`.
const ADMIN: LinkId = LinkId(u64::MAX);

/// What one seed runs with; drawn from the seed.
#[derive(Debug, Clone)]
pub struct Setup {
    pub nodes: usize,
    pub node: NodeConfig,
    pub rounds: usize,
    pub chaos: Duration,
    pub op_every_ms: u64,
    pub max_pipe: usize,
}

impl Setup {
    pub fn draw(rng: &mut Rng) -> Setup {
        // repl-timeout must exceed the PING period (Redis's own advice), here by 2x at least.
        let ping = rng.range(1, 3);
        let repl_timeout = Duration::from_secs(rng.range(2 * ping + 1, 20));
        let hard = if rng.chance(0.7) {
            rng.range(16, 96) * 1024
        } else {
            0
        };
        let soft = if rng.chance(0.4) {
            rng.range(8, 48) * 1024
        } else {
            0
        };
        let node = NodeConfig {
            backlog_size: rng.range(16, 64) * 1024,
            backlog_ttl: Duration::ZERO,
            ping_period: Duration::from_secs(ping),
            repl_timeout,
            diskless_sync: rng.chance(0.5),
            diskless_sync_delay: Duration::from_millis(rng.range(0, 3000)),
            diskless_sync_max_replicas: rng.below(3),
            output_buffer_limit: OutputBufferLimit {
                hard,
                soft,
                soft_duration: Duration::from_secs(rng.range(1, 8)),
            },
            ..NodeConfig::default()
        };
        Setup {
            nodes: rng.range(3, 6) as usize,
            node,
            rounds: rng.range(1, 3) as usize,
            chaos: Duration::from_secs(rng.range(10, 60)),
            op_every_ms: rng.range(50, 400),
            max_pipe: rng.range(2, 64) as usize * 1024,
        }
    }
}

/// Counters for the summary line (summed over seeds).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub full_syncs: u64,
    pub partial_syncs: u64,
    pub refused_syncs: u64,
    /// Full syncs whose id matched but whose offset was outside the backlog.
    pub out_of_backlog: u64,
    pub writes: u64,
    pub transactions: u64,
    pub cuts_handshake: u64,
    pub cuts_transfer: u64,
    pub cuts_stream: u64,
    pub silent_cuts: u64,
    pub stalls: u64,
    pub promotions: u64,
    pub switches: u64,
    pub failovers: u64,
    pub crash_failovers: u64,
    pub restarts: u64,
    pub waits_acked: u64,
    pub wait_checks: u64,
    pub buffer_drops: u64,
    /// Backlogs freed by `repl-backlog-ttl` (with a new replication id).
    pub ttl_drops: u64,
    pub timeouts: u64,
    pub quiet_checks: u64,
    pub virtual_ms: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        macro_rules! sum { ($($f:ident),*) => { $(self.$f += o.$f;)* } }
        sum!(
            full_syncs,
            partial_syncs,
            refused_syncs,
            out_of_backlog,
            writes,
            transactions,
            cuts_handshake,
            cuts_transfer,
            cuts_stream,
            silent_cuts,
            stalls,
            promotions,
            switches,
            failovers,
            crash_failovers,
            restarts,
            waits_acked,
            wait_checks,
            buffer_drops,
            ttl_drops,
            timeouts,
            quiet_checks,
            virtual_ms
        );
    }
}

/// The replica side of a node: its session to its master and what is being loaded.
struct Upstream {
    session: ReplicaSession,
    conn: Option<u64>,
    reconnect_at: Duration,
    loader: Option<Loader>,
    full: Option<(ReplId, ReplOffset)>,
    multi: Option<Vec<(u32, Vec<Bytes>)>>,
    /// This link is the second half of our `FAILOVER` (`PSYNC … FAILOVER`).
    failover: bool,
}

struct SnapJob {
    id: SnapshotId,
    target: SnapshotTarget,
    rdb: Bytes,
    pos: usize,
    next_at: Duration,
}

struct SimNode {
    name: String,
    port: u16,
    alive: bool,
    node: Node,
    store: Store,
    /// The simulator's own model of the node's replication ids (PSYNC2 rules).
    ids: ReplicationIds,
    /// The master it follows (`REPLICAOF`), whether or not the link is up.
    master: Option<usize>,
    up: Option<Upstream>,
    /// The database the node's stream is in at its offset (to resume a history).
    stream_db: u32,
    saved: Option<Bytes>,
    restart_at: Option<Duration>,
    /// Bumped whenever the node's data may stop extending the history it had (restart,
    /// REPLICAOF): a WAIT acknowledgement only counts for the epoch it was given in.
    epoch: u64,
    snapshot: Option<SnapJob>,
    files: BTreeMap<u64, Bytes>,
    waits: BTreeMap<WaitId, (ReplOffset, Bytes, u64)>,
    /// The last instant the simulator saw this node with a replica (or not a master, or
    /// just promoted or restarted): `repl-backlog-ttl` counts from here at the earliest.
    last_linked: Duration,
    /// Ids this node dropped as a master when `repl-backlog-ttl` freed its backlog, since it
    /// last followed a master: its replicas still holding one of them hold its data, at
    /// offsets of the same count.
    ttl_retired: Vec<ReplId>,
}

struct Monitor {
    window: Vec<u8>,
    mark: Option<[u8; 40]>,
    in_transfer: bool,
    awaiting_ack: bool,
    up_tail: Vec<u8>,
}

struct Conn {
    master: usize,
    replica: usize,
    down: Pipe,
    up: Pipe,
    master_open: bool,
    replica_open: bool,
    linked: bool,
    decoder: Decoder,
    inbuf: BytesMut,
    /// A stall or a silent cut happened on it: timeouts are explained.
    disturbed: bool,
    mon: Monitor,
}

struct WaitRecord {
    master: usize,
    master_epoch: u64,
    offset: ReplOffset,
    key: Bytes,
    acked: Vec<(usize, u64)>,
}

pub struct Sim {
    pub setup: Setup,
    rng: Rng,
    base: Instant,
    now: Duration,
    nodes: Vec<SimNode>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    next_op: Option<Duration>,
    next_wait_key: u64,
    wait_records: Vec<WaitRecord>,
    pub stats: Stats,
    trace: Option<Vec<String>>,
}

type Res<T = ()> = Result<T, String>;

fn show(argv: &[Bytes]) -> String {
    let mut s = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        if a.len() > 24 {
            let _ = write!(s, "{}…({}B)", a[..16].escape_ascii(), a.len());
        } else {
            let _ = write!(s, "{}", a.escape_ascii());
        }
    }
    s
}

impl Sim {
    /// The scenario of `seed`; with `ttl`, the same one with `repl-backlog-ttl` on (drawn
    /// from a separate generator, so that every other choice stays the seed's own).
    pub fn new(seed: u64, trace: bool, ttl: bool) -> Sim {
        let mut rng = Rng::new(seed);
        let mut setup = Setup::draw(&mut rng);
        if ttl {
            let mut side = Rng::new(seed ^ 0x7474_6c5f_7474_6c5f);
            setup.node.backlog_ttl = Duration::from_secs(side.range(1, 5));
        }
        let base = Instant::now();
        let mut sim = Sim {
            setup: setup.clone(),
            rng,
            base,
            now: Duration::ZERO,
            nodes: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            next_op: None,
            next_wait_key: 0,
            wait_records: Vec::new(),
            stats: Stats::default(),
            trace: trace.then(Vec::new),
        };
        for i in 0..setup.nodes {
            let node = Node::new(sim.node_config(), base);
            let ids = *node.ids();
            sim.nodes.push(SimNode {
                name: format!("n{i}"),
                port: BASE_PORT + i as u16,
                alive: true,
                node,
                store: Store::default(),
                ids,
                master: None,
                up: None,
                stream_db: 0,
                saved: None,
                restart_at: None,
                epoch: 0,
                snapshot: None,
                files: BTreeMap::new(),
                waits: BTreeMap::new(),
                last_linked: Duration::ZERO,
                ttl_retired: Vec::new(),
            });
        }
        // n0 is the master, n1..n(k-1) its replicas, the last one a sub-replica of n1.
        let last = setup.nodes - 1;
        for i in 1..setup.nodes {
            let m = if i == last && last >= 3 { 1 } else { 0 };
            sim.follow(i, m).expect("a fresh node follows");
        }
        sim
    }

    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    fn log(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let ms = self.now.as_millis();
            t.push(format!("{:>4}.{:03}s {}", ms / 1000, ms % 1000, f()));
        }
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn wall_ms(&self) -> i64 {
        EPOCH_MS + self.now.as_millis() as i64
    }

    fn node_config(&mut self) -> NodeConfig {
        NodeConfig {
            id_seed: self.rng.next_u64(),
            ..self.setup.node.clone()
        }
    }

    fn replica_config(&mut self, i: usize) -> ReplicaConfig {
        let t = self.setup.node.repl_timeout;
        ReplicaConfig {
            listening_port: self.nodes[i].port,
            announce_ip: None,
            repl_timeout: t,
            handshake_timeout: t,
            stream_handoff: true,
            databases: DATABASES,
            id_seed: self.rng.next_u64(),
            ..ReplicaConfig::default()
        }
    }

    fn by_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }

    // ------------------------------------------------------------------ the run

    /// Runs the whole scenario: rounds of chaos, each followed by healing and the checks.
    pub fn run(&mut self) -> Res<Stats> {
        for round in 0..self.setup.rounds {
            self.log(|| format!("=== round {round}: chaos"));
            let end = self.now + self.setup.chaos;
            self.next_op = Some(self.now + Duration::from_millis(1));
            self.run_until(end, |_| false)?;
            self.next_op = None;
            self.log(|| format!("=== round {round}: heal"));
            self.heal();
            let deadline = self.now + Duration::from_secs(600);
            if !self.run_until(deadline, Sim::quiet)? {
                return Err(format!("did not heal within 600 s:\n{}", self.describe()));
            }
            self.check_quiet()?;
        }
        self.stats.virtual_ms = self.now.as_millis() as u64;
        Ok(self.stats)
    }

    /// Steps until `end` or until `stop` holds (checked at every step): true if it held.
    fn run_until(&mut self, end: Duration, stop: impl Fn(&Sim) -> bool) -> Res<bool> {
        let mut steps = 0u64;
        loop {
            self.pump()?;
            if stop(self) {
                return Ok(true);
            }
            let Some(next) = self.next_deadline() else {
                return Ok(false);
            };
            if next > end {
                self.now = end;
                return Ok(false);
            }
            self.now = self.now.max(next);
            self.fire()?;
            steps += 1;
            if steps > 5_000_000 {
                return Err("livelock: too many steps".into());
            }
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        let mut best: Option<Duration> = None;
        let mut put = |t: Option<Duration>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        put(self.next_op);
        for c in self.conns.values() {
            put(c.down.next_at());
            put(c.up.next_at());
        }
        for n in &self.nodes {
            if !n.alive {
                put(n.restart_at);
                continue;
            }
            put(n
                .node
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.base)));
            if let Some(j) = &n.snapshot {
                put(Some(j.next_at));
            }
            if let Some(u) = &n.up {
                put(u
                    .session
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(self.base)));
                if u.conn.is_none() {
                    put(Some(u.reconnect_at));
                }
            }
        }
        best
    }

    /// Runs everything due now, draining after each input.
    fn fire(&mut self) -> Res {
        let now = self.now;
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for cid in ids {
            while let Some(p) = self.conns.get_mut(&cid).and_then(|c| c.down.pop_due(now)) {
                self.deliver_down(cid, p)?;
                self.pump()?;
            }
            while let Some(p) = self.conns.get_mut(&cid).and_then(|c| c.up.pop_due(now)) {
                self.deliver_up(cid, p)?;
                self.pump()?;
            }
        }
        let at = self.at();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                if self.nodes[i].restart_at.is_some_and(|t| t <= now) {
                    self.restart(i)?;
                }
                continue;
            }
            self.note_replicas(i);
            if self.nodes[i].node.poll_timeout().is_some_and(|t| t <= at) {
                let had_backlog = self.nodes[i].node.backlog().is_some();
                self.nodes[i].node.handle_timeout(at);
                if had_backlog && self.nodes[i].node.backlog().is_none() {
                    self.backlog_expired(i)?;
                }
            }
            self.check_backlog_ttl(i)?;
            let mut reconnect = false;
            if let Some(u) = &mut self.nodes[i].up {
                if u.session.poll_timeout().is_some_and(|t| t <= at) {
                    u.session.handle_timeout(at);
                }
                reconnect = u.conn.is_none() && u.reconnect_at <= now;
            }
            if reconnect {
                self.connect(i);
            }
            if self.nodes[i]
                .snapshot
                .as_ref()
                .is_some_and(|j| j.next_at <= now)
            {
                self.snapshot_step(i)?;
            }
        }
        if self.next_op.is_some_and(|t| t <= now) {
            self.chaos_op()?;
            let gap = self.rng.range(1, 2 * self.setup.op_every_ms);
            self.next_op = Some(now + Duration::from_millis(gap));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ draining

    fn pump(&mut self) -> Res {
        for _ in 0..10_000 {
            let mut progress = false;
            for i in 0..self.nodes.len() {
                if self.nodes[i].alive {
                    progress |= self.node_events(i)?;
                    progress |= self.session_io(i)?;
                }
            }
            let ids: Vec<u64> = self.conns.keys().copied().collect();
            for cid in ids {
                progress |= self.master_output(cid)?;
            }
            if !progress {
                return self.check_always();
            }
        }
        Err("pump did not settle".into())
    }

    fn node_events(&mut self, i: usize) -> Res<bool> {
        let mut any = false;
        while let Some(ev) = self.nodes[i].node.poll_event() {
            any = true;
            let name = self.nodes[i].name.clone();
            self.log(|| format!("{name} event {ev:?}"));
            match ev {
                NodeEvent::SnapshotRequested {
                    snapshot, target, ..
                } => self.start_snapshot(i, snapshot, target)?,
                NodeEvent::SnapshotAbandoned { snapshot } => {
                    if self.nodes[i]
                        .snapshot
                        .as_ref()
                        .is_some_and(|j| j.id == snapshot)
                    {
                        self.nodes[i].snapshot = None;
                    }
                }
                NodeEvent::Close { link, reason } => {
                    match &reason {
                        CloseReason::Timeout => {
                            self.stats.timeouts += 1;
                            let explained = self.conns.get(&link.0).is_none_or(|c| c.disturbed)
                                || self.nodes[i].node.is_replica();
                            if !explained {
                                return Err(format!(
                                    "{name} timed out {link} though nothing delayed it"
                                ));
                            }
                        }
                        CloseReason::OutputBufferHard { .. }
                        | CloseReason::OutputBufferSoft { .. } => self.stats.buffer_drops += 1,
                        CloseReason::HistoryChanged => {}
                        // REPLICAOF while a snapshot was being sent: that transfer is over.
                        CloseReason::SnapshotFailed if self.nodes[i].node.is_replica() => {}
                        other => return Err(format!("{name} closed {link}: {other:?}")),
                    }
                    if reason.flush_first() {
                        self.master_output(link.0)?;
                    }
                    self.close_master_side(link.0);
                    let at = self.at();
                    self.nodes[i].node.handle_disconnect(at, link);
                }
                NodeEvent::WaitDone { wait, replicas } => {
                    if let Some((offset, key, epoch)) = self.nodes[i].waits.remove(&wait) {
                        if epoch != self.nodes[i].epoch {
                            return Err(format!(
                                "{name} answered a WAIT from before it changed history"
                            ));
                        }
                        self.wait_answered(i, offset, key, replicas);
                    }
                }
                NodeEvent::WaitUnblocked { wait } => {
                    // The client gets -UNBLOCKED: nothing was acknowledged.
                    self.nodes[i].waits.remove(&wait);
                }
                NodeEvent::FailoverDemote { host, port } => {
                    let Some(t) = self.by_port(port).filter(|_| host == HOST) else {
                        return Err(format!("FAILOVER demoted towards unknown {host}:{port}"));
                    };
                    // The node already follows; connect to the target with PSYNC FAILOVER.
                    self.drop_upstream(i);
                    self.nodes[i].master = Some(t);
                    self.nodes[i].epoch += 1;
                    self.new_upstream(i, true);
                }
                NodeEvent::PromotedByFailover => {
                    self.drop_upstream(i);
                    self.nodes[i].master = None;
                    self.model_promote(i)?;
                }
                NodeEvent::FailoverAborted { reason } => {
                    if self.nodes[i].up.is_some() {
                        // It had followed the target: the node promoted itself back.
                        self.drop_upstream(i);
                        self.nodes[i].master = None;
                        self.model_promote(i)?;
                    }
                    self.log(|| format!("{name} failover aborted: {reason}"));
                }
                other => return Err(format!("{name}: unexpected node event {other:?}")),
            }
        }
        Ok(any)
    }

    /// Bytes the node has for a replica link go into the link while the socket has room.
    fn master_output(&mut self, cid: u64) -> Res<bool> {
        let Some(c) = self.conns.get(&cid) else {
            return Ok(false);
        };
        let (m, cap) = (c.master, self.setup.max_pipe);
        if !c.master_open || !c.linked || !self.nodes[m].alive {
            return Ok(false);
        }
        let mut any = false;
        loop {
            let c = self.conns.get_mut(&cid).expect("checked");
            if c.down.inflight >= cap {
                break;
            }
            let Some(t) = self.nodes[m].node.poll_transmit(LinkId(cid)) else {
                break;
            };
            any = true;
            let data = match t {
                Transmit::Bytes(b) => b,
                Transmit::File { snapshot, len } => {
                    let Some(f) = self.nodes[m].files.get(&snapshot.0).cloned() else {
                        return Err(format!("no file for {snapshot:?}"));
                    };
                    if f.len() as u64 != len {
                        return Err(format!("file length {} announced as {len}", f.len()));
                    }
                    let at = self.at();
                    self.nodes[m].node.handle_file_sent(at, LinkId(cid));
                    f
                }
            };
            self.monitor_down(cid, &data)?;
            let len = data.len();
            self.log(|| format!("conn {cid} master sends {len} bytes"));
            let c = self.conns.get_mut(&cid).expect("checked");
            c.down.send(self.now, data, &mut self.rng);
        }
        Ok(any)
    }

    /// Protocol monitor: after a diskless snapshot's closing mark, nothing may follow until the
    /// replica's first `REPLCONF ACK` reached the master (Redis 7, protocol.md §3.1).
    fn monitor_down(&mut self, cid: u64, data: &[u8]) -> Res {
        let c = self.conns.get_mut(&cid).expect("conn");
        let mon = &mut c.mon;
        if mon.awaiting_ack {
            return Err(format!(
                "conn {cid}: {} bytes of stream sent after the $EOF mark before the first ACK: {:?}",
                data.len(),
                String::from_utf8_lossy(&data[..data.len().min(80)])
            ));
        }
        mon.window.extend_from_slice(data);
        if !mon.in_transfer {
            if let Some(p) = mon.window.windows(5).position(|w| w == b"$EOF:") {
                if mon.window.len() >= p + 5 + 40 + 2 {
                    let mut mark = [0u8; 40];
                    mark.copy_from_slice(&mon.window[p + 5..p + 45]);
                    mon.mark = Some(mark);
                    mon.in_transfer = true;
                    mon.window.drain(..p + 47);
                }
            }
        }
        if mon.in_transfer {
            if let Some(mark) = mon.mark {
                if mon.window.ends_with(&mark) {
                    mon.in_transfer = false;
                    mon.awaiting_ack = true;
                    mon.window.clear();
                }
            }
        }
        let keep = 128;
        if mon.window.len() > keep {
            let cut = mon.window.len() - keep;
            mon.window.drain(..cut);
        }
        Ok(())
    }

    fn session_io(&mut self, i: usize) -> Res<bool> {
        let mut any = false;
        loop {
            let Some(u) = &mut self.nodes[i].up else {
                return Ok(any);
            };
            let out = u.session.poll_transmit();
            let conn = u.conn;
            if let Some(b) = out {
                any = true;
                if let Some(c) = conn.and_then(|cid| self.conns.get_mut(&cid)) {
                    if c.replica_open {
                        c.up.send(self.now, b, &mut self.rng);
                    }
                }
                continue;
            }
            let Some(ev) = u.session.poll_event() else {
                break;
            };
            any = true;
            self.session_event(i, ev)?;
        }
        let Some(u) = &mut self.nodes[i].up else {
            return Ok(any);
        };
        let mut stream = Vec::new();
        while let Some(b) = u.session.poll_stream() {
            stream.push(b);
        }
        let connected = u.session.state() == LinkState::Connected;
        let db = u.session.db().filter(|_| connected);
        if let Some(db) = db {
            self.nodes[i].stream_db = db;
        }
        for b in stream {
            any = true;
            self.nodes[i].node.handle_upstream_stream(b);
        }
        if let Some(db) = db {
            self.nodes[i].node.set_upstream_db(db);
        }
        // Only while the node follows: a FAILOVER aborted by its target has just promoted it
        // back (its session is dropped when the node's event is handled).
        if self.nodes[i].node.is_replica() {
            self.nodes[i].node.set_upstream(true, connected);
        }
        Ok(any)
    }

    fn session_event(&mut self, i: usize, ev: ReplicaEvent) -> Res {
        let name = self.nodes[i].name.clone();
        if !matches!(ev, ReplicaEvent::Command(_) | ReplicaEvent::RdbChunk { .. }) {
            self.log(|| format!("{name} replica event {ev:?}"));
        }
        match ev {
            ReplicaEvent::FullResync { replid, offset } => {
                let u = self.nodes[i].up.as_mut().expect("session");
                u.full = Some((replid, offset));
                self.failover_result(i, true);
                return Ok(());
            }
            ReplicaEvent::Continue { replid, .. } => {
                let n = &mut self.nodes[i];
                n.node.handle_upstream_continue(replid);
                if replid != n.ids.id {
                    let off = n.node.offset();
                    n.ids.shift(replid, off);
                }
                self.failover_result(i, true);
                return Ok(());
            }
            ReplicaEvent::LinkLost(e) => {
                let explained = match &e {
                    ReplicaError::Timeout(_) => {
                        self.stats.timeouts += 1;
                        let m = self.nodes[i].master;
                        let conn = self.nodes[i].up.as_ref().and_then(|u| u.conn);
                        let c = conn.and_then(|c| self.conns.get(&c));
                        c.is_none_or(|c| c.disturbed)
                            || m.is_some_and(|m| self.nodes[m].node.is_replica())
                    }
                    ReplicaError::TryLater { .. } => true,
                    ReplicaError::FailoverRefused { .. } => {
                        self.failover_result(i, false);
                        true
                    }
                    _ => false,
                };
                if !explained {
                    return Err(format!("{name} lost its link: {e}"));
                }
                self.close_replica_side(i);
                return Ok(());
            }
            _ => {}
        }
        let n = &mut self.nodes[i];
        let u = n.up.as_mut().expect("session");
        match ev {
            ReplicaEvent::Command(cmd) => {
                if !matches!(
                    cmd.kind(),
                    CommandKind::Other | CommandKind::Multi | CommandKind::Exec
                ) {
                    return Ok(());
                }
                let argv: Vec<Bytes> = cmd.args_bytes().collect();
                match cmd.kind() {
                    CommandKind::Multi => u.multi = Some(Vec::new()),
                    CommandKind::Exec => {
                        for (db, argv) in u.multi.take().unwrap_or_default() {
                            n.store
                                .apply(db, &argv)
                                .map_err(|e| format!("{name} cannot apply {}: {e}", show(&argv)))?;
                        }
                    }
                    _ => match &mut u.multi {
                        Some(q) => q.push((cmd.db(), argv)),
                        None => n.store.apply(cmd.db(), &argv).map_err(|e| {
                            format!(
                                "{name} cannot apply {} at {}: {e}",
                                show(&argv),
                                cmd.offset()
                            )
                        })?,
                    },
                }
            }
            ReplicaEvent::RdbBegin { .. } => u.loader = Some(Loader::new()),
            ReplicaEvent::RdbChunk { data, .. } => {
                if let Some(l) = &mut u.loader {
                    l.push(data)
                        .map_err(|e| format!("{name} cannot parse its snapshot: {e}"))?;
                }
            }
            ReplicaEvent::RdbEnd { stream_db, .. } => {
                let loader = u.loader.take().ok_or("RdbEnd without RdbBegin")?;
                let (store, _) = loader
                    .finish()
                    .map_err(|e| format!("{name} cannot load its snapshot: {e}"))?;
                u.multi = None;
                let (replid, offset) = u.full.take().ok_or("RdbEnd without FullResync")?;
                n.store = store;
                n.stream_db = stream_db;
                n.node.handle_upstream_full_sync(replid, offset, stream_db);
                n.ids = ReplicationIds::new(replid);
            }
            ReplicaEvent::TransactionDiscarded => u.multi = None,
            ReplicaEvent::Failed(e) => return Err(format!("{name} replication failed: {e}")),
            other => return Err(format!("{name}: unexpected replica event {other:?}")),
        }
        Ok(())
    }

    /// Keeps `last_linked` current: a node that is not a master, or has a replica link, has
    /// no backlog TTL running.
    fn note_replicas(&mut self, i: usize) {
        let linked = self
            .conns
            .values()
            .any(|c| c.master == i && c.linked && c.master_open);
        let n = &mut self.nodes[i];
        if linked || n.node.is_replica() {
            n.last_linked = self.now;
        }
    }

    /// Node `i` freed its backlog in its cron: `repl-backlog-ttl` must allow it (a master,
    /// without replicas for at least the TTL), and its history must end: a new replication id
    /// and no second one, which the PSYNC2 model adopts.
    fn backlog_expired(&mut self, i: usize) -> Res {
        let ttl = self.setup.node.backlog_ttl;
        let n = &mut self.nodes[i];
        let idle = self.now.saturating_sub(n.last_linked);
        if ttl.is_zero() || n.node.is_replica() || idle <= ttl {
            return Err(format!(
                "{} freed its backlog after {idle:?} without replicas (TTL {ttl:?}, replica: {})",
                n.name,
                n.node.is_replica()
            ));
        }
        let fresh = *n.node.ids();
        if fresh.id == n.ids.id || fresh.id2 != ReplId::ZERO {
            return Err(format!(
                "{}: backlog freed by its TTL, but ids {fresh:?} (were {:?})",
                n.name, n.ids
            ));
        }
        n.ttl_retired.push(n.ids.id);
        n.ids = fresh;
        self.stats.ttl_drops += 1;
        let name = n.name.clone();
        self.log(|| format!("{name}: backlog freed by repl-backlog-ttl after {idle:?}"));
        Ok(())
    }

    /// A master without replicas for well over the TTL must have freed its backlog (the cron
    /// runs every second).
    fn check_backlog_ttl(&self, i: usize) -> Res {
        let ttl = self.setup.node.backlog_ttl;
        let n = &self.nodes[i];
        if ttl.is_zero() || n.node.is_replica() || n.node.backlog().is_none() {
            return Ok(());
        }
        let idle = self.now.saturating_sub(n.last_linked);
        // The node notices at its next cron tick (≤ 1 s) and frees at the first tick past the
        // TTL (≤ 1 s more).
        if idle > ttl + Duration::from_secs(3) {
            return Err(format!(
                "{} kept its backlog {idle:?} without replicas (TTL {ttl:?})",
                n.name
            ));
        }
        Ok(())
    }

    fn failover_result(&mut self, i: usize, ok: bool) {
        let Some(u) = &mut self.nodes[i].up else {
            return;
        };
        if std::mem::take(&mut u.failover) {
            let at = self.at();
            self.nodes[i].node.handle_failover_result(at, ok);
            self.nodes[i].last_linked = self.now;
        }
    }

    // ------------------------------------------------------------------ connections

    fn new_upstream(&mut self, i: usize, failover: bool) {
        let config = self.replica_config(i);
        let mut session = ReplicaSession::new(config, self.at()).expect("valid config");
        let n = &self.nodes[i];
        // Resume our own history (PSYNC2): whenever there is one, offset 0 included (a
        // FAILOVER of a master that has not written yet must still send PSYNC … FAILOVER).
        if n.node.offset().value() > 0 || n.node.backlog().is_some() {
            session.set_cached_master(CachedMaster {
                replid: n.node.ids().id,
                offset: n.node.offset(),
                db: n.stream_db,
            });
        }
        session.set_psync_failover(failover);
        let reconnect_at = self.now;
        self.nodes[i].up = Some(Upstream {
            session,
            conn: None,
            reconnect_at,
            loader: None,
            full: None,
            multi: None,
            failover,
        });
    }

    /// `REPLICAOF <m>`.
    fn follow(&mut self, i: usize, m: usize) -> Res {
        self.drop_upstream(i);
        self.nodes[i].node.follow();
        self.nodes[i].ttl_retired.clear();
        // What `follow` ends (blocked WAITs, a snapshot) belongs to the history it leaves.
        self.node_events(i)?;
        self.nodes[i].master = Some(m);
        self.nodes[i].epoch += 1;
        self.new_upstream(i, false);
        Ok(())
    }

    fn connect(&mut self, i: usize) {
        let m = self.nodes[i].master.expect("follows someone");
        if !self.nodes[m].alive {
            let u = self.nodes[i].up.as_mut().expect("session");
            u.reconnect_at = self.now + Duration::from_millis(500);
            return;
        }
        let cid = self.next_conn;
        self.next_conn += 1;
        let lat = Duration::from_micros(self.rng.range(50, 20_000));
        let conn = Conn {
            master: m,
            replica: i,
            down: Pipe::new(lat),
            up: Pipe::new(lat),
            master_open: true,
            replica_open: true,
            linked: false,
            decoder: Decoder::default(),
            inbuf: BytesMut::new(),
            disturbed: false,
            mon: Monitor {
                window: Vec::new(),
                mark: None,
                in_transfer: false,
                awaiting_ack: false,
                up_tail: Vec::new(),
            },
        };
        self.conns.insert(cid, conn);
        let at = self.at();
        let u = self.nodes[i].up.as_mut().expect("session");
        u.conn = Some(cid);
        u.session.connected(at).expect("idle session");
        let (a, b) = (self.nodes[i].name.clone(), self.nodes[m].name.clone());
        self.log(|| format!("conn {cid}: {a} connects to {b}"));
    }

    /// The replica side closes (link lost, REPLICAOF change): the master reads EOF later.
    fn close_replica_side(&mut self, i: usize) {
        let Some(cid) = self.link_down(i) else { return };
        self.half_close(cid, true);
    }

    /// The replica's session learns its connection is gone (and reconnects after a backoff);
    /// returns the connection it had.
    fn link_down(&mut self, i: usize) -> Option<u64> {
        let (at, now) = (self.at(), self.now);
        let u = self.nodes[i].up.as_mut()?;
        u.session.disconnected(at);
        u.loader = None;
        u.full = None;
        u.reconnect_at = now + Duration::from_millis(self.rng.range(50, 1000));
        u.conn.take()
    }

    /// [`Sim::link_down`] if the session's connection is `cid`.
    fn link_down_if(&mut self, i: usize, cid: u64) {
        if self.nodes[i]
            .up
            .as_ref()
            .is_some_and(|u| u.conn == Some(cid))
        {
            self.link_down(i);
        }
    }

    /// The master side closes: the replica reads what is in flight, then EOF.
    fn close_master_side(&mut self, cid: u64) {
        self.half_close(cid, false);
    }

    /// One side of `cid` closes: what it had not read is dropped, the other side reads EOF
    /// after what is in flight.
    fn half_close(&mut self, cid: u64, replica_side: bool) {
        if let Some(c) = self.conns.get_mut(&cid) {
            let other_open = if replica_side {
                c.replica_open = false;
                c.master_open
            } else {
                c.master_open = false;
                c.replica_open
            };
            let (unread, outgoing) = if replica_side {
                (&mut c.down, &mut c.up)
            } else {
                (&mut c.up, &mut c.down)
            };
            unread.clear();
            if other_open {
                outgoing.fin(self.now, &mut self.rng);
            }
        }
        self.gc(cid);
    }

    fn gc(&mut self, cid: u64) {
        if self
            .conns
            .get(&cid)
            .is_some_and(|c| !c.master_open && !c.replica_open)
        {
            self.conns.remove(&cid);
        }
    }

    fn drop_upstream(&mut self, i: usize) {
        self.close_replica_side(i);
        self.nodes[i].up = None;
    }

    /// A reset: both sides learn at once, everything in flight is lost.
    fn reset(&mut self, cid: u64) {
        let Some(c) = self.conns.remove(&cid) else {
            return;
        };
        let at = self.at();
        if c.master_open && self.nodes[c.master].alive {
            self.nodes[c.master].node.handle_disconnect(at, LinkId(cid));
        }
        if c.replica_open {
            self.link_down_if(c.replica, cid);
        }
    }

    fn deliver_down(&mut self, cid: u64, p: Piece) -> Res {
        let c = &self.conns[&cid];
        let i = c.replica;
        if !c.replica_open {
            return Ok(());
        }
        match p {
            Piece::Data(d) => {
                let len = d.len();
                self.log(|| format!("conn {cid} replica reads {len} bytes"));
                let at = self.at();
                let u = self.nodes[i].up.as_mut().expect("open conn has a session");
                // Errors come back as LinkLost/Failed events.
                let _ = u.session.handle_input(at, &d);
            }
            Piece::Fin => {
                self.close_replica_side(i);
            }
        }
        Ok(())
    }

    fn deliver_up(&mut self, cid: u64, p: Piece) -> Res {
        let at = self.at();
        let c = self.conns.get_mut(&cid).expect("conn");
        let m = c.master;
        if !c.master_open {
            return Ok(());
        }
        let data = match p {
            Piece::Fin => {
                c.master_open = false;
                self.nodes[m].node.handle_disconnect(at, LinkId(cid));
                self.gc(cid);
                return Ok(());
            }
            Piece::Data(d) => d,
        };
        if c.linked {
            // Reads split anywhere: look for the ACK across the previous read's tail.
            c.mon.up_tail.extend_from_slice(&data);
            if c.mon
                .up_tail
                .windows(3)
                .any(|w| w.eq_ignore_ascii_case(b"ACK"))
            {
                c.mon.awaiting_ack = false;
            }
            let cut = c.mon.up_tail.len().saturating_sub(2);
            c.mon.up_tail.drain(..cut);
            self.nodes[m].node.handle_input(at, LinkId(cid), &data);
            return Ok(());
        }
        c.inbuf.extend_from_slice(&data);
        loop {
            let c = self.conns.get_mut(&cid).expect("conn");
            if c.linked {
                let rest = c.inbuf.split();
                if !rest.is_empty() {
                    self.nodes[m].node.handle_input(at, LinkId(cid), &rest);
                }
                return Ok(());
            }
            let cmd = c
                .decoder
                .decode_request(&mut c.inbuf)
                .map_err(|e| format!("conn {cid}: replica sent garbage: {e}"))?;
            let Some(cmd) = cmd else { return Ok(()) };
            if cmd.argv.is_empty() {
                continue;
            }
            let reply = self.dispatch(m, cid, &cmd.argv)?;
            if let Some(r) = reply {
                let c = self.conns.get_mut(&cid).expect("conn");
                c.down.send(self.now, r, &mut self.rng);
            }
        }
    }

    /// The master's command dispatcher for a connection that is not a replica link yet.
    fn dispatch(&mut self, m: usize, cid: u64, argv: &[Bytes]) -> Res<Option<Bytes>> {
        let name = argv[0].to_ascii_uppercase();
        if name == b"PING" {
            return Ok(Some(Bytes::from_static(b"+PONG\r\n")));
        }
        let psync = name == b"PSYNC";
        let expect = if psync {
            Some(self.expect_psync(m, argv))
        } else {
            None
        };
        let at = self.at();
        let caller = Caller {
            peer_ip: Some(HOST.into()),
            ..Caller::default()
        };
        let n = &mut self.nodes[m];
        let before = *n.node.stats();
        let first_history = n.node.backlog().is_none();
        let handled = n.node.handle_command(at, LinkId(cid), &caller, argv);
        let after = *n.node.stats();
        let mname = n.name.clone();
        let shown = show(argv);
        match handled {
            Handled::Reply(r) => {
                if psync {
                    self.stats.refused_syncs += 1;
                    let allowed = expect == Some(Expect::Refused);
                    if !allowed {
                        return Err(format!(
                            "{mname} refused `{shown}` with {:?}, expected {expect:?}",
                            String::from_utf8_lossy(&r)
                        ));
                    }
                }
                Ok(Some(r))
            }
            Handled::NoReply => Ok(None),
            Handled::NotMine => Ok(Some(Bytes::from_static(b"-ERR unknown command\r\n"))),
            Handled::ReplicaLink => {
                let c = self.conns.get_mut(&cid).expect("conn");
                c.linked = true;
                // A replica, however briefly: the backlog TTL restarts.
                self.nodes[m].last_linked = self.now;
                let partial = after.sync_partial_ok > before.sync_partial_ok;
                let full = after.sync_full > before.sync_full;
                let got = if partial {
                    self.stats.partial_syncs += 1;
                    Expect::Partial
                } else {
                    self.stats.full_syncs += 1;
                    Expect::Full
                };
                self.log(|| format!("{mname} answers `{shown}`: {got:?} (expected {expect:?})"));
                if partial == full || expect != Some(got) {
                    return Err(format!(
                        "{mname} answered `{shown}` with {got:?}, PSYNC2 rules say {expect:?} \
                         (ids {:?}, offset {}, backlog {:?})",
                        self.nodes[m].ids,
                        self.nodes[m].node.offset(),
                        self.nodes[m].node.backlog().map(|b| (b.first(), b.end()))
                    ));
                }
                if full && first_history {
                    // The first replica ever: a new history starts.
                    let id = self.nodes[m].node.ids().id;
                    self.nodes[m].ids = ReplicationIds::new(id);
                }
                Ok(None)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// What the PSYNC2 rules say `PSYNC <id> <offset>` gets from node `m`, computed from the
    /// simulator's own model of its ids and the bytes its backlog holds.
    fn expect_psync(&mut self, m: usize, argv: &[Bytes]) -> Expect {
        let n = &mut self.nodes[m];
        n.node.links_with_output(); // moves pending writes into the backlog
        let failover = argv.len() > 3 && argv[3].eq_ignore_ascii_case(b"FAILOVER");
        let mut ids = n.ids;
        let offset = n.node.offset();
        if failover {
            if !n.node.is_replica() || !ids.id.matches(&argv[1]) {
                return Expect::Refused;
            }
            // It promotes itself first.
            ids.id2 = ids.id;
            ids.second_offset = offset.next();
        } else if n.node.is_replica() && !n.node.writes_paused() {
            let up =
                n.up.as_ref()
                    .is_some_and(|u| u.session.state() == LinkState::Connected);
            if !up {
                return Expect::Refused;
            }
        }
        if n.node.writes_paused() && !failover {
            return Expect::Refused;
        }
        let Some(req) = argv.get(2).and_then(|o| ReplOffset::parse(o)) else {
            return Expect::Full;
        };
        let id = &argv[1][..];
        let same = ids.id.matches(id);
        let older = ids.id2 != ReplId::ZERO && ids.id2.matches(id) && req <= ids.second_offset;
        let first = match n.node.backlog() {
            Some(b) => b.first(),
            // A promotion creates the backlog at the current offset.
            None if failover => offset.next(),
            None => return Expect::Full,
        };
        let held = req >= first && req <= offset.next();
        if (same || older) && !held {
            self.stats.out_of_backlog += 1;
        }
        if (same || older) && held {
            Expect::Partial
        } else {
            Expect::Full
        }
    }

    // ------------------------------------------------------------------ snapshots

    fn start_snapshot(&mut self, i: usize, id: SnapshotId, target: SnapshotTarget) -> Res {
        let at = self.at();
        let n = &mut self.nodes[i];
        let start = match n.node.handle_snapshot_started(at, id) {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        let rdb = n.store.to_rdb(Some(ReplInfo {
            stream_db: u64::from(start.stream_db),
            id: Bytes::copy_from_slice(start.replid.as_bytes()),
            offset: start.offset.value(),
        }));
        let delay = Duration::from_millis(self.rng.range(0, 1500));
        self.nodes[i].snapshot = Some(SnapJob {
            id,
            target,
            rdb,
            pos: 0,
            next_at: self.now + delay,
        });
        Ok(())
    }

    fn snapshot_step(&mut self, i: usize) -> Res {
        let at = self.at();
        let now = self.now;
        let step = Duration::from_millis(self.rng.range(1, 200));
        let size = self.rng.range(1, 8192) as usize;
        let n = &mut self.nodes[i];
        let j = n.snapshot.as_mut().expect("job");
        match j.target {
            SnapshotTarget::Disk => {
                let (id, rdb) = (j.id, j.rdb.clone());
                n.snapshot = None;
                n.files.insert(id.0, rdb.clone());
                if n.files.len() > 2 {
                    let first = *n.files.keys().next().expect("non-empty");
                    n.files.remove(&first);
                }
                let _ = n.node.handle_snapshot_file(at, id, rdb.len() as u64);
            }
            _ => {
                if n.node.snapshot_buffered(j.id) > 64 * 1024 {
                    j.next_at = now + step;
                    return Ok(());
                }
                let end = (j.pos + size).min(j.rdb.len());
                let chunk = j.rdb.slice(j.pos..end);
                j.pos = end;
                let id = j.id;
                let done = j.pos == j.rdb.len();
                j.next_at = now + step;
                if n.node.handle_snapshot_chunk(at, id, chunk).is_err() {
                    n.snapshot = None;
                    return Ok(());
                }
                if done {
                    n.snapshot = None;
                    n.node
                        .handle_snapshot_end(at, id)
                        .map_err(|e| format!("snapshot end: {e}"))?;
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ ids model

    /// After `REPLICAOF NO ONE` (or a promotion by FAILOVER): the old id becomes `replid2`,
    /// valid up to the current offset, under a fresh id.
    fn model_promote(&mut self, i: usize) -> Res {
        let n = &mut self.nodes[i];
        let fresh = n.node.ids().id;
        if fresh == n.ids.id {
            return Err(format!("{} kept its replication id on promotion", n.name));
        }
        let off = n.node.offset();
        n.ids.shift(fresh, off);
        n.epoch += 1;
        self.stats.promotions += 1;
        Ok(())
    }

    /// Checked after every drain.
    fn check_always(&mut self) -> Res {
        // A streaming replica level with its master holds the same data.
        for n in &self.nodes {
            let (Some(m), Some(u)) = (n.master, &n.up) else {
                continue;
            };
            let master = &self.nodes[m];
            // Only while the master still serves this link (a master that loads a full sync
            // may rewind its history and closes its replicas, who learn it a bit later).
            let served = u
                .conn
                .is_some_and(|c| master.alive && master.node.replica(LinkId(c)).is_some());
            if !served {
                continue;
            }
            // ... and is never ahead of it on the same history.
            if n.alive
                && master.alive
                && u.session.state() == LinkState::Connected
                && n.node.ids().id == master.node.ids().id
                && n.node.offset() > master.node.offset()
            {
                return Err(format!(
                    "{} streams from {} but is ahead of it: offset {} > {}",
                    n.name,
                    master.name,
                    n.node.offset(),
                    master.node.offset()
                ));
            }
            if !n.alive
                || !master.alive
                || u.session.state() != LinkState::Connected
                || u.multi.is_some()
                || n.node.offset() != master.node.offset()
                || n.node.ids().id != master.node.ids().id
                || master.node.is_replica() && master.up.as_ref().is_some_and(|u| u.multi.is_some())
            {
                continue;
            }
            if n.store != master.store {
                return Err(format!(
                    "{} is level with its master {} at offset {} but holds other data:\n{}",
                    n.name,
                    master.name,
                    n.node.offset(),
                    diff(&n.store, &master.store)
                ));
            }
        }
        let hard_cfg = self.setup.node.output_buffer_limit.hard;
        for n in &mut self.nodes {
            if !n.alive {
                continue;
            }
            if *n.node.ids() != n.ids {
                return Err(format!(
                    "{}: replication ids {:?}, the PSYNC2 rules give {:?}",
                    n.name,
                    n.node.ids(),
                    n.ids
                ));
            }
            if hard_cfg == 0 {
                continue;
            }
            n.node.links_with_output(); // flushes, and so applies the limits
            let hard = hard_cfg.max(n.node.config().backlog_size);
            let end = n.node.offset();
            for r in n.node.replicas() {
                use respsync::master::ReplicaState as S;
                if !matches!(
                    r.state(),
                    S::WaitBgsaveEnd | S::SendBulk | S::WaitFirstAck | S::Online
                ) {
                    continue;
                }
                let unsent = (end.value() - r.stream_position().value() + 1).max(0) as u64;
                if unsent > hard {
                    return Err(format!(
                        "{} holds {unsent} unsent bytes for {}, over the limit {hard}",
                        n.name,
                        r.link()
                    ));
                }
            }
            if let Some(b) = n.node.backlog() {
                let max = hard.max(b.size()) + 64 * 1024;
                if b.histlen() > max {
                    return Err(format!(
                        "{}: backlog holds {} bytes (size {}, hard limit {hard})",
                        n.name,
                        b.histlen(),
                        b.size()
                    ));
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ healing and checks

    fn heal(&mut self) {
        for c in self.conns.values_mut() {
            c.down.stalled_until = Duration::ZERO;
            c.up.stalled_until = Duration::ZERO;
        }
        for n in &mut self.nodes {
            if !n.alive {
                n.restart_at = Some(Duration::ZERO);
            }
        }
    }

    fn quiet(&self) -> bool {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive
                || n.snapshot.is_some()
                || n.node.failover_state() != FailoverState::NoFailover
            {
                return false;
            }
            let Some(m) = n.master else { continue };
            let Some(u) = &n.up else { return false };
            if u.session.state() != LinkState::Connected {
                return false;
            }
            let mo = self.nodes[m].node.offset();
            if n.node.offset() != mo || u.session.offset() != Some(mo) {
                return false;
            }
            let Some(cid) = u.conn else { return false };
            if self.nodes[m].node.replica(LinkId(cid)).is_none() {
                return false;
            }
            let _ = i;
        }
        true
    }

    fn check_quiet(&mut self) -> Res {
        self.stats.quiet_checks += 1;
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            let Some(m) = n.master else { continue };
            let master = &self.nodes[m];
            if n.node.ids().id != master.node.ids().id {
                return Err(format!(
                    "{} has replid {} but its master {} has {}",
                    n.name,
                    n.node.ids().id,
                    master.name,
                    master.node.ids().id
                ));
            }
            let u = n.up.as_ref().expect("quiet");
            if u.session.master_replid() != Some(master.node.ids().id) {
                return Err(format!(
                    "{}: session replid differs from its master's",
                    n.name
                ));
            }
            if n.store != master.store {
                return Err(format!(
                    "{} (offset {}) holds other data than its master {} (offset {}):\n{}",
                    n.name,
                    n.node.offset(),
                    master.name,
                    master.node.offset(),
                    diff(&n.store, &master.store)
                ));
            }
        }
        let d = self.describe();
        self.log(|| format!("quiet point, all checks passed:\n{d}"));
        Ok(())
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let up = n.up.as_ref().map(|u| {
                format!(
                    "{:?} session offset {:?}",
                    u.session.state(),
                    u.session.offset().map(|o| o.value())
                )
            });
            let _ = writeln!(
                s,
                "  {} alive={} master={:?} offset={} replid={} id2={} second={} keys={} failover={:?} link={:?}",
                n.name,
                n.alive,
                n.master.map(|m| &self.nodes[m].name),
                n.node.offset(),
                &n.node.ids().id.as_str()[..8],
                &n.node.ids().id2.as_str()[..8],
                n.node.ids().second_offset,
                n.store.keys(),
                n.node.failover_state(),
                up
            );
        }
        s
    }

    // ------------------------------------------------------------------ workload and faults

    fn roots(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                n.alive && n.master.is_none() && !n.node.is_replica() && !n.node.writes_paused()
            })
            .collect()
    }

    fn any_failover(&self) -> bool {
        self.nodes.iter().any(|n| {
            n.node.failover_state() != FailoverState::NoFailover
                || n.up.as_ref().is_some_and(|u| u.failover)
        })
    }

    /// Whether `j` is `i` or follows it, directly or not.
    fn below(&self, j: usize, i: usize) -> bool {
        let mut cur = Some(j);
        for _ in 0..=self.nodes.len() {
            match cur {
                Some(c) if c == i => return true,
                Some(c) => cur = self.nodes[c].master,
                None => return false,
            }
        }
        true // a cycle: treat as below
    }

    fn chaos_op(&mut self) -> Res {
        let roll = self.rng.below(100);
        let topology_ok = !self.any_failover();
        match roll {
            0..=39 => self.op_writes(false),
            40..=44 => self.op_writes(true),
            45..=54 => self.op_cut(),
            55..=61 => self.op_stall(),
            62..=64 if topology_ok => self.op_promote(),
            65..=69 if topology_ok => self.op_switch(),
            70..=72 if topology_ok => self.op_failover(),
            73..=74 if topology_ok => self.op_crash_failover(),
            75..=78 if topology_ok => self.op_kill(),
            79..=82 => self.op_save(),
            83..=92 => self.op_wait(),
            93..=95 => self.op_slow_replica(),
            _ => self.op_writes(false),
        }
    }

    fn gen_cmd(&mut self) -> (u32, Vec<Bytes>) {
        let db = self.rng.below(DATABASES as usize) as u32;
        let k = self.rng.below(12);
        let r = &mut self.rng;
        let word = |r: &mut Rng, max: u64| -> Bytes {
            let len = r.range(1, max) as usize;
            (0..len)
                .map(|_| b'a' + r.below(26) as u8)
                .collect::<Vec<u8>>()
                .into()
        };
        let argv = match r.below(8) {
            0 | 1 => {
                let max = if r.chance(0.2) { 600 } else { 30 };
                let v = word(r, max);
                vec![Bytes::from("SET"), Bytes::from(format!("s:{k}")), v]
            }
            2 => {
                let ns = ["s", "c", "l", "t", "h"][r.below(5)];
                vec![Bytes::from("DEL"), Bytes::from(format!("{ns}:{k}"))]
            }
            3 => vec![Bytes::from("INCR"), Bytes::from(format!("c:{k}"))],
            4 => {
                let mut a = vec![Bytes::from("RPUSH"), Bytes::from(format!("l:{k}"))];
                for _ in 0..r.range(1, 3) {
                    a.push(word(r, 12));
                }
                a
            }
            5 => {
                let mut a = vec![Bytes::from("SADD"), Bytes::from(format!("t:{k}"))];
                for _ in 0..r.range(1, 3) {
                    a.push(word(r, 3));
                }
                a
            }
            6 => vec![
                Bytes::from("HSET"),
                Bytes::from(format!("h:{k}")),
                word(r, 4),
                word(r, 20),
            ],
            _ => {
                let ns = ["s", "c", "l", "t", "h"][r.below(5)];
                let ms = EPOCH_MS + self.now.as_millis() as i64 + r.range(100, 20_000) as i64;
                vec![
                    Bytes::from("PEXPIREAT"),
                    Bytes::from(format!("{ns}:{k}")),
                    Bytes::from(ms.to_string()),
                ]
            }
        };
        (db, argv)
    }

    /// The master's active expiry: expired keys are deleted and `DEL` is propagated.
    fn expire_cycle(&mut self, m: usize) {
        let now_ms = self.wall_ms();
        let expired = self.nodes[m].store.expired(now_ms);
        for (db, key) in expired {
            let n = &mut self.nodes[m];
            let argv = vec![Bytes::from("DEL"), key];
            n.store.apply(db, &argv).expect("DEL applies");
            n.node.propagate(db, &argv);
            n.stream_db = db;
            let (name, o) = (n.name.clone(), n.node.offset());
            self.log(|| format!("{name} db{db} {} (expired) -> offset {o}", show(&argv)));
        }
    }

    /// Executes one write on master `m` as a server would: applied, then propagated.
    fn exec_write(&mut self, m: usize, db: u32, argv: &[Bytes]) -> bool {
        let n = &mut self.nodes[m];
        if argv[0] == "PEXPIREAT" && n.store.contains(db, &argv[1]).is_none() {
            return false; // Redis neither changes nor propagates anything
        }
        if n.store.apply(db, argv).is_err() {
            return false;
        }
        n.node.propagate(db, argv);
        n.stream_db = db;
        self.stats.writes += 1;
        true
    }

    fn op_writes(&mut self, burst: bool) -> Res {
        let roots = self.roots();
        let Some(&m) = self.rng.pick(&roots) else {
            return Ok(());
        };
        self.expire_cycle(m);
        let count = if burst {
            self.rng.range(20, 80)
        } else {
            self.rng.range(1, 8)
        };
        let name = self.nodes[m].name.clone();
        if !burst && self.rng.chance(0.25) {
            // MULTI/EXEC: executed together, propagated as one block.
            let mut cmds = Vec::new();
            for _ in 0..self.rng.range(1, 5) {
                let (db, argv) = self.gen_cmd();
                let n = &mut self.nodes[m];
                if argv[0] == "PEXPIREAT" && n.store.contains(db, &argv[1]).is_none() {
                    continue;
                }
                if n.store.apply(db, &argv).is_ok() {
                    cmds.push((db, argv));
                }
            }
            if let Some((db, _)) = cmds.last() {
                self.nodes[m].stream_db = *db;
            }
            self.nodes[m].node.propagate_transaction(&cmds);
            self.stats.transactions += 1;
            self.stats.writes += cmds.len() as u64;
            let n = cmds.len();
            self.log(|| format!("{name} MULTI/EXEC of {n} writes"));
            return Ok(());
        }
        for _ in 0..count {
            let (db, mut argv) = self.gen_cmd();
            if burst && argv[0] == "SET" {
                argv[2] = Bytes::from(vec![b'x'; self.rng.range(200, 1500) as usize]);
            }
            if self.exec_write(m, db, &argv) {
                let o = self.nodes[m].node.offset();
                self.log(|| format!("{name} db{db} {} -> offset {o}", show(&argv)));
            }
        }
        Ok(())
    }

    fn op_cut(&mut self) -> Res {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        let Some(&cid) = self.rng.pick(&ids) else {
            return Ok(());
        };
        let c = &self.conns[&cid];
        let (i, m) = (c.replica, c.master);
        let phase = self.nodes[i]
            .up
            .as_ref()
            .filter(|u| u.conn == Some(cid))
            .map(|u| u.session.state());
        match phase {
            Some(LinkState::Handshake) => self.stats.cuts_handshake += 1,
            Some(LinkState::Sync) => self.stats.cuts_transfer += 1,
            Some(LinkState::Connected) => self.stats.cuts_stream += 1,
            _ => {}
        }
        let silent = self.rng.chance(0.3) && c.master_open && c.replica_open && c.linked;
        let (a, b) = (self.nodes[i].name.clone(), self.nodes[m].name.clone());
        self.log(|| format!("FAULT cut conn {cid} {a}->{b} in {phase:?} (silent: {silent})"));
        if silent {
            // The replica sees the reset; the master never hears of it and writes into the
            // void until a timeout or an output-buffer limit drops the link.
            self.stats.silent_cuts += 1;
            let c = self.conns.get_mut(&cid).expect("conn");
            c.disturbed = true;
            c.down.clear();
            c.up.clear();
            c.down.stalled_until = Duration::MAX;
            c.replica_open = false;
            self.link_down_if(i, cid);
            return Ok(());
        }
        self.reset(cid);
        Ok(())
    }

    fn op_stall(&mut self) -> Res {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        let Some(&cid) = self.rng.pick(&ids) else {
            return Ok(());
        };
        let t = self.setup.node.repl_timeout.as_millis() as u64;
        let d = Duration::from_millis(self.rng.range(100, t * 2));
        let down = self.rng.chance(0.7);
        let until = self.now + d;
        let c = self.conns.get_mut(&cid).expect("conn");
        c.disturbed = true;
        let p = if down { &mut c.down } else { &mut c.up };
        if p.stalled_until != Duration::MAX {
            p.stalled_until = p.stalled_until.max(until);
        }
        self.stats.stalls += 1;
        self.log(|| {
            format!(
                "FAULT stall conn {cid} {} for {d:?}",
                if down { "down" } else { "up" }
            )
        });
        Ok(())
    }

    /// A replica stops reading while its master takes a burst of large writes: past the
    /// backlog, and past the output-buffer limits when they are set.
    fn op_slow_replica(&mut self) -> Res {
        let roots = self.roots();
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.linked && c.replica_open && roots.contains(&c.master))
            .map(|(id, _)| *id)
            .collect();
        let Some(&cid) = self.rng.pick(&ids) else {
            return Ok(());
        };
        let t = self.setup.node.repl_timeout.as_millis() as u64;
        let d = Duration::from_millis(self.rng.range(t / 4, t * 2));
        let until = self.now + d;
        let c = self.conns.get_mut(&cid).expect("conn");
        c.disturbed = true;
        c.down.stalled_until = c.down.stalled_until.max(until);
        let m = c.master;
        self.stats.stalls += 1;
        self.log(|| format!("FAULT conn {cid} replica stops reading for {d:?}"));
        for _ in 0..self.rng.range(20, 120) {
            let db = self.rng.below(DATABASES as usize) as u32;
            let k = self.rng.below(12);
            let v = vec![b'y'; self.rng.range(300, 1500) as usize];
            let argv = vec![
                Bytes::from("SET"),
                Bytes::from(format!("s:{k}")),
                Bytes::from(v),
            ];
            self.exec_write(m, db, &argv);
        }
        Ok(())
    }

    /// A random master of the topology, with its replicas; `None` when the one drawn has none.
    fn pick_root_with_replicas(&mut self) -> Option<(usize, Vec<usize>)> {
        let roots = self.roots();
        let &m = self.rng.pick(&roots)?;
        let reps = self.replicas_of(m);
        (!reps.is_empty()).then_some((m, reps))
    }

    fn replicas_of(&self, m: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&j| self.nodes[j].alive && self.nodes[j].master == Some(m))
            .collect()
    }

    fn promote(&mut self, i: usize) -> Res {
        let name = self.nodes[i].name.clone();
        self.log(|| format!("{name}: REPLICAOF NO ONE"));
        self.drop_upstream(i);
        self.nodes[i].master = None;
        let at = self.at();
        self.nodes[i].node.promote(at);
        self.nodes[i].last_linked = self.now;
        self.model_promote(i)
    }

    fn op_promote(&mut self) -> Res {
        let cands: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].master.is_some())
            .collect();
        let Some(&i) = self.rng.pick(&cands) else {
            return Ok(());
        };
        self.promote(i)
    }

    fn op_switch(&mut self) -> Res {
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect();
        let Some(&i) = self.rng.pick(&alive) else {
            return Ok(());
        };
        let targets: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&t| !self.below(t, i))
            .collect();
        let Some(&t) = self.rng.pick(&targets) else {
            return Ok(());
        };
        let (a, b) = (self.nodes[i].name.clone(), self.nodes[t].name.clone());
        self.log(|| format!("{a}: REPLICAOF {b}"));
        self.stats.switches += 1;
        self.follow(i, t)
    }

    fn op_failover(&mut self) -> Res {
        let Some((m, reps)) = self.pick_root_with_replicas() else {
            return Ok(());
        };
        let timeout = self.rng.range(500, 10_000).to_string();
        let mut argv: Vec<Bytes> = vec![Bytes::from("FAILOVER")];
        if self.rng.chance(0.6) {
            let t = *self.rng.pick(&reps).expect("non-empty");
            argv.extend([
                Bytes::from("TO"),
                Bytes::from(HOST),
                Bytes::from(self.nodes[t].port.to_string()),
            ]);
            if self.rng.chance(0.3) {
                argv.push(Bytes::from("FORCE"));
            }
        }
        argv.extend([Bytes::from("TIMEOUT"), Bytes::from(timeout)]);
        let at = self.at();
        let r = self.nodes[m]
            .node
            .handle_command(at, ADMIN, &Caller::default(), &argv);
        self.stats.failovers += 1;
        let name = self.nodes[m].name.clone();
        self.log(|| format!("{name}: {} -> {r:?}", show(&argv)));
        Ok(())
    }

    fn op_crash_failover(&mut self) -> Res {
        let Some((m, reps)) = self.pick_root_with_replicas() else {
            return Ok(());
        };
        let epoch = self.nodes[m].epoch;
        let history = self.nodes[m].node.ids().id;
        let name = self.nodes[m].name.clone();
        self.log(|| format!("FAULT {name} crashes; its most advanced replica takes over"));
        self.kill(m, false);
        // The most advanced replica of the master's history: the highest offset (lowest index
        // on ties) among those that hold its id, or an id its backlog TTL retired (the same
        // data and offsets under a new name); the others have not synced with it yet, and
        // their offsets count another history's bytes.
        let retired = self.nodes[m].ttl_retired.clone();
        let same: Vec<usize> = reps
            .iter()
            .copied()
            .filter(|&j| {
                let id = self.nodes[j].node.ids().id;
                id == history || retired.contains(&id)
            })
            .collect();
        let pool = if same.is_empty() { &reps } else { &same };
        let r = *pool
            .iter()
            .max_by_key(|&&j| (self.nodes[j].node.offset(), std::cmp::Reverse(j)))
            .expect("non-empty");
        let ro = self.nodes[r].node.offset();
        for w in &self.wait_records {
            if w.master != m || w.master_epoch != epoch {
                continue;
            }
            let still = w.acked.iter().any(|&(j, e)| {
                self.nodes[j].alive && self.nodes[j].epoch == e && self.nodes[j].master == Some(m)
            });
            if !still {
                continue;
            }
            self.stats.wait_checks += 1;
            let has = matches!(self.nodes[r].store.contains(0, &w.key), Some(e) if e.val == Val::Str(w.key.clone()));
            if ro < w.offset || !has {
                return Err(format!(
                    "a write acknowledged by WAIT at offset {} ({}) is lost: the most advanced \
                     replica {} is at {ro}",
                    w.offset,
                    String::from_utf8_lossy(&w.key),
                    self.nodes[r].name
                ));
            }
        }
        self.stats.crash_failovers += 1;
        self.promote(r)?;
        for j in reps {
            if j != r {
                self.follow(j, r)?;
            }
        }
        self.nodes[m].master = Some(r);
        Ok(())
    }

    fn op_kill(&mut self) -> Res {
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect();
        if alive.len() < 2 {
            return Ok(());
        }
        let i = *self.rng.pick(&alive).expect("non-empty");
        let clean = self.rng.chance(0.5);
        let name = self.nodes[i].name.clone();
        self.log(|| format!("FAULT {name} goes down (saves first: {clean})"));
        self.kill(i, clean);
        Ok(())
    }

    fn save(&mut self, i: usize) {
        let n = &self.nodes[i];
        let repl = (n.node.offset().value() > 0 || n.node.backlog().is_some()).then(|| ReplInfo {
            stream_db: u64::from(n.stream_db),
            id: Bytes::copy_from_slice(n.node.ids().id.as_bytes()),
            offset: n.node.offset().value(),
        });
        let rdb = n.store.to_rdb(repl);
        self.nodes[i].saved = Some(rdb);
    }

    fn op_save(&mut self) -> Res {
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect();
        if let Some(&i) = self.rng.pick(&alive) {
            // A replica saves only between commands, never inside a transaction.
            if self.nodes[i]
                .up
                .as_ref()
                .is_none_or(|u| u.multi.is_none() && u.loader.is_none())
            {
                self.save(i);
            }
        }
        Ok(())
    }

    fn kill(&mut self, i: usize, clean: bool) {
        if clean && self.nodes[i].up.as_ref().is_none_or(|u| u.multi.is_none()) {
            self.save(i);
        }
        let cids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.master == i || c.replica == i)
            .map(|(id, _)| *id)
            .collect();
        for cid in cids {
            self.reset(cid);
        }
        let n = &mut self.nodes[i];
        n.alive = false;
        n.up = None;
        n.snapshot = None;
        n.waits.clear();
        n.restart_at = Some(self.now + Duration::from_millis(self.rng.range(500, 15_000)));
    }

    fn restart(&mut self, i: usize) -> Res {
        let config = self.node_config();
        let at = self.at();
        let follows = self.nodes[i].master.is_some();
        let saved = self.nodes[i].saved.clone();
        let n = &mut self.nodes[i];
        n.alive = true;
        n.restart_at = None;
        n.epoch += 1;
        n.last_linked = self.now;
        n.ttl_retired.clear();
        n.files.clear();
        self.stats.restarts += 1;
        let (store, aux) = match &saved {
            Some(f) => model::load(f).map_err(|e| format!("{}: own RDB: {e}", n.name))?,
            None => (Store::default(), BTreeMap::new()),
        };
        let id = aux.get(&b"repl-id"[..]).and_then(|v| ReplId::parse(v).ok());
        let off = aux
            .get(&b"repl-offset"[..])
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
            .map(ReplOffset::new);
        let db = aux
            .get(&b"repl-stream-db"[..])
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok())
            .unwrap_or(0);
        n.store = store;
        n.stream_db = db;
        match (id, off) {
            (Some(id), Some(off)) if follows => {
                n.node = Node::restored_replica(config, at, id, off);
                n.ids = ReplicationIds::new(id);
            }
            (Some(id), Some(off)) => {
                n.node = Node::restored(config, at, id, off);
                n.ids = ReplicationIds::new(id);
                let fresh = n.node.ids().id;
                n.ids.shift(fresh, off);
            }
            _ => {
                n.node = Node::new(config, at);
                n.ids = *n.node.ids();
                if follows {
                    n.node.follow();
                }
            }
        }
        let name = n.name.clone();
        self.log(|| {
            format!(
                "{name} restarts from its RDB ({:?} at {:?})",
                id.map(|i| i.to_string()),
                off
            )
        });
        if follows {
            self.new_upstream(i, false);
        }
        Ok(())
    }

    fn op_wait(&mut self) -> Res {
        let roots = self.roots();
        let Some(&m) = self.rng.pick(&roots) else {
            return Ok(());
        };
        if self.nodes[m].node.backlog().is_none() {
            return Ok(());
        }
        self.next_wait_key += 1;
        let key = Bytes::from(format!("wait:{}", self.next_wait_key));
        let argv = vec![Bytes::from("SET"), key.clone(), key.clone()];
        self.exec_write(m, 0, &argv);
        let reps = self.nodes[m].node.replicas().count().max(1);
        let k = self.rng.range(1, reps as u64) as usize;
        let offset = self.nodes[m].node.offset();
        let timeout = Duration::from_millis(self.rng.range(100, 5000));
        let at = self.at();
        let r = self.nodes[m]
            .node
            .handle_wait(at, offset, k, Some(timeout), true)
            .map_err(|e| format!("WAIT on a master: {e}"))?;
        let name = self.nodes[m].name.clone();
        self.log(|| format!("{name}: WAIT {k} at offset {offset} -> {r:?}"));
        match r {
            WaitOutcome::Ready(n) => self.wait_answered(m, offset, key, n),
            WaitOutcome::Blocked(id) => {
                let epoch = self.nodes[m].epoch;
                self.nodes[m].waits.insert(id, (offset, key, epoch));
            }
        }
        Ok(())
    }

    fn wait_answered(&mut self, m: usize, offset: ReplOffset, key: Bytes, replicas: usize) {
        // Which replicas acknowledged it, as the master sees them now.
        let mut acked = Vec::new();
        for r in self.nodes[m].node.replicas() {
            use respsync::master::ReplicaState as S;
            if matches!(r.state(), S::Online | S::WaitFirstAck) && r.ack_offset() >= offset {
                if let Some(c) = self.conns.get(&r.link().0) {
                    acked.push((c.replica, self.nodes[c.replica].epoch));
                }
            }
        }
        if replicas == 0 || acked.is_empty() {
            return;
        }
        self.stats.waits_acked += 1;
        self.wait_records.push(WaitRecord {
            master: m,
            master_epoch: self.nodes[m].epoch,
            offset,
            key,
            acked,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Partial,
    Full,
    Refused,
}

/// The first few differences between two stores, for the failure message.
fn diff(a: &Store, b: &Store) -> String {
    let mut s = String::new();
    let mut shown = 0;
    for (db, (ma, mb)) in a.dbs.iter().zip(&b.dbs).enumerate() {
        for k in ma.keys().chain(mb.keys()) {
            if ma.get(k) != mb.get(k) && shown < 6 {
                shown += 1;
                let _ = writeln!(
                    s,
                    "  db{db} {}: {:?} vs {:?}",
                    k.escape_ascii(),
                    ma.get(k).map(|e| (&e.val, e.expire_ms)),
                    mb.get(k).map(|e| (&e.val, e.expire_ms))
                );
            }
        }
    }
    s
}
