//! A small Redis-compatible server built on respsync, in both roles (see `app.rs` for the
//! layout).
//!
//! ```text
//! cargo run --example server -- --port 6380 --replicaof 127.0.0.1 6379
//! ```

#[path = "app.rs"]
mod app;

fn main() {
    let cfg = match app::Config::from_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR ***\n{e}");
            std::process::exit(1);
        }
    };
    let addr = format!("{}:{}", cfg.bind, cfg.port);
    if let Err(e) = app::start(cfg) {
        eprintln!("Could not create server TCP listening socket {addr}: {e}");
        std::process::exit(1);
    }
    loop {
        std::thread::park();
    }
}
