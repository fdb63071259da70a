//! One way to start a `demo-server` child and learn where it listens:
//! `leak-demo`, the fault scenarios, the benches and every test that starts
//! a server use this, so the banner has one reader and a child is never
//! left behind.
//!
//! # The banner contract
//!
//! `serve` prints, on stdout, before it accepts anything:
//!
//! ```text
//! demo-server listening on http://127.0.0.1:PORT/
//!   ...
//!   pid N, heartbeat every ..., timers ...
//! ```
//!
//! The first line's address is where a client connects (port 0 resolved;
//! for a wildcard bind, the loopback address of its family); the `pid N,`
//! line names the process. [`Banner`] parses both. Scripts rely on the same
//! two lines (`scripts/reliability.py`, `scripts/trace-path.sh`).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::ProcessStats;

/// The start of the banner's first line; the address follows.
pub const LISTENING: &str = "demo-server listening on http://";

/// How long a server may take to print its banner.
const START_LIMIT: Duration = Duration::from_secs(10);

/// What the banner says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The server's pid, from its `pid N,` line.
    pub pid: Option<u32>,
    /// The banner as printed, up to the `pid` line.
    pub text: String,
}

impl Banner {
    /// The address in a `demo-server listening on http://ADDR/` line.
    pub fn listening(line: &str) -> Option<SocketAddr> {
        let rest = line.trim().strip_prefix(LISTENING)?;
        rest.split('/').next()?.parse().ok()
    }

    /// The pid in a `  pid N, ...` line.
    pub fn pid(line: &str) -> Option<u32> {
        line.trim().strip_prefix("pid ")?.split(',').next()?.parse().ok()
    }

    /// Read lines from `out` up to the first one, and return its address:
    /// for servers that print only that line (the benches' peers).
    pub fn read_address(out: &mut impl BufRead) -> Result<SocketAddr, String> {
        let mut line = String::new();
        loop {
            line.clear();
            match out.read_line(&mut line) {
                Ok(0) | Err(_) => return Err("the server exited before listening".into()),
                Ok(_) => {}
            }
            if let Some(addr) = Banner::listening(&line) {
                return Ok(addr);
            }
        }
    }

    /// Read a banner from `out`: lines up to and including the `pid` line
    /// (or the end, if there is none).
    pub fn read(out: &mut impl BufRead) -> Result<Banner, String> {
        let mut text = String::new();
        let mut addr = None;
        loop {
            let mut line = String::new();
            match out.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            text.push_str(&line);
            addr = addr.or_else(|| Banner::listening(&line));
            if let (Some(addr), Some(pid)) = (addr, Banner::pid(&line)) {
                return Ok(Banner { addr, pid: Some(pid), text });
            }
        }
        match addr {
            Some(addr) => Ok(Banner { addr, pid: None, text }),
            None => Err(format!("the server printed no banner before exiting:\n{text}")),
        }
    }
}

/// The `demo-server` binary: the running one if it is demo-server itself
/// (`leak-demo` starts a copy of itself), else the one cargo built next to
/// the running program (tests, benches and examples live one or two
/// directories below it).
pub fn binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    if exe.file_name().is_some_and(|n| n == "demo-server") {
        return Ok(exe);
    }
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("demo-server"))
        .find(|bin| bin.is_file())
        .ok_or_else(|| {
            format!(
                "no demo-server binary near {}: build it first (cargo build -p demo-server)",
                exe.display()
            )
        })
}

/// A child process, killed and reaped when dropped: a server that may fail
/// before its banner, or any command a test must not leave behind.
#[derive(Debug)]
pub struct Process {
    /// The child.
    pub child: Child,
    /// Its stderr as read so far, once [`drain_stderr`](Self::drain_stderr) runs.
    drained: Option<std::sync::Arc<std::sync::Mutex<String>>>,
}

