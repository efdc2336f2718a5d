//! Options in redis-server's style: `--name value` flags at start-up, `CONFIG GET/SET` at run time.

use std::fmt;

/// The server's configuration. Defaults are Redis 7.0's.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: String,
    pub dir: String,
    pub dbfilename: String,
    pub databases: usize,
    pub replicaof: Option<(String, u16)>,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    pub requirepass: Option<String>,
    pub repl_backlog_size: u64,
    pub repl_diskless_sync: bool,
    pub repl_diskless_sync_delay: u64,
    pub repl_diskless_sync_max_replicas: u64,
    pub repl_ping_replica_period: u64,
    pub repl_backlog_ttl: u64,
    /// `client-output-buffer-limit replica <hard> <soft> <seconds>`.
    pub replica_obuf: (u64, u64, u64),
    /// RDB version of the snapshots this server writes (its own option; default 9, which
    /// every supported replica loads).
    pub repl_rdb_version: u8,
    pub repl_timeout: u64,
    /// `repl-rdb-channel` (Redis 8): two-connection full syncs, offered as a replica and
    /// honoured as a master.
    pub repl_rdb_channel: bool,
    /// `dual-channel-replication-enabled` (Valkey 8): likewise for Valkey's protocol.
    pub dual_channel: bool,
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    /// What a replica does with a command from its master that it cannot apply (an unknown
    /// command): `stop` the link and report it (default), or `continue` and count it.
    pub replica_unknown_command_stop: bool,
    pub replica_priority: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: "127.0.0.1".into(),
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            databases: 16,
            replicaof: None,
            masterauth: None,
            masteruser: None,
            requirepass: None,
            repl_backlog_size: 1024 * 1024,
            repl_diskless_sync: true,
            repl_diskless_sync_delay: 5,
            repl_diskless_sync_max_replicas: 0,
            repl_ping_replica_period: 10,
            repl_backlog_ttl: 3600,
            replica_obuf: (256 << 20, 64 << 20, 60),
            repl_rdb_version: crate::app::snapshot::DEFAULT_RDB_VERSION,
            repl_timeout: 60,
            repl_rdb_channel: true,
            dual_channel: false,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            replica_read_only: true,
            replica_serve_stale_data: true,
            replica_unknown_command_stop: true,
            replica_priority: 100,
        }
    }
}

/// Why an option could not be set; `Display` is the text Redis puts after the argument name.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Unknown,
    NotInteger,
    NotMemory,
    NotBool,
    OutOfRange,
    Immutable,
    Invalid(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::Unknown => "unknown option",
            ConfigError::NotInteger => "argument couldn't be parsed into an integer",
            ConfigError::NotMemory => "argument must be a memory value",
            ConfigError::NotBool => "argument must be 'yes' or 'no'",
            ConfigError::OutOfRange => "argument must be between the allowed bounds",
            ConfigError::Immutable => "can't set immutable config",
            ConfigError::Invalid(s) => s,
        })
    }
}

/// Option names CONFIG GET knows, in the order it lists them.
pub const NAMES: &[&str] = &[
    "port",
    "bind",
    "dir",
    "dbfilename",
    "databases",
    "replicaof",
    "masterauth",
    "masteruser",
    "requirepass",
    "repl-backlog-size",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas",
    "repl-ping-replica-period",
    "repl-backlog-ttl",
    "client-output-buffer-limit",
    "repl-rdb-version",
    "repl-timeout",
    "repl-rdb-channel",
    "dual-channel-replication-enabled",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "replica-read-only",
    "replica-serve-stale-data",
    "replica-unknown-command-policy",
    "replica-priority",
];

/// Aliases accepted for an option (the old "slave" names).
fn canonical(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "slaveof" => "replicaof".into(),
        "min-slaves-to-write" => "min-replicas-to-write".into(),
        "min-slaves-max-lag" => "min-replicas-max-lag".into(),
        "slave-read-only" => "replica-read-only".into(),
        "slave-serve-stale-data" => "replica-serve-stale-data".into(),
        "slave-priority" => "replica-priority".into(),
        "repl-ping-slave-period" => "repl-ping-replica-period".into(),
        _ => n,
    }
}

