//! Server settings and the duration syntax of the command line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use reactor::TimerMode;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port (printed at start).
    pub addr: SocketAddr,
    /// Heartbeat period of the stream routes.
    pub interval: Duration,
    /// Mode of the heartbeat timers. Housekeeping timers (header deadline,
    /// keep-alive idle, stats) are always shared: they are many and short-lived.
    pub timer_mode: TimerMode,
    /// Connections served at once, over all workers; more get 503.
    pub max_conns: usize,
    /// Reactor threads; they share one listening socket.
    pub workers: usize,
    /// Time allowed for a request head to arrive (slowloris cut-off): 408.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Bytes a connection may have queued for a slow reader before it is cut;
    /// also the socket's `SO_SNDBUF` (the kernel doubles it).
    ///
    /// It bounds the queue's capacity, not only its length, so the worst
    /// case memory is known in advance:
    ///
    /// ```text
    /// RSS <= base + max_conns * (max_buffered + 64 KiB + 1 KiB)
    /// ```
    ///
    /// where 64 KiB is the most unparsed request bytes a connection may hold
    /// (streams hold none, so for streams only it is `max_buffered + 1 KiB`),
    /// 1 KiB covers the connection's own state, and `base` is a few MiB.
    /// The kernel's socket buffers (`2 * max_buffered` each) come on top, as
    /// kernel memory, not RSS.
    pub max_buffered: usize,
    /// Most leaky heartbeat timers (live leaky streams and orphans) the
    /// server will hold; past it `/stream/leaky` answers 503, saying why.
    pub max_orphans: u64,
    /// Whether `/stream/leaky` is served at all (off: 404, saying so).
    pub leaky_route: bool,
    /// The longest a shutdown lasts: it keeps answering (stream requests get
    /// 204) while clients of the ended streams come back, then closes.
    pub shutdown_grace: Duration,
    /// Serve `/debug/fds` (the process's own fd table) although the server
    /// does not listen on loopback only (`--debug-fds`). On loopback it is
    /// served anyway.
    pub debug_fds: bool,
    /// Run under this soft `RLIMIT_NOFILE` (`--fd-limit`), set by the server
    /// itself at start; `None` raises the soft limit to the hard one. It is
    /// how `leak-demo` and the tests make the fd limit bite early, with no
    /// `pre_exec` code between fork and exec.
    pub fd_limit: Option<u64>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            interval: Duration::from_secs(1),
            timer_mode: TimerMode::Dedicated,
            max_conns: default_max_conns(crate::procfs::nofile().1),
            workers: 1,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_buffered: 64 * 1024,
            max_orphans: DEFAULT_MAX_ORPHANS,
            leaky_route: true,
            shutdown_grace: Duration::from_millis(1500),
            debug_fds: false,
            fd_limit: None,
        }
    }
}

/// Safely below the fd limit: a stream costs a socket and (in dedicated
/// mode) a timerfd, and fds are kept back for the process itself: a
/// quarter of the limit, at least 16 (what the server holds on its own,
/// spares included) and at most 64. At nofile 64 that is 24 connections,
/// not the 1 a flat 64 fds kept back would leave.
pub fn default_max_conns(fd_limit: u64) -> usize {
    let limit = fd_limit.min(1 << 20);
    (limit.saturating_sub(kept_fds(limit)) / 2).max(1) as usize
}

/// The fds kept back for the server itself under `fd_limit`: a quarter,
/// at least 16 and at most 64 (see [`default_max_conns`]).
fn kept_fds(fd_limit: u64) -> u64 {
    (fd_limit / 4).clamp(16, 64)
}

/// The most connections the hard fd limit `hard` could ever allow: one fd
/// each (a socket; a shared-mode stream needs no timerfd), less what the
/// server keeps for itself. `--max-conns` above it is refused at start.
pub fn most_conns(hard: u64) -> usize {
    let hard = hard.min(1 << 30);
    hard.saturating_sub(kept_fds(hard)).max(1) as usize
}

