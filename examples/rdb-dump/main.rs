//! `rdb-dump FILE|-` — streams an RDB file and prints one JSON object per key:
//! `{"db":0,"key":K,"type":T,"expire_ms":E|null,"value":V}`.
//!
//! `rdb-dump --stats FILE|-` prints a summary instead. `--allow-newer` parses files whose
//! version is newer than the newest the crate knows (refused by default). Exit status 0 only
//! if the file parsed whole with a valid checksum; errors name the byte offset. On a terminal,
//! long runs show progress on stderr.
//!
//! Input is read into one reused buffer and parsed in place with `Parser::feed_with` and a
//! borrowing `Visitor` (the parser's fastest path: no copy, no allocation per key).
//! `--stats` turns on lazy values: every figure it prints (a compressed string's length, a
//! container's size and element count) comes from headers, so nothing is decompressed; it
//! checks the file's structure and checksum, not the inside of packed values. JSON holds at
//! most 1 MiB of a string value: a longer one is written as base64 while it is read.

mod dump;
mod input;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use input::{read_full, READ_SIZE};
use respsync::rdb::{Parser, ParserConfig};

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
    mut config: ParserConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut input, total): (Box<dyn Read>, Option<u64>) = if path == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(path)?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    // --stats reads every figure from headers: values stay undecoded.
    config.lazy_values(stats_mode);
    let progress = io::stderr().is_terminal();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut parser = Parser::new(config);
    let mut dumper = dump::JsonDumper::new();
    let mut stats = dump::Stats::default();
    let mut buf = vec![0u8; READ_SIZE];
    let mut read = 0u64;
    let start = Instant::now();
    let mut next_report = start + Duration::from_millis(500);
    loop {
        let n = read_full(&mut input, &mut buf)?;
        let piece = &buf[..n];
        // The borrowing visitor over the read buffer: the parser's fastest path.
        let res = if stats_mode {
            if n == 0 {
                parser.finish();
                parser.parse_with(&mut stats)
            } else {
                parser.feed_with(piece, &mut stats)
            }
        } else {
            let mut v = dump::JsonVisitor {
                dumper: &mut dumper,
                w: &mut out,
                error: None,
            };
            let res = if n == 0 {
                parser.finish();
                parser.parse_with(&mut v)
            } else {
                parser.feed_with(piece, &mut v)
            };
            if let Some(e) = v.error {
                return Err(e.into());
            }
            res
        };
        read += n as u64;
        if let Err(e) = res {
            if !stats_mode {
                dumper.flush_complete(&mut out)?;
            }
            return Err(e.into());
        }
        if let Some(e) = stats.error.take() {
            return Err(e.into());
        }
        if progress && Instant::now() >= next_report {
            next_report += Duration::from_millis(500);
            let mib = read as f64 / (1 << 20) as f64;
            match total {
                Some(t) => eprint!("\r{mib:.1} / {:.1} MiB", t as f64 / (1 << 20) as f64),
                None => eprint!("\r{mib:.1} MiB"),
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
    let trailing = parser.remaining().len() as u64 + drain_len(&mut input)?;
    if stats_mode {
        stats.print(&mut out, read - parser.remaining().len() as u64)?;
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
