//! Plumbing shared by both nodes and the demo's client: an accept loop, a request loop that
//! decodes commands with the crate's RESP decoder, and a blocking client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use respsync::resp::{self, Decoder, Frame};

/// Accepts connections on `listener` forever, serving each on its own thread with `serve`.
/// The threads end with the process (the demo exits when its story is told).
pub fn accept_loop<F>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) + Send + Sync + Clone + 'static,
{
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let serve = serve.clone();
            std::thread::spawn(move || serve(sock));
        }
    });
}

/// Reads requests (RESP arrays or inline commands) from `sock` and hands each one's
/// arguments to `handle`, which writes any reply itself. Ends when the peer closes, on a read
/// error, on a protocol error, or when `handle` returns `false`.
pub fn request_loop(mut sock: TcpStream, mut handle: impl FnMut(&mut TcpStream, &[Bytes]) -> bool) {
    let _ = sock.set_nodelay(true);
    let mut dec = Decoder::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        loop {
            match dec.decode_request(&mut buf) {
                Ok(Some(cmd)) if cmd.argv.is_empty() => {} // a bare newline: keepalive
                Ok(Some(cmd)) => {
                    if !handle(&mut sock, &cmd.argv) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let mut out = BytesMut::new();
                    resp::encode_error(format!("ERR Protocol error: {e}").as_bytes(), &mut out);
                    let _ = sock.write_all(&out);
                    return;
                }
            }
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

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

    /// `INFO replication` as `(field, value)` pairs.
    pub fn info(&mut self) -> Result<Vec<(String, String)>, String> {
        match self.call(&["INFO", "replication"])? {
            Frame::BulkString(text) => Ok(String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()),
            other => Err(format!("INFO replied {other:?}")),
        }
    }
}

/// Builds an `INFO` bulk reply from `name:value` lines.
pub fn info_reply(section: &str, fields: &[(&str, String)], out: &mut BytesMut) {
    let mut text = format!("# {section}\r\n");
    for (k, v) in fields {
        text.push_str(k);
        text.push(':');
        text.push_str(v);
        text.push_str("\r\n");
    }
    resp::encode_bulk(text.as_bytes(), out);
}
