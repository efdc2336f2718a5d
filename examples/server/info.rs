//! INFO and ROLE, with Redis 7.0's field names, order and formats.

use std::borrow::Cow;
use std::fmt::Write;
use std::time::Instant;

use crate::app::commands::Ctx;
use crate::app::server::{LinkState, Server};

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

pub fn info(ctx: &mut Ctx, a: &[&[u8]]) -> Result<(), Cow<'static, str>> {
    let mut wanted: Vec<String> = a[1..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    if wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default")
    {
        wanted = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    let text = render(ctx.srv, ctx.cl.db, &wanted);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

/// Renders the wanted sections.
pub fn render(srv: &Server, _db: usize, wanted: &[String]) -> String {
    let mut s = String::new();
    for sec in DEFAULT_SECTIONS {
        if !wanted.iter().any(|w| w == sec) {
            continue;
        }
        if !s.is_empty() {
            s.push_str("\r\n");
        }
        match *sec {
            "server" => server(srv, &mut s),
            "clients" => clients(srv, &mut s),
            "memory" => s.push_str("# Memory\r\n"),
            "persistence" => persistence(srv, &mut s),
            "stats" => stats(srv, &mut s),
            "replication" => replication(srv, &mut s),
            "cpu" => s.push_str("# CPU\r\n"),
            _ => keyspace(srv, &mut s),
        }
    }
    s
}

macro_rules! field {
    ($s:expr, $name:literal, $v:expr) => {{
        let _ = write!($s, concat!($name, ":{}\r\n"), $v);
    }};
}

fn server(srv: &Server, s: &mut String) {
    let up = srv.started.elapsed().as_secs();
    s.push_str("# Server\r\n");
    field!(s, "redis_version", "7.0.15");
    field!(s, "respsync_version", env!("CARGO_PKG_VERSION"));
    field!(s, "redis_mode", "standalone");
    field!(s, "os", std::env::consts::OS);
    field!(s, "arch_bits", usize::BITS);
    field!(s, "multiplexing_api", "threads");
    field!(s, "process_id", std::process::id());
    field!(s, "run_id", srv.run_id);
    field!(s, "tcp_port", srv.cfg.port);
    field!(s, "server_time_usec", crate::app::store::now_ms() * 1000);
    field!(s, "uptime_in_seconds", up);
    field!(s, "uptime_in_days", up / 86400);
    field!(s, "hz", 10);
    field!(s, "configured_hz", 10);
    field!(
        s,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    field!(s, "config_file", "");
}

fn clients(srv: &Server, s: &mut String) {
    s.push_str("# Clients\r\n");
    field!(s, "connected_clients", srv.clients.len());
    field!(s, "blocked_clients", 0);
}

fn persistence(srv: &Server, s: &mut String) {
    s.push_str("# Persistence\r\n");
    field!(s, "loading", srv.loading as u8);
    field!(s, "async_loading", 0);
    field!(s, "rdb_changes_since_last_save", srv.dirty);
    field!(s, "rdb_bgsave_in_progress", 0);
    field!(s, "rdb_last_save_time", srv.last_save);
    field!(s, "rdb_last_load_keys_expired", 0);
    field!(s, "rdb_last_load_keys_loaded", srv.last_load_keys);
    field!(s, "aof_enabled", 0);
}

fn stats(srv: &Server, s: &mut String) {
    let st = &srv.stats;
    s.push_str("# Stats\r\n");
    field!(
        s,
        "total_connections_received",
        st.total_connections_received
    );
    field!(s, "total_commands_processed", st.total_commands_processed);
    field!(s, "instantaneous_ops_per_sec", 0);
    field!(s, "total_net_input_bytes", st.total_net_input_bytes);
    field!(s, "total_net_output_bytes", st.total_net_output_bytes);
    field!(
        s,
        "total_net_repl_input_bytes",
        st.total_net_repl_input_bytes
    );
    field!(
        s,
        "total_net_repl_output_bytes",
        srv.node.stats().repl_output_bytes
    );
    field!(s, "rejected_connections", st.rejected_connections);
    let ns = srv.node.stats();
    field!(s, "sync_full", ns.sync_full);
    field!(s, "sync_partial_ok", ns.sync_partial_ok);
    field!(s, "sync_partial_err", ns.sync_partial_err);
    // This server's own counters (not in Redis's INFO): snapshots written for replicas, and
    // replicas dropped by the output-buffer limits or for silence.
    field!(s, "respsync_repl_snapshots", srv.snapshots_started);
    field!(s, "respsync_repl_obuf_drops", ns.output_buffer_drops);
    field!(s, "respsync_repl_timeout_drops", ns.timeout_drops);
    field!(
        s,
        "respsync_unapplied_master_commands",
        st.unapplied_master_commands
    );
    field!(s, "expired_keys", st.expired_keys);
    field!(s, "evicted_keys", 0);
    field!(s, "keyspace_hits", st.keyspace_hits);
    field!(s, "keyspace_misses", st.keyspace_misses);
}

fn secs_since(t: Option<Instant>) -> i64 {
    t.map_or(-1, |t| t.elapsed().as_secs() as i64)
}

fn replication(srv: &Server, s: &mut String) {
    s.push_str("# Replication\r\n");
    match &srv.upstream {
        None => field!(s, "role", "master"),
        Some(u) => {
            field!(s, "role", "slave");
            field!(s, "master_host", u.host);
            field!(s, "master_port", u.port);
            field!(
                s,
                "master_link_status",
                if u.state == LinkState::Connected {
                    "up"
                } else {
                    "down"
                }
            );
            let io = if matches!(u.state, LinkState::Connected | LinkState::Transfer) {
                secs_since(u.last_io)
            } else {
                -1
            };
            field!(s, "master_last_io_seconds_ago", io);
            field!(
                s,
                "master_sync_in_progress",
                (u.state == LinkState::Transfer) as u8
            );
            // Before the first sync there is no master offset: Redis prints 1... except that it
            // prints the cached master's offset when it has one, which is what we keep.
            field!(s, "slave_read_repl_offset", u.read_offset);
            field!(s, "slave_repl_offset", u.applied_offset);
            if u.state == LinkState::Transfer {
                let left = if u.sync_total > 0 {
                    u.sync_total - u.sync_read
                } else {
                    -1
                };
                let perc = if u.sync_total > 0 {
                    u.sync_read as f64 * 100.0 / u.sync_total as f64
                } else {
                    0.0
                };
                field!(s, "master_sync_total_bytes", u.sync_total);
                field!(s, "master_sync_read_bytes", u.sync_read);
                field!(s, "master_sync_left_bytes", left);
                field!(s, "master_sync_perc", format!("{perc:.2}"));
                field!(s, "master_sync_last_io_seconds_ago", secs_since(u.last_io));
            }
            if u.state != LinkState::Connected {
                field!(
                    s,
                    "master_link_down_since_seconds",
                    secs_since(u.down_since)
                );
            }
            if let Some(reason) = &u.stopped {
                field!(s, "respsync_replication_stopped", reason);
            }
            field!(s, "slave_priority", srv.cfg.replica_priority);
            field!(s, "slave_read_only", srv.cfg.replica_read_only as u8);
            field!(s, "replica_announced", 1);
        }
    }
    srv.node
        .write_info_replication_tail(std::time::Instant::now(), s);
}

fn keyspace(srv: &Server, s: &mut String) {
    s.push_str("# Keyspace\r\n");
    for (i, db) in srv.store.dbs.iter().enumerate() {
        if db.len() > 0 {
            let _ = write!(
                s,
                "db{i}:keys={},expires={},avg_ttl=0\r\n",
                db.len(),
                db.expires_len()
            );
        }
    }
}

pub fn role(ctx: &mut Ctx, _: &[&[u8]]) -> Result<(), Cow<'static, str>> {
    let out = &mut *ctx.out;
    match &ctx.srv.upstream {
        None => out.raw(&ctx.srv.node.role_reply(std::time::Instant::now())),
        Some(u) => {
            out.array(5);
            out.bulk(b"slave");
            out.bulk(u.host.as_bytes());
            out.int(i64::from(u.port));
            out.bulk(u.state.role_name().as_bytes());
            out.int(if u.state == LinkState::Connected {
                u.applied_offset
            } else {
                -1
            });
        }
    }
    Ok(())
}