/// Parses a memory amount as Redis does (`memtoull`): bytes, or a number with `k`/`kb`/`m`/`mb`
/// /`g`/`gb` (the `b` forms are powers of 1024, the bare ones of 1000), case-insensitive.
pub fn parse_memory(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, mul)| l.strip_suffix(suf).map(|n| (n, *mul)))
    .unwrap_or((l.as_str(), 1));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn parse_bool(s: &str) -> Result<bool, ConfigError> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError::NotBool),
    }
}

fn parse_int<T: std::str::FromStr>(s: &str) -> Result<T, ConfigError> {
    s.parse().map_err(|_| ConfigError::NotInteger)
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

impl Config {
    /// The crate's master-side settings from these options.
    pub fn node_config(&self, seed: u64) -> respsync::node::NodeConfig {
        use std::time::Duration;
        let (hard, soft, secs) = self.replica_obuf;
        respsync::node::NodeConfig {
            backlog_size: self.repl_backlog_size,
            backlog_ttl: Duration::from_secs(self.repl_backlog_ttl),
            ping_period: Duration::from_secs(self.repl_ping_replica_period),
            repl_timeout: Duration::from_secs(self.repl_timeout),
            diskless_sync: self.repl_diskless_sync,
            rdb_channel: self.repl_rdb_channel,
            dual_channel: self.dual_channel,
            diskless_sync_delay: Duration::from_secs(self.repl_diskless_sync_delay),
            diskless_sync_max_replicas: self.repl_diskless_sync_max_replicas as usize,
            output_buffer_limit: respsync::node::OutputBufferLimit {
                hard,
                soft,
                soft_duration: Duration::from_secs(secs),
            },
            min_replicas_to_write: self.min_replicas_to_write as usize,
            min_replicas_max_lag: Duration::from_secs(self.min_replicas_max_lag),
            id_seed: seed,
            snapshot_rdb_version: self.repl_rdb_version,
            ..respsync::node::NodeConfig::default()
        }
    }

    /// Parses `argv[1..]`: `--name value [value...]` pairs as redis-server takes them.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Config, String> {
        let mut cfg = Config::default();
        let mut it = args.into_iter().peekable();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!(
                    "unexpected argument '{flag}' (options are --name value)"
                ));
            };
            let mut values = Vec::new();
            while let Some(v) = it.peek() {
                if v.starts_with("--") {
                    break;
                }
                values.extend(it.next());
            }
            cfg.set(name, &values, true)
                .map_err(|e| format!("--{name}: {e}"))?;
        }
        Ok(cfg)
    }

    /// Sets one option from its value words. `startup` allows the options that cannot change at
    /// run time (port, bind, databases).
    pub fn set(&mut self, name: &str, values: &[String], startup: bool) -> Result<(), ConfigError> {
        let name = canonical(name);
        if name == "replicaof" {
            match values {
                [h, p] if h.eq_ignore_ascii_case("no") && p.eq_ignore_ascii_case("one") => {
                    self.replicaof = None
                }
                [h, p] => self.replicaof = Some((h.clone(), parse_int(p)?)),
                _ => return Err(ConfigError::Invalid("expected HOST PORT")),
            }
            return Ok(());
        }
        if name == "client-output-buffer-limit" {
            // `<class> <hard> <soft> <seconds>` groups, as one word or several; only the
            // replica class applies here (the others are accepted and ignored).
            let words: Vec<&str> = values.iter().flat_map(|v| v.split_whitespace()).collect();
            if words.is_empty() || !words.len().is_multiple_of(4) {
                return Err(ConfigError::Invalid(
                    "Wrong number of arguments in buffer limit configuration.",
                ));
            }
            for g in words.chunks(4) {
                let class = g[0].to_ascii_lowercase();
                if !["normal", "replica", "slave", "pubsub"].contains(&class.as_str()) {
                    return Err(ConfigError::Invalid(
                        "Invalid client class specified in buffer limit configuration.",
                    ));
                }
                let hard = parse_memory(g[1]).ok_or(ConfigError::NotMemory)?;
                let soft = parse_memory(g[2]).ok_or(ConfigError::NotMemory)?;
                let secs: u64 = parse_int(g[3])?;
                if class == "replica" || class == "slave" {
                    self.replica_obuf = (hard, soft, secs);
                }
            }
            return Ok(());
        }
        let [v] = values else {
            return Err(ConfigError::Invalid("wrong number of arguments"));
        };
        match name.as_str() {
            "port" | "bind" | "databases" if !startup => return Err(ConfigError::Immutable),
            "port" => self.port = parse_int(v)?,
            "bind" => self.bind = v.clone(),
            "dir" => self.dir = v.clone(),
            "dbfilename" => self.dbfilename = v.clone(),
            "databases" => {
                let n: usize = parse_int(v)?;
                if !(1..=1024).contains(&n) {
                    return Err(ConfigError::OutOfRange);
                }
                self.databases = n;
            }
            "masterauth" => self.masterauth = opt(v),
            "masteruser" => self.masteruser = opt(v),
            "requirepass" => self.requirepass = opt(v),
            "repl-backlog-size" => {
                let n = parse_memory(v).ok_or(ConfigError::NotMemory)?;
                self.repl_backlog_size = n.max(16 * 1024);
            }
            "repl-diskless-sync" => self.repl_diskless_sync = parse_bool(v)?,
            "repl-diskless-sync-delay" => self.repl_diskless_sync_delay = parse_int(v)?,
            "repl-diskless-sync-max-replicas" => {
                self.repl_diskless_sync_max_replicas = parse_int(v)?
            }
            "repl-ping-replica-period" => {
                let n: u64 = parse_int(v)?;
                if n == 0 {
                    return Err(ConfigError::OutOfRange);
                }
                self.repl_ping_replica_period = n;
            }
            "repl-backlog-ttl" => self.repl_backlog_ttl = parse_int(v)?,
            "repl-rdb-version" => {
                let n: u8 = parse_int(v)?;
                if !(9..=12).contains(&n) {
                    return Err(ConfigError::OutOfRange);
                }
                self.repl_rdb_version = n;
            }
            "repl-timeout" => {
                let n: u64 = parse_int(v)?;
                if n == 0 {
                    return Err(ConfigError::OutOfRange);
                }
                self.repl_timeout = n;
            }
            "repl-rdb-channel" => self.repl_rdb_channel = parse_bool(v)?,
            "dual-channel-replication-enabled" => self.dual_channel = parse_bool(v)?,
            "min-replicas-to-write" => self.min_replicas_to_write = parse_int(v)?,
            "min-replicas-max-lag" => self.min_replicas_max_lag = parse_int(v)?,
            "replica-read-only" => self.replica_read_only = parse_bool(v)?,
            "replica-serve-stale-data" => self.replica_serve_stale_data = parse_bool(v)?,
            "replica-unknown-command-policy" => {
                self.replica_unknown_command_stop = match v.to_ascii_lowercase().as_str() {
                    "stop" => true,
                    "continue" => false,
                    _ => {
                        return Err(ConfigError::Invalid(
                            "argument must be 'stop' or 'continue'",
                        ))
                    }
                }
            }
            "replica-priority" => self.replica_priority = parse_int(v)?,
            _ => return Err(ConfigError::Unknown),
        }
        Ok(())
    }

    /// The value CONFIG GET reports for a canonical option name.
    pub fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "port" => self.port.to_string(),
            "bind" => self.bind.clone(),
            "dir" => self.dir.clone(),
            "dbfilename" => self.dbfilename.clone(),
            "databases" => self.databases.to_string(),
            "replicaof" => match &self.replicaof {
                Some((h, p)) => format!("{h} {p}"),
                None => String::new(),
            },
            "masterauth" => self.masterauth.clone().unwrap_or_default(),
            "masteruser" => self.masteruser.clone().unwrap_or_default(),
            "requirepass" => self.requirepass.clone().unwrap_or_default(),
            "repl-backlog-size" => self.repl_backlog_size.to_string(),
            "repl-diskless-sync" => yes_no(self.repl_diskless_sync),
            "repl-diskless-sync-delay" => self.repl_diskless_sync_delay.to_string(),
            "repl-diskless-sync-max-replicas" => self.repl_diskless_sync_max_replicas.to_string(),
            "repl-ping-replica-period" => self.repl_ping_replica_period.to_string(),
            "repl-backlog-ttl" => self.repl_backlog_ttl.to_string(),
            "client-output-buffer-limit" => {
                let (h, s, t) = self.replica_obuf;
                format!("normal 0 0 0 slave {h} {s} {t} pubsub 33554432 8388608 60")
            }
            "repl-rdb-version" => self.repl_rdb_version.to_string(),
            "repl-timeout" => self.repl_timeout.to_string(),
            "repl-rdb-channel" => yes_no(self.repl_rdb_channel),
            "dual-channel-replication-enabled" => yes_no(self.dual_channel),
            "min-replicas-to-write" => self.min_replicas_to_write.to_string(),
            "min-replicas-max-lag" => self.min_replicas_max_lag.to_string(),
            "replica-read-only" => yes_no(self.replica_read_only),
            "replica-serve-stale-data" => yes_no(self.replica_serve_stale_data),
            "replica-unknown-command-policy" => if self.replica_unknown_command_stop {
                "stop"
            } else {
                "continue"
            }
            .into(),
            "replica-priority" => self.replica_priority.to_string(),
            _ => return None,
        })
    }

    /// Whether `name` is a known option (after alias resolution).
    pub fn knows(name: &str) -> bool {
        NAMES.contains(&canonical(name).as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values() {
        assert_eq!(parse_memory("1mb"), Some(1 << 20));
        assert_eq!(parse_memory("1MB"), Some(1 << 20));
        assert_eq!(parse_memory("10kb"), Some(10 << 10));
        assert_eq!(parse_memory("2gb"), Some(2 << 30));
        assert_eq!(parse_memory("5k"), Some(5000));
        assert_eq!(parse_memory("12345"), Some(12345));
        assert_eq!(parse_memory("2x"), None);
        assert_eq!(parse_memory("mb"), None);
        assert_eq!(parse_memory("-1"), None);
    }

    #[test]
    fn flags() {
        let args = "--port 7000 --replicaof 10.0.0.1 6380 --repl-backlog-size 64mb \
                    --replica-read-only no --repl-diskless-sync no --masterauth pw";
        let c = Config::from_args(args.split(' ').map(String::from)).unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.replicaof, Some(("10.0.0.1".into(), 6380)));
        assert_eq!(c.repl_backlog_size, 64 << 20);
        assert!(!c.replica_read_only);
        assert!(!c.repl_diskless_sync);
        assert_eq!(c.masterauth.as_deref(), Some("pw"));
        assert!(Config::from_args(["--port".into(), "x".into()]).is_err());
        assert!(Config::from_args(["--nope".into(), "1".into()]).is_err());
        assert!(Config::from_args(["port".into()]).is_err());
    }

    #[test]
    fn runtime_set_and_get() {
        let mut c = Config::default();
        assert_eq!(
            c.set("port", &["1".into()], false),
            Err(ConfigError::Immutable)
        );
        c.set("slave-read-only", &["no".into()], false).unwrap();
        assert_eq!(c.value("replica-read-only").as_deref(), Some("no"));
        assert_eq!(
            c.set("repl-backlog-size", &["2x".into()], false),
            Err(ConfigError::NotMemory)
        );
        assert_eq!(c.value("repl-backlog-size").as_deref(), Some("1048576"));
    }
}
