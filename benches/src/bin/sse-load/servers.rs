//! The servers under load: the demo server in either mode, the axum peer,
//! and the C floor (`scripts/sse-floor.c`, compiled here), each started as
//! a child and known by its banner.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::parse_ms;

use demo_server::launcher::{Banner, Process};

/// Compile `scripts/sse-floor.c` next to this binary with the system `gcc`.
pub fn build_floor() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let here = exe.parent().ok_or("no exe dir")?;
    let root = here.ancestors().nth(3).ok_or("no repository root")?;
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(here.join("sse-floor"))
        .arg(root.join("scripts/sse-floor.c"))
        .status()
        .map_err(|e| format!("gcc: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("gcc: {status}")) }
}

/// The binary and arguments for a server name.
pub fn server_command(name: &str, interval: &str) -> Result<(PathBuf, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let here = exe.parent().ok_or("no exe dir")?.to_path_buf(); // benches/target/release
    let root = here.ancestors().nth(3).ok_or("no repository root")?.to_path_buf();
    let demo = root.join("target/release/demo-server");
    let args = |mode: &str| {
        ["--addr", "127.0.0.1:0", "--interval", interval, "--timer-mode", mode]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    match name {
        "demo-dedicated" => Ok((demo, args("dedicated"))),
        "demo-shared" => Ok((demo, args("shared"))),
        "axum" => Ok((here.join("axum-sse"), vec!["--interval".into(), interval.into()])),
        "c-dedicated" | "c-shared" => {
            let ms = parse_ms(interval).ok_or(format!("--interval {interval}: not NNms or Ns"))?;
            let mode = name.trim_start_matches("c-").to_string();
            Ok((here.join("sse-floor"), vec![mode, ms.to_string()]))
        }
        other => Err(format!("unknown server {other}")),
    }
}

/// Start a server and read where it listens: every contender prints the
/// demo server's banner line, read by the demo server's own launcher.
pub fn spawn_server(name: &str, interval: &str) -> Result<(Process, SocketAddr, u32), String> {
    let (bin, args) = server_command(name, interval)?;
    let mut cmd = Command::new(&bin);
    cmd.args(&args);
    let mut server =
        Process::spawn(cmd).map_err(|e| format!("{e} (build it first: see the file's docs)"))?;
    server.drain_stderr();
    let mut out = BufReader::new(server.child.stdout.take().ok_or("no stdout")?);
    let addr = Banner::read_address(&mut out)?;
    std::thread::spawn(move || out.lines().for_each(drop));
    let pid = server.pid();
    Ok((server, addr, pid))
}
