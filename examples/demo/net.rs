//! The demo's client: a blocking RESP client on the crate's codec, as `redis-cli` would be.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use respsync::resp::{self, Decoder, Frame};

/// A blocking RESP client, as `redis-cli` would be: sends a command, waits for one reply.
pub struct Client {
    sock: TcpStream,
    dec: Decoder,
    buf: BytesMut,
}

impl Client {
    /// Connects to `addr`; every reply must arrive within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Client> {
        let sock = TcpStream::connect_timeout(&addr, timeout)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_nodelay(true)?;
        Ok(Client {
            sock,
            dec: Decoder::default(),
            buf: BytesMut::new(),
        })
    }

    /// Sends `argv` and returns the reply frame.
    pub fn call(&mut self, argv: &[&str]) -> Result<Frame, String> {
        let mut out = BytesMut::new();
        resp::encode_command(argv, &mut out);
        self.sock
            .write_all(&out)
            .map_err(|e| format!("write {argv:?}: {e}"))?;
        let mut chunk = [0u8; 4096];
        loop {
            match self.dec.decode(&mut self.buf) {
                Ok(Some(d)) => return Ok(d.frame),
                Ok(None) => {}
                Err(e) => return Err(format!("bad reply to {argv:?}: {e}")),
            }
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(format!("connection closed waiting for {argv:?}")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("no reply to {argv:?}: {e}")),
            }
        }
    }

    /// `INFO <section>` as `(field, value)` pairs.
    pub fn info(&mut self, section: &str) -> Result<Vec<(String, String)>, String> {
        match self.call(&["INFO", section])? {
            Frame::BulkString(text) => Ok(String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()),
            other => Err(format!("INFO replied {other:?}")),
        }
    }
}