impl Process {
    /// Start `cmd`, with stdout and stderr piped.
    pub fn spawn(mut cmd: Command) -> Result<Process, String> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        Ok(Process { child, drained: None })
    }

    /// Keep reading its stderr on a thread, so a chatty child never blocks
    /// on a full pipe; [`stderr`](Self::stderr) then returns what came so far.
    pub fn drain_stderr(&mut self) {
        let Some(mut pipe) = self.child.stderr.take() else { return };
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
                sink.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        self.drained = Some(text);
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (bounded) for it to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// Everything on its stderr: read once it has exited or closed stderr,
    /// or what the drain has read so far.
    pub fn stderr(&mut self) -> String {
        if let Some(text) = &self.drained {
            return text.lock().unwrap_or_else(|p| p.into_inner()).clone();
        }
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            // A read error ends the text there: what came before is kept.
            let _partial_is_kept = e.read_to_string(&mut text);
        }
        text
    }

    /// Send it `signal`.
    pub fn signal(&self, signal: rustix::process::Signal) -> std::io::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32)
            .ok_or_else(|| std::io::Error::other("no pid"))?;
        Ok(rustix::process::kill_process(pid, signal)?)
    }

    /// Its CPU time so far (user + system), from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Option<Duration> {
        ProcessStats::of(self.pid()).map(|p| Duration::from_secs_f64(p.cpu_seconds))
    }
}

impl From<Child> for Process {
    /// Take charge of a child started elsewhere: it is killed when dropped.
    fn from(child: Child) -> Process {
        Process { child, drained: None }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Already exited: kill says so, and wait reaps it either way.
        let _exited_already = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// A running `demo-server serve` on a free loopback port, killed when
/// dropped.
#[derive(Debug)]
pub struct Server {
    /// The child.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pid.
    pub pid: u32,
    /// Its banner.
    pub banner: String,
}

impl Server {
    /// Start `demo-server serve --addr 127.0.0.1:0 ARGS...` (binary `bin`,
    /// extra environment `env`; an `--addr` among `args` replaces the
    /// default) and wait for its banner. A lower fd limit is `--fd-limit N`
    /// among `args`: the server sets it itself, so no code runs between
    /// fork and exec.
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        let mut cmd = Command::new(bin);
        cmd.envs(env.iter().copied()).arg("serve");
        if !args.contains(&"--addr") {
            cmd.args(["--addr", "127.0.0.1:0"]);
        }
        cmd.args(args);
        let mut process = Process::spawn(cmd)?;
        process.drain_stderr();
        let stdout = process.child.stdout.take().ok_or("no stdout")?;
        // Read the banner on a thread, so a server that hangs before it is
        // bounded by START_LIMIT; it then drains stdout, so the child never
        // blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            // The receiver is gone only if the start timed out.
            let _nobody_waits = tx.send(Banner::read(&mut out));
            let mut sink = Vec::new();
            let _drained = out.read_to_end(&mut sink);
        });
        let banner = match rx.recv_timeout(START_LIMIT) {
            Ok(Ok(banner)) => banner,
            Ok(Err(e)) => {
                // Exited: its stderr says why.
                process.wait_exit(Duration::from_secs(1));
                return Err(format!("{e}{}", process.stderr()));
            }
            Err(_) => return Err(format!("no banner within {START_LIMIT:?}")),
        };
        let pid = process.pid();
        Ok(Server { process, addr: banner.addr, pid, banner: banner.text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_contract() {
        let text = "demo-server listening on http://127.0.0.1:8080/\n  dashboard: http://127.0.0.1:8080/\n  pid 4242, heartbeat every 1s, timers dedicated\n";
        let b = Banner::read(&mut text.as_bytes()).unwrap();
        assert_eq!(b.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(b.pid, Some(4242));
        let v6 =
            "demo-server listening on http://[::1]:9/ (and every other address: --addr [::]:9)";
        assert_eq!(Banner::listening(v6), Some("[::1]:9".parse().unwrap()));
        assert!(Banner::read(&mut "error: nope\n".as_bytes()).is_err());
    }
}
