//! The fault table: each call site of the server and of the reactor made to
//! fail underneath with `strace -e inject`, in each configuration, and
//! what came of it. `scripts/faults.sh` runs this; RELIABILITY.md quotes it.
//!
//! ```text
//! cargo run --release -p demo-server --example faults            # every row, 3 configurations
//! cargo run --release -p demo-server --example faults -- --quick # dedicated mode only
//! ```
//!
//! An outcome is one of:
//!
//! * **recovered**: the server (or loop) healed: a fresh request is served,
//!   and no spin, fd leak or stall is left;
//! * **reported**: the client that met the failure was told (a 503, a clean
//!   close) or the caller got an error, the failure was counted, and the
//!   rest recovered;
//! * **exited**: a worker could not go on, and the process exited non-zero
//!   with a message naming it.
//!
//! Anything else (the injected call never failed, a silent stall, a spin, a
//! leaked fd, a hang, a crash) is a FAIL, and the program exits 1. strace
//! counts `when=N` per thread, so each scenario attaches to a warmed-up
//! server (or a thread of it) and names its calls, and each row checks in
//! strace's log that the intended call failed.

mod reactor_side;
mod server_side;

use std::process::Command;
use std::time::Duration;

use demo_server::launcher;
use reactor_side::{reactor_child, reactor_rows, run_reactor};
use server_side::{run_server, scenarios};

const SOON: Duration = Duration::from_secs(5);

/// A configuration of the server.
#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    args: &'static [&'static str],
}

const MODES: [Mode; 3] = [
    Mode { name: "dedicated", args: &[] },
    Mode { name: "shared", args: &["--timer-mode", "shared"] },
    Mode { name: "2 workers", args: &["--workers", "2"] },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Recovered,
    Reported,
    Exited,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::Reported => "reported",
            Outcome::Exited => "exited with message",
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("reactor-child") {
        return reactor_child(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0));
    }
    let quick = args.iter().any(|a| a == "--quick");
    if !Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: strace is not installed (apt install strace)");
        return;
    }
    let bin = launcher::binary().unwrap_or_else(|e| {
        eprintln!("faults: {e}");
        std::process::exit(2)
    });
    let modes: &[Mode] = if quick { &MODES[..1] } else { &MODES };
    let mut failed = 0;
    println!("| layer | call site | syscall | errno | configuration | outcome | what happened |");
    println!("|---|---|---|---|---|---|---|");
    for sc in scenarios() {
        for &mode in modes {
            if sc.only.is_some_and(|only| only != mode.name) {
                continue;
            }
            let (word, detail) = match run_server(&sc, mode, &bin) {
                Ok((outcome, detail)) => (outcome.word().to_string(), detail),
                Err(e) => {
                    failed += 1;
                    ("**FAIL**".to_string(), e)
                }
            };
            println!(
                "| server | {} | `{}` | {} | {} | {word} | {} |",
                sc.site,
                sc.syscall,
                sc.errno,
                mode.name,
                detail.replace('|', "/")
            );
        }
    }
    for (n, (site, syscall, errno, args)) in reactor_rows().into_iter().enumerate() {
        let (word, detail) = match run_reactor(n, &args) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                ("**FAIL**".to_string(), e)
            }
        };
        println!("| reactor | {site} | `{syscall}` | {errno} | both modes | {word} | {detail} |");
    }
    if failed > 0 {
        eprintln!("faults: {failed} row(s) failed");
        std::process::exit(1);
    }
}
