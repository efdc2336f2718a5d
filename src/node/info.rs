//! `INFO replication` and `ROLE` as Redis 7.0 prints them.

use std::fmt::Write;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::Node;
use crate::master::ReplicaState;
use crate::resp::{encode_array_header, encode_bulk, encode_integer};

impl Node {
    /// The master's `ROLE` reply: `master`, the offset, and `[ip, port, ack offset]` for every
    /// online replica (port and offset as bulk strings, as Redis sends them).
    pub fn role_reply(&self, _now: Instant) -> Bytes {
        let mut out = BytesMut::new();
        encode_array_header(3, &mut out);
        encode_bulk(b"master", &mut out);
        encode_integer(self.offset.value(), &mut out);
        let online: Vec<_> = self
            .replicas()
            .filter(|s| matches!(s.state, ReplicaState::Online | ReplicaState::WaitFirstAck))
            .collect();
        encode_array_header(online.len(), &mut out);
        for s in online {
            encode_array_header(3, &mut out);
            encode_bulk(s.ip().as_bytes(), &mut out);
            encode_bulk(s.listening_port.to_string().as_bytes(), &mut out);
            encode_bulk(s.ack_offset.value().to_string().as_bytes(), &mut out);
        }
        out.freeze()
    }

    /// The part of `INFO replication` both roles print, from `connected_slaves` to
    /// `repl_backlog_histlen`, in Redis 7.0's order and format (`\r\n` line ends). A master's
    /// section is `# Replication\r\nrole:master\r\n` followed by this; a replica prints its
    /// link fields between the two.
    ///
    /// ```
    /// use std::time::Instant;
    /// use respsync::node::{Node, NodeConfig};
    ///
    /// let now = Instant::now();
    /// let node = Node::new(NodeConfig::default(), now);
    /// let mut text = String::new();
    /// node.write_info_replication_tail(now, &mut text);
    /// assert!(text.starts_with("connected_slaves:0\r\nmaster_failover_state:no-failover\r\n"));
    /// assert!(text.contains("second_repl_offset:-1\r\nrepl_backlog_active:0\r\n"));
    /// ```
    pub fn write_info_replication_tail(&self, now: Instant, s: &mut String) {
        // A Redis 8 rdb connection is not listed while its main connection exists: the pair is
        // one replica (rdb-channel.md §5).
        let replicas: Vec<_> = self
            .replicas()
            .filter(|r| r.state.info_name().is_some())
            .filter(|r| !r.main_channel.is_some_and(|a| self.links.contains_key(&a)))
            .collect();
        let _ = write!(s, "connected_slaves:{}\r\n", replicas.len());
        if self.config.min_replicas_to_write > 0 && !self.config.min_replicas_max_lag.is_zero() {
            let _ = write!(s, "min_slaves_good_slaves:{}\r\n", self.good_replicas(now));
        }
        for (i, r) in replicas.iter().enumerate() {
            let _ = write!(
                s,
                "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
                r.ip(),
                r.listening_port,
                r.state.info_name().unwrap_or("online"),
                r.ack_offset.value(),
                r.lag(now)
            );
        }
        let _ = write!(
            s,
            "master_failover_state:{}\r\n",
            self.failover_state().as_str()
        );
        let _ = write!(s, "master_replid:{}\r\n", self.ids.id);
        let _ = write!(s, "master_replid2:{}\r\n", self.ids.id2);
        let _ = write!(s, "master_repl_offset:{}\r\n", self.offset.value());
        let _ = write!(
            s,
            "second_repl_offset:{}\r\n",
            self.ids.second_offset.value()
        );
        match &self.backlog {
            Some(b) => {
                let histlen = b.histlen() + self.pending.len() as u64;
                let first = self.offset.value() - histlen as i64 + 1;
                let _ = write!(
                    s,
                    "repl_backlog_active:1\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
                    self.config.backlog_size, first, histlen
                );
            }
            None => {
                let _ = write!(
                    s,
                    "repl_backlog_active:0\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                    self.config.backlog_size
                );
            }
        }
    }

    /// The whole `INFO replication` section of a master.
    pub fn info_replication_master(&self, now: Instant) -> String {
        let mut s = String::from("# Replication\r\nrole:master\r\n");
        self.write_info_replication_tail(now, &mut s);
        s
    }
}
