//! The interop matrix's peers run here: each real server starts, says the version it is meant
//! to be, and writes the RDB version `Peer::rdb_version` says. A missing peer fails (run
//! `scripts/test`, which installs them all).

mod support;

use support::{FrameExt, Peer, Proc};

#[test]
fn every_peer_runs_its_version_and_writes_its_rdb_version() {
    for peer in Peer::ALL {
        let server = Proc::start(peer, &[]);
        let version = server
            .info("server", peer.version_field())
            .unwrap_or_else(|| panic!("{peer}: INFO server has no {}", peer.version_field()));
        assert!(
            version.starts_with(peer.version_prefix()),
            "{peer}: {} is {version}",
            peer.version_field()
        );
        let mut c = server.conn();
        c.run("SET k v");
        c.run("SAVE");
        let rdb = std::fs::read(server.dir.0.join("dump.rdb")).expect("dump.rdb after SAVE");
        assert_eq!(
            &rdb[..9],
            format!("REDIS{:04}", peer.rdb_version()).as_bytes(),
            "{peer}: RDB header"
        );
    }
}

#[test]
fn redis_8_2_is_a_plain_server() {
    let server = Proc::start(Peer::Redis82, &[]);
    let mut c = server.conn();
    // Redis 8 lists its built-in `vectorset` as a module with an empty path; nothing loaded
    // from a file (FalkorDB's graph module ships beside this binary but is not loaded).
    let modules = c.run("MODULE LIST");
    for m in modules.array() {
        let fields = m.array();
        let path = fields
            .chunks(2)
            .find(|p| p[0].bytes() == b"path")
            .map(|p| p[1].bytes())
            .expect("MODULE LIST entry has a path");
        assert!(path.is_empty(), "a module loaded from a file: {m:?}");
    }
}

#[test]
fn a_port_taken_by_a_listener_or_a_server_is_skipped() {
    // A plain listener that never answers, and a real server: either way the start moves on
    // to the next port and the server there answers as itself.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let held = listener.local_addr().expect("addr").port();
    let other = Proc::start(Peer::Redis70, &[]);
    for taken in [held, other.port] {
        let next = support::free_port();
        let p = Proc::start_on_ports(Peer::Redis70, &[], &mut [taken, next].into_iter());
        assert_eq!(p.port, next);
        let pid = p.info("server", "process_id").expect("process_id");
        assert_eq!(
            pid,
            p.child.id().to_string(),
            "port {next} answers as its own server"
        );
    }
    let pid = other.info("server", "process_id").expect("process_id");
    assert_eq!(
        pid,
        other.child.id().to_string(),
        "the other server is untouched"
    );
}