/// Parse `100ms`, `1s`, `2m`, `500us`, `250ns`, or a decimal like `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}': expected a number followed by a unit, like 100ms"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "" => return Err(format!("'{s}': missing unit (ns, us, ms, s or m)")),
        other => return Err(format!("'{s}': unknown unit '{other}' (ns, us, ms, s or m)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("'{s}': out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A setting refused before any work starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// `--interval` below [`MIN_INTERVAL`].
    IntervalTooShort(Duration),
    /// A zero `--header-timeout` or `--idle-timeout`.
    ZeroTimeout,
    /// `--max-conns 0`.
    NoConnections,
    /// `--max-conns` above what the hard fd limit allows ([`most_conns`]).
    MaxConnsAboveFdLimit {
        /// What was asked for.
        asked: usize,
        /// The most the hard limit allows.
        most: usize,
        /// The hard `RLIMIT_NOFILE`.
        hard: u64,
    },
    /// `--max-buffered` outside 1 KiB ..= 1 GiB.
    MaxBuffered(usize),
    /// `--workers` outside 1 ..= 256.
    Workers(usize),
    /// `leak-demo`: `--fd-limit` below 32, or `--streams 0`.
    LeakDemoTooSmall,
    /// `--fd-limit` below 32: too few for the server's own fds.
    FdLimitTooLow(u64),
    /// `--fd-limit` above the hard `RLIMIT_NOFILE`.
    FdLimitAboveHard {
        /// What was asked for.
        asked: u64,
        /// This process's hard limit.
        hard: u64,
    },
    /// `leak-demo`: the `--svg` file cannot be written.
    Svg(std::path::PathBuf, String),
    /// `inspect --watch` below [`MIN_WATCH`] (zero included).
    WatchTooShort(Duration),
}

/// The shortest `inspect --watch` interval: a snapshot of a large process
/// takes milliseconds, so a shorter period would be all snapshot.
pub const MIN_WATCH: Duration = Duration::from_millis(10);

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingError::WatchTooShort(d) => {
                write!(f, "--watch must be at least {MIN_WATCH:?}, like 1s (it was {d:?})")
            }
            SettingError::IntervalTooShort(d) => {
                write!(f, "--interval must be at least {MIN_INTERVAL:?} (it was {d:?})")
            }
            SettingError::ZeroTimeout => {
                write!(f, "--header-timeout and --idle-timeout must be above zero")
            }
            SettingError::NoConnections => write!(f, "--max-conns must be at least 1"),
            SettingError::MaxConnsAboveFdLimit { asked, most, hard } => write!(
                f,
                "--max-conns {asked} is more than the hard fd limit allows: {hard} fds leave room for {most} connections (each needs a socket, and the server keeps some fds for itself); lower --max-conns or raise the hard limit (ulimit -Hn, as root)"
            ),
            SettingError::MaxBuffered(n) => {
                write!(f, "--max-buffered must be between 1k and 1g (it was {n})")
            }
            SettingError::Workers(n) => {
                write!(f, "--workers must be between 1 and 256 (it was {n})")
            }
            SettingError::LeakDemoTooSmall => {
                write!(f, "--fd-limit must be at least 32 and --streams at least 1")
            }
            SettingError::FdLimitTooLow(n) => {
                write!(f, "--fd-limit must be at least 32 (it was {n})")
            }
            SettingError::FdLimitAboveHard { asked, hard } => write!(
                f,
                "--fd-limit {asked} is above the hard RLIMIT_NOFILE ({hard}), which a process cannot raise for itself; use at most {hard}, or raise the hard limit (ulimit -Hn, as root)"
            ),
            SettingError::Svg(path, e) => write!(f, "--svg {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for SettingError {}

impl Config {
    /// Whether `/debug/fds` is served: always on loopback, elsewhere only
    /// with `--debug-fds` (it shows the process's own fd table).
    pub fn serves_debug_fds(&self) -> bool {
        self.debug_fds || self.addr.ip().is_loopback()
    }

    /// Check every setting; `serve` runs this before it binds anything.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.interval < MIN_INTERVAL {
            return Err(SettingError::IntervalTooShort(self.interval));
        }
        if self.header_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(SettingError::ZeroTimeout);
        }
        if self.max_conns == 0 {
            return Err(SettingError::NoConnections);
        }
        let hard = crate::procfs::nofile().1;
        let most = most_conns(hard);
        if self.max_conns > most {
            return Err(SettingError::MaxConnsAboveFdLimit { asked: self.max_conns, most, hard });
        }
        if !(1 << 10..=1 << 30).contains(&self.max_buffered) {
            return Err(SettingError::MaxBuffered(self.max_buffered));
        }
        if !(1..=256).contains(&self.workers) {
            return Err(SettingError::Workers(self.workers));
        }
        if let Some(asked) = self.fd_limit {
            let hard = crate::procfs::nofile().1;
            if asked < 32 {
                return Err(SettingError::FdLimitTooLow(asked));
            }
            if asked > hard {
                return Err(SettingError::FdLimitAboveHard { asked, hard });
            }
        }
        Ok(())
    }
}

/// The default `--max-orphans`: enough to watch the leak grow for a while,
/// few enough that nobody can exhaust the server through `/stream/leaky`.
pub const DEFAULT_MAX_ORPHANS: u64 = 1000;

/// The shortest heartbeat interval accepted: below it, timers alone would
/// keep a core busy (1 ns pins one).
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Parse a byte size: `65536`, `64k`, `64K`, `64KiB`, `1m`, `1MiB`
/// (k and m are 1024 and 1024²).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: usize =
        number.parse().map_err(|_| format!("'{s}': expected a size like 65536 or 64k"))?;
    let scale: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("'{s}': unknown unit '{other}' (k, m or g)")),
    };
    value.checked_mul(scale).ok_or_else(|| format!("'{s}': out of range"))
}

/// Parse a listen address: `127.0.0.1:8080`, `[::1]:8080`, or a name such
/// as `localhost:8080` (resolved now; an IPv4 address is preferred).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    if !s.contains(':') {
        return Err(format!("'{s}': expected HOST:PORT, like 127.0.0.1:8080 or localhost:0"));
    }
    let addrs: Vec<SocketAddr> = s.to_socket_addrs().map_err(|e| format!("'{s}': {e}"))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("'{s}': the name resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ns"), Ok(Duration::from_nanos(250)));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1e300s").is_err());
    }

    #[test]
    fn sizes_and_addresses() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64k"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1m"), Ok(1 << 20));
        assert!(parse_bytes("64q").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("k").is_err());
        assert!(parse_bytes("99999999999999999999g").is_err());
        assert_eq!(parse_addr("127.0.0.1:80"), Ok(SocketAddr::from(([127, 0, 0, 1], 80))));
        assert_eq!(parse_addr("localhost:80"), Ok(SocketAddr::from(([127, 0, 0, 1], 80))));
        assert!(parse_addr("localhost").is_err());
    }

    #[test]
    fn default_max_conns_leaves_room() {
        assert_eq!(default_max_conns(20_000), 9_968);
        assert_eq!(default_max_conns(256), 96);
        assert_eq!(default_max_conns(64), 24);
        assert_eq!(default_max_conns(10), 1);
    }
}
