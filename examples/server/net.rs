//! Client connections: one thread per connection, blocking sockets, one lock per batch.
//!
//! A thread reads what the socket has, decodes every complete request with the crate's
//! [`Decoder`], runs the whole batch under one lock (so a pipeline of 64 SETs costs one lock),
//! and writes all the replies with one `write_all`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use respsync::resp::Decoder;

use crate::app::commands;
use crate::app::master;
use crate::app::reply::Out;
use crate::app::server::Client;
use crate::app::Shared;

/// Redis's default `maxclients`: connections beyond it are refused (each costs a thread here).
const MAX_CLIENTS: usize = 10_000;

/// Accepts connections forever, one thread each.
pub fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        let sock = match conn {
            Ok(s) => s,
            Err(e) => {
                crate::log!("accept: {e}");
                continue;
            }
        };
        if shared.is_down() {
            drop(sock); // playing dead: nobody is listening
            continue;
        }
        {
            let mut srv = shared.lock();
            if srv.clients.len() >= MAX_CLIENTS {
                srv.stats.rejected_connections += 1;
                drop(srv);
                let mut sock = sock;
                let _ = sock.write_all(b"-ERR max number of clients reached\r\n");
                continue;
            }
        }
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("client".into())
            .spawn(move || {
                if let Ok(addr) = sock.peer_addr() {
                    serve(&shared, sock, addr);
                }
            });
        if let Err(e) = spawned {
            crate::log!("cannot start a client thread: {e}");
        }
    }
}

fn serve(shared: &Arc<Shared>, mut sock: TcpStream, addr: SocketAddr) {
    let _ = sock.set_nodelay(true);
    let Ok(handle) = sock.try_clone() else { return };
    let (id, authed) = {
        let mut srv = shared.lock();
        (srv.add_client(addr, handle), srv.cfg.requirepass.is_none())
    };
    let mut cl = Client::new(id, authed);
    let mut dec = Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Out::new();
    let mut batch = Vec::new();
    let mut unaccounted_out = 0u64;
    'conn: loop {
        let n = match sock.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut failed = None;
        loop {
            match dec.decode_request(&mut buf) {
                Ok(Some(cmd)) if cmd.argv.is_empty() => {}
                Ok(Some(cmd)) => batch.push(cmd.argv),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let mut srv = shared.lock();
            srv.stats.total_net_input_bytes += n as u64;
            srv.stats.total_net_output_bytes += std::mem::take(&mut unaccounted_out);
            for argv in batch.drain(..) {
                // During a FAILOVER writes wait until it ends.
                while srv.node.writes_paused() && !cl.is_master && commands::is_write(&argv) {
                    srv = shared.wait(srv, Duration::from_millis(20));
                    master::cron(shared, &mut srv);
                }
                commands::execute(&mut srv, &mut cl, &argv, &mut out);
                // A blocked WAIT: wait here, in order, until the node answers it.
                while let Some(id) = cl.blocked_wait {
                    master::drain_events(shared, &mut srv);
                    if let Some(answer) = srv.wait_results.remove(&id) {
                        match answer {
                            Some(n) => out.int(n as i64),
                            None => {
                                // As Redis: the error, then the connection closes.
                                out.error(respsync::commands::UNBLOCKED);
                                cl.close = true;
                            }
                        }
                        cl.blocked_wait = None;
                        break;
                    }
                    srv = shared.wait(srv, Duration::from_millis(5));
                    srv.node.handle_timeout(Instant::now());
                    if peer_closed(&sock) {
                        // The client left (WAIT with no timeout would block this thread
                        // forever): forget its wait, as Redis unblocks a freed client.
                        srv.node.cancel_wait(id);
                        cl.blocked_wait = None;
                        cl.close = true;
                    }
                }
                if cl.close {
                    break;
                }
            }
            // Snapshots asked for, replicas to wake: the node's events.
            master::drain_events(shared, &mut srv);
        }
        if let Some(e) = &failed {
            out.error(&format!("ERR Protocol error: {e}"));
        }
        if !out.is_empty() {
            let bytes = out.take();
            if sock.write_all(&bytes).is_err() {
                break 'conn;
            }
            unaccounted_out += bytes.len() as u64;
        }
        if cl.close || failed.is_some() {
            break;
        }
        if cl.replica_link {
            // PSYNC or SYNC: from now on the node writes to this connection, and what the
            // replica sends (ACKs) goes to the node.
            if let Ok(w) = sock.try_clone() {
                master::spawn_writer(shared, id, w);
                if !buf.is_empty() {
                    let rest = buf.split();
                    master::replica_input(shared, id, &rest);
                }
                replica_reader(shared, &mut sock, id, &mut chunk);
            }
            break;
        }
    }
    let mut srv = shared.lock();
    srv.remove_client(id);
    srv.node
        .handle_disconnect(std::time::Instant::now(), master::link(id));
    master::drain_events(shared, &mut srv);
}

/// Whether the peer has closed the connection (a non-blocking peek reads end of file).
fn peer_closed(sock: &TcpStream) -> bool {
    if sock.set_nonblocking(true).is_err() {
        return false;
    }
    let closed = matches!(sock.peek(&mut [0u8; 1]), Ok(0));
    let _ = sock.set_nonblocking(false);
    closed
}

/// Reads a replica link until it closes, handing everything to the node.
fn replica_reader(shared: &Arc<Shared>, sock: &mut TcpStream, id: u64, chunk: &mut [u8]) {
    loop {
        match sock.read(chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => master::replica_input(shared, id, &chunk[..n]),
        }
    }
}
