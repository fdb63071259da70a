//! `serve`: listeners, worker threads, and shutdown on SIGINT/SIGTERM.
//!
//! The main thread blocks SIGINT and SIGTERM (through the reactor's signal
//! source) before it spawns any worker, so the workers inherit the blocked
//! mask and the signals can only arrive at the main thread's signalfd. On a
//! signal it sets the shutdown flag and wakes every worker with its waker.
//!
//! Shutdown as clients see it: each worker ends its streams with an
//! `event: shutdown` carrying `retry: 250`, and keeps accepting while the
//! clients come back; their stream requests get 204 No Content, which makes
//! EventSource stop reconnecting for good. A worker that ended streams stays
//! for a reconnect window (1 s; `Config::shutdown_grace` at most), then
//! closes the listener and its remaining connections.
//!
//! A worker that ends unasked (a panic, a reactor error) must not leave a
//! zombie server that holds the port and answers nobody: each worker thread
//! carries a guard that wakes the main thread when the thread ends, by
//! return or by unwinding. The main thread then says which worker ended and
//! why, lets the others drain, and `serve` returns an error, so the process
//! exits non-zero and a supervisor can restart it. (For the tests, the
//! environment variable `DEMO_SERVER_TEST_PANIC=1` makes worker 0 panic on
//! its first connection.)

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reactor::{Reactor, Signal, TimerMode, Waker};
use rustix::io::fcntl_dupfd_cloexec;
use rustix::net::{
    AddressFamily, SocketFlags, SocketType, bind, getsockname, listen, socket_with, sockopt,
};
use rustix::process::{Resource, Rlimit, setrlimit};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::procfs::nofile;
use crate::worker::Worker;

