//! `rdb-dump FILE|-` — streams an RDB file and prints one JSON object per key:
//! `{"db":0,"key":K,"type":T,"expire_ms":E|null,"value":V}`.
//!
//! `rdb-dump --stats FILE|-` prints a summary instead. `--allow-newer` parses files whose
//! version is newer than the newest the crate knows (refused by default). Exit status 0 only
//! if the file parsed whole with a valid checksum; errors name the byte offset. On a terminal,
//! long runs show progress on stderr.
//!
//! Input is read into reused blocks and pushed as `Bytes`, so keys and values stored raw
//! reach the output as slices of what was read (no copy, no allocation per key).

mod dump;
mod input;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use input::read_chunk;
use respsync::rdb::{Parser, ParserConfig, RdbEvent};

fn usage() -> ExitCode {
    eprintln!("usage: rdb-dump [--stats] [--allow-newer] FILE|-");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut stats = false;
    let mut config = ParserConfig::default();
    let mut path = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stats" => stats = true,
            "--allow-newer" => {
                config.allow_newer_versions(true);
            }
            "-h" | "--help" => return usage(),
            _ if path.is_none() => path = Some(arg),
            _ => return usage(),
        }
    }
    let Some(path) = path else { return usage() };
    match run(&path, stats, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdb-dump: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    path: &str,
    stats_mode: bool,
    config: ParserConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut input, total): (Box<dyn Read>, Option<u64>) = if path == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(path)?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let progress = io::stderr().is_terminal();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut parser = Parser::new(config);
    let mut dumper = dump::JsonDumper::new();
    let mut stats = dump::Stats::default();
    let mut buf = BytesMut::new();
    let mut read = 0u64;
    let mut keys = 0u64;
    let start = Instant::now();
    let mut next_report = start + Duration::from_millis(500);
    loop {
        let chunk = read_chunk(&mut input, &mut buf)?;
        let n = chunk.len();
        if n == 0 {
            parser.finish();
        } else {
            parser.push_bytes(chunk);
            read += n as u64;
        }
        loop {
            let ev = match parser.poll_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    if !stats_mode {
                        dumper.flush_complete(&mut out)?;
                    }
                    return Err(e.into());
                }
            };
            if matches!(ev, RdbEvent::KeyEnd) {
                keys += 1;
            }
            if stats_mode {
                stats.event(&ev);
            } else {
                dumper.event(&ev, &mut out)?;
            }
        }
        if progress && Instant::now() >= next_report {
            next_report += Duration::from_millis(500);
            let mib = read as f64 / (1 << 20) as f64;
            match total {
                Some(t) => eprint!(
                    "\r{mib:.1} / {:.1} MiB, {keys} keys",
                    t as f64 / (1 << 20) as f64
                ),
                None => eprint!("\r{mib:.1} MiB, {keys} keys"),
            }
        }
        if parser.is_done() || n == 0 {
            break;
        }
    }
    if progress && start.elapsed() >= Duration::from_millis(500) {
        eprintln!();
    }
    if !parser.is_done() {
        // finish() was called and no error came: cannot happen, but never claim success.
        return Err("incomplete file".into());
    }
    let trailing = parser.buffered() as u64 + drain_len(&mut input)?;
    if stats_mode {
        stats.print(&mut out, read)?;
    }
    dumper.flush(&mut out)?;
    if trailing > 0 {
        eprintln!(
            "rdb-dump: {path}: note: {trailing} bytes after the end of the RDB at offset {}",
            parser.offset()
        );
    }
    Ok(())
}

fn drain_len(input: &mut dyn Read) -> io::Result<u64> {
    io::copy(input, &mut io::sink())
}
