//! A tiny blocking RESP client for tests, built on the crate's own encoder and decoder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use respsync::resp::{encode_command, Decoder, Frame};

/// One connection to a server on 127.0.0.1, with a decoder over its input.
pub struct Conn {
    /// The socket (tests write raw bytes to it now and then).
    pub sock: TcpStream,
    /// The decoder for everything read.
    pub dec: Decoder,
    /// Bytes read and not decoded yet.
    pub buf: BytesMut,
}

fn show<A: AsRef<[u8]>>(argv: &[A]) -> Vec<String> {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .collect()
}

impl Conn {
    /// Connects, with a 30 s read timeout.
    pub fn try_open(port: u16) -> std::io::Result<Conn> {
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        sock.set_nodelay(true)?;
        Ok(Conn {
            sock,
            dec: Decoder::default(),
            buf: BytesMut::new(),
        })
    }

    /// Connects or panics.
    pub fn open(port: u16) -> Conn {
        Conn::try_open(port).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
    }

    /// Sends one command without reading the reply.
    pub fn send<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        let mut out = BytesMut::new();
        encode_command(argv, &mut out);
        self.sock.write_all(&out).expect("write command");
    }

    /// Reads more bytes into `buf`; panics on timeout or a closed connection.
    pub fn fill(&mut self) {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.sock.read(&mut chunk).expect("read reply (timed out?)");
        assert!(n > 0, "connection closed while waiting for a reply");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Reads one reply (skipping keepalive newlines a master may send).
    pub fn read(&mut self) -> Frame {
        loop {
            self.dec.skip_keepalives(&mut self.buf);
            if let Some(d) = self.dec.decode(&mut self.buf).expect("valid RESP reply") {
                return d.frame;
            }
            self.fill();
        }
    }

    /// Sends one command and reads one reply; an IO error, a closed connection or bytes that
    /// are not RESP are an `Err` (for probing a server that may not be up yet).
    pub fn try_cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> std::io::Result<Frame> {
        let mut out = BytesMut::new();
        encode_command(argv, &mut out);
        self.sock.write_all(&out)?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            self.dec.skip_keepalives(&mut self.buf);
            match self.dec.decode(&mut self.buf) {
                Ok(Some(d)) => return Ok(d.frame),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let n = self.sock.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command and reads its reply, whatever it is (errors included).
    pub fn cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Frame {
        self.send(argv);
        self.read()
    }

    /// Like [`Conn::cmd`], but an error reply is a panic. (Byte-slice arguments, so that
    /// literals of different lengths mix: `c.must(&[b"GET", key])`.)
    pub fn must(&mut self, argv: &[&[u8]]) -> Frame {
        match self.cmd(argv) {
            Frame::Error(e) | Frame::BulkError(e) => {
                panic!("{:?} -> {}", show(argv), String::from_utf8_lossy(&e))
            }
            f => f,
        }
    }

    /// Runs a command written as one space-separated line; an error reply is a panic.
    pub fn run(&mut self, line: &str) -> Frame {
        let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.must(&argv)
    }

    /// Sends many commands in one pipeline and reads every reply.
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> Vec<Frame> {
        let mut out = BytesMut::new();
        for c in cmds {
            encode_command(c, &mut out);
        }
        self.sock.write_all(&out).expect("write pipeline");
        cmds.iter().map(|_| self.read()).collect()
    }

    /// Sends many commands in one pipeline; an error reply to any of them is a panic.
    pub fn pipeline_ok(&mut self, cmds: &[Vec<Vec<u8>>]) {
        for (cmd, reply) in cmds.iter().zip(self.pipeline(cmds)) {
            if let Frame::Error(e) = reply {
                panic!(
                    "{:?} failed: {}",
                    String::from_utf8_lossy(&cmd.concat()),
                    String::from_utf8_lossy(&e)
                );
            }
        }
    }

    /// Runs a command that must not fail (any non-error reply).
    pub fn ok<A: AsRef<[u8]>>(&mut self, argv: &[A]) {
        match self.cmd(argv) {
            Frame::SimpleString(_) | Frame::Integer(_) | Frame::BulkString(_) | Frame::Array(_) => {
            }
            f => panic!("{:?} failed: {f:?}", show(argv)),
        }
    }

    /// Runs a command whose reply is a bulk string, as text.
    pub fn bulk_text<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> String {
        match self.cmd(argv) {
            Frame::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            f => panic!("expected a bulk string, got {f:?}"),
        }
    }

    /// Runs a command whose reply is an integer.
    pub fn int<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> i64 {
        match self.cmd(argv) {
            Frame::Integer(i) => i,
            f => panic!("expected an integer, got {f:?}"),
        }
    }

    /// One field of `INFO <section>`, if present.
    pub fn info(&mut self, section: &str, field: &str) -> Option<String> {
        let text = self.bulk_text(&["INFO", section]);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
    }

    /// An integer field of `INFO <section>`; panics when it is missing.
    pub fn info_i64(&mut self, section: &str, field: &str) -> i64 {
        self.info(section, field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("INFO {section} has no integer field {field}"))
    }
}

/// Accessors that panic when a reply has another shape.
pub trait FrameExt {
    /// The bytes of a bulk or simple string.
    fn bytes(&self) -> Vec<u8>;
    /// The elements of an array.
    fn array(&self) -> &[Frame];
    /// The value of an integer.
    fn int(&self) -> i64;
}

impl FrameExt for Frame {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Frame::BulkString(b) | Frame::SimpleString(b) => b.to_vec(),
            other => panic!("not a string reply: {other:?}"),
        }
    }
    fn array(&self) -> &[Frame] {
        match self {
            Frame::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }
    fn int(&self) -> i64 {
        match self {
            Frame::Integer(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }
}