/// Why `serve` could not start or keep running.
#[derive(Debug)]
pub enum ServeError {
    /// A setting is out of range (see [`Config::validate`]).
    Setting(crate::config::SettingError),
    /// Creating, binding or listening on a socket failed.
    Listen(SocketAddr, rustix::io::Errno),
    /// The reactor failed.
    Reactor(reactor::Error),
    /// A worker thread could not be started, or panicked.
    Worker(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Listen(addr, e) if *e == rustix::io::Errno::ADDRINUSE => write!(
                f,
                "cannot listen on {addr}: address in use (another demo-server? try --addr 127.0.0.1:0 for any free port)"
            ),
            ServeError::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServeError::Setting(e) => write!(f, "{e}"),
            ServeError::Reactor(e) => write!(f, "reactor: {e}"),
            ServeError::Worker(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<reactor::Error> for ServeError {
    fn from(e: reactor::Error) -> Self {
        ServeError::Reactor(e)
    }
}

/// Set the soft `RLIMIT_NOFILE` to `wanted` (`--fd-limit`, checked against
/// the hard limit by `Config::validate`), or raise it to the hard limit.
/// Returns the soft limit now in force.
pub fn set_fd_limit(wanted: Option<u64>) -> u64 {
    let Some(wanted) = wanted else { return raise_fd_limit() };
    let hard = nofile().1;
    let limit = Rlimit { current: Some(wanted.min(hard)), maximum: Some(hard) };
    match setrlimit(Resource::Nofile, limit) {
        Ok(()) => wanted.min(hard),
        Err(_) => nofile().0,
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let (soft, hard) = nofile();
    if soft < hard {
        let limit = Rlimit { current: Some(hard), maximum: Some(hard) };
        if setrlimit(Resource::Nofile, limit).is_ok() {
            return hard;
        }
    }
    soft
}

/// The one nonblocking listening socket, shared by every worker (each gets a
/// `dup` to register in its own epoll). No `SO_REUSEPORT`, so a second
/// instance on the same port fails with `EADDRINUSE` instead of silently
/// taking half the clients.
fn listener(addr: SocketAddr) -> Result<OwnedFd, ServeError> {
    let fail = |e| ServeError::Listen(addr, e);
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd =
        socket_with(family, SocketType::STREAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)
            .map_err(fail)?;
    sockopt::set_socket_reuseaddr(&fd, true).map_err(fail)?;
    bind(&fd, &addr).map_err(fail)?;
    listen(&fd, 1024).map_err(fail)?;
    Ok(fd)
}

/// Run the server until SIGINT or SIGTERM, then shut down cleanly.
pub fn serve(mut cfg: Config) -> Result<(), ServeError> {
    cfg.validate().map_err(ServeError::Setting)?;
    let fd_limit = set_fd_limit(cfg.fd_limit);
    crate::procfs::init();
    cfg.workers = cfg.workers.max(1);

    // Signals first: blocked here, so every thread spawned below inherits
    // the blocked mask and only this thread's signalfd sees them.
    let main = Reactor::new()?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let wakers: Arc<std::sync::Mutex<Vec<Waker>>> = Arc::default();
    let (flag, all) = (shutdown.clone(), wakers.clone());
    let _signals = main.add_signals(&[Signal::INT, Signal::TERM], move |ctx, info| {
        crate::errln!("demo-server: {} from pid {}: shutting down", info.signal, info.pid);
        flag.store(true, Relaxed);
        wake_all(&all);
        ctx.stop();
    })?;

    let first = listener(cfg.addr)?;
    // Where it really listens (port 0 resolved); a bound socket always has one.
    let local = getsockname(&first)
        .map_err(|e| ServeError::Listen(cfg.addr, e))?
        .try_into()
        .map_err(|_| ServeError::Listen(cfg.addr, rustix::io::Errno::AFNOSUPPORT))?;
    let mut listeners = Vec::with_capacity(cfg.workers);
    for _ in 1..cfg.workers {
        let dup = fcntl_dupfd_cloexec(&first, 0).map_err(|e| ServeError::Listen(local, e))?;
        listeners.push(dup);
    }
    listeners.insert(0, first);
    cfg.addr = local;

    let cfg = Arc::new(cfg);
    let leaks = Arc::new(crate::debug_fds::Leaks::default());
    let (period, idle) = (crate::census::PERIOD, crate::census::IDLE_PERIOD);
    let budget = cfg.max_buffered / 2;
    let census = crate::census::Census::start_with_debug(period, idle, leaks.clone(), budget)
        .map_err(|e| ServeError::Worker(e.to_string()))?;
    let metrics = Arc::new(Metrics::new(cfg.workers, cfg.timer_mode, census, leaks));
    let (tx, rx) = mpsc::channel::<Result<Waker, reactor::Error>>();
    let ended = Arc::new(AtomicBool::new(false));
    let main_waker = main.waker()?;
    let mut threads = Vec::new();
    for (index, fd) in listeners.into_iter().enumerate() {
        let (cfg, metrics, shutdown, tx) =
            (cfg.clone(), metrics.clone(), shutdown.clone(), tx.clone());
        let guard = EndGuard { ended: ended.clone(), main: main_waker.clone() };
        let spawned =
            std::thread::Builder::new().name(format!("worker-{index}")).spawn(move || {
                let _guard = guard;
                // A send fails only if `serve` stopped listening, having
                // given up already: then nobody is left to tell.
                let made = Reactor::<Worker>::try_new().and_then(|r| r.waker().map(|w| (r, w)));
                let (reactor, waker) = match made {
                    Ok(made) => made,
                    Err(e) => {
                        let _serve_gave_up = tx.send(Err(e));
                        return Err(e);
                    }
                };
                // Ready once it listens: `serve` waits for every worker.
                let told = std::cell::Cell::new(false);
                let ready = || {
                    told.set(true);
                    let _serve_gave_up = tx.send(Ok(waker));
                };
                let result =
                    crate::worker::run(index, cfg, metrics, fd, &shutdown, &reactor, ready);
                if let (Err(e), false) = (&result, told.get()) {
                    let _serve_gave_up = tx.send(Err(*e));
                }
                result
            });
        threads.push(spawned.map_err(|e| ServeError::Worker(e.to_string()))?);
    }
    drop(tx);
    for _ in 0..threads.len() {
        match rx.recv() {
            Ok(Ok(w)) => wakers.lock().unwrap_or_else(|p| p.into_inner()).push(w),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    // Every worker listens: the first census counts their fds, and only now
    // does the banner say where to connect.
    metrics.census_now();
    banner(&cfg, fd_limit);
    // A signal that arrived before the wakers were registered set the flag;
    // wake everyone once more so nobody sleeps through it.
    main.run_until_timeout(Duration::MAX, || shutdown.load(Relaxed) || ended.load(Relaxed))?;
    let unasked = !shutdown.swap(true, Relaxed);
    wake_all(&wakers);
    if unasked {
        return Err(worker_ended(threads, cfg.shutdown_grace + Duration::from_secs(1)));
    }
    for t in threads {
        match t.join() {
            Ok(result) => result?,
            Err(_) => return Err(ServeError::Worker("a worker panicked".into())),
        }
    }
    crate::errln!("demo-server: all streams closed, exiting");
    Ok(())
}

/// Wake every worker to look at the shutdown flag. A worker whose wake
/// fails is said so on stderr: it then notices at its next event, and the
/// shutdown's grace period ends it either way.
fn wake_all(wakers: &std::sync::Mutex<Vec<Waker>>) {
    for (i, w) in wakers.lock().unwrap_or_else(|p| p.into_inner()).iter().enumerate() {
        if let Err(e) = w.wake() {
            crate::errln!("demo-server: cannot wake worker-{i} for the shutdown ({e})");
        }
    }
}

/// Marks, when dropped (return or unwinding), that a worker thread ended,
/// and wakes the main thread to look.
struct EndGuard {
    ended: Arc<AtomicBool>,
    main: Waker,
}

impl Drop for EndGuard {
    /// If the main thread cannot be woken, nobody would notice this worker
    /// ended: the process would live on with its port half-deaf. So this
    /// thread takes the process down itself, saying which worker and why.
    fn drop(&mut self) {
        self.ended.store(true, Relaxed);
        if let Err(e) = self.main.wake() {
            let name = std::thread::current().name().unwrap_or("a worker").to_string();
            let how = if std::thread::panicking() { "panicked" } else { "ended" };
            crate::errln!(
                "demo-server: {name} {how}, and waking the main thread to report it failed ({e}); exiting so that a supervisor can restart the server"
            );
            reactor::trace::chrome::flush(); // exit runs no destructor
            std::process::exit(1);
        }
    }
}

type WorkerThread = JoinHandle<Result<(), reactor::Error>>;

/// A worker ended before any shutdown: say which and why, give the others
/// up to `grace` to drain (they have been told to), and return the error.
fn worker_ended(threads: Vec<WorkerThread>, grace: Duration) -> ServeError {
    let mut reasons = Vec::new();
    let deadline = Instant::now() + grace;
    let mut pending: Vec<(usize, WorkerThread)> = threads.into_iter().enumerate().collect();
    loop {
        let (done, rest): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(_, t)| t.is_finished());
        pending = rest;
        for (index, t) in done {
            let why = match t.join() {
                Ok(Ok(())) => continue, // drained after being told to stop
                Ok(Err(e)) => format!("failed: reactor: {e}"),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-text payload".into());
                    format!("panicked: {msg}")
                }
            };
            reasons.push(format!("worker-{index} {why}"));
        }
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if reasons.is_empty() {
        reasons.push("a worker ended before any shutdown was asked for".into());
    }
    reasons.push("exiting so that a supervisor can restart the server".into());
    ServeError::Worker(reasons.join("; "))
}

/// Where a browser or curl on this host reaches `addr`: itself, or for a
/// wildcard bind (`0.0.0.0`, `[::]`) the loopback address of its family,
/// which a browser can open.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, addr.port())
}

/// The banner (its first line and its `pid` line are a contract: see
/// [`launcher`](crate::launcher)).
fn banner(cfg: &Config, fd_limit: u64) {
    let url = format!("http://{}/", reachable(cfg.addr));
    let mode = match cfg.timer_mode {
        TimerMode::Dedicated => "dedicated (one timerfd per heartbeat)",
        TimerMode::Shared => "shared (heartbeats in one heap on one timerfd)",
    };
    if cfg.addr.ip().is_unspecified() {
        crate::outln!(
            "{}{}/ (and every other address of this host: --addr {})",
            crate::launcher::LISTENING,
            reachable(cfg.addr),
            cfg.addr
        );
    } else {
        crate::outln!("{}{}/", crate::launcher::LISTENING, cfg.addr);
    }
    crate::outln!("  dashboard: {url}");
    crate::outln!("  fixed stream: curl -N {url}stream/fixed");
    if cfg.leaky_route {
        crate::outln!(
            "  leaky stream: curl -N {url}stream/leaky   (at most {} leaked timers: --max-orphans)",
            cfg.max_orphans
        );
    } else {
        crate::outln!("  leaky stream: turned off (--no-leaky)");
    }
    crate::outln!("  metrics:      curl -s {url}metrics");
    crate::outln!(
        "  pid {}, heartbeat every {:?}, timers {mode}",
        std::process::id(),
        cfg.interval
    );
    crate::outln!(
        "  {} worker(s), max {} connections, fd limit {fd_limit}; watch it with: ls -l /proc/{}/fd | grep -c timerfd",
        cfg.workers,
        cfg.max_conns,
        std::process::id()
    );
}
