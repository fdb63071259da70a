//! `demo-server`: run the SSE demo (`serve`, the default).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use demo_server::config::{
    Config, MIN_INTERVAL, SettingError, parse_addr, parse_bytes, parse_duration,
};
use reactor::TimerMode;

#[derive(Parser)]
#[command(
    name = "demo-server",
    version,
    about = "SSE heartbeats on a timerfd reactor: the 'ticker never stopped' leak next to its fix",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard, /stream/fixed, /stream/leaky and /metrics (the default).
    Serve(ServeArgs),
    /// Show what the kernel holds for a process: fds by kind, timerfds, epoll watches.
    Inspect(InspectArgs),
    /// Reproduce the leak in one command: fixed stays flat, leaky climbs to the fd limit.
    LeakDemo(LeakDemoArgs),
    /// Draw a reactor timeline (REACTOR_TRACE=chrome:PATH) as an SVG picture.
    Timeline(TimelineArgs),
}

#[derive(Args)]
struct TimelineArgs {
    /// The trace file REACTOR_TRACE=chrome:PATH wrote.
    trace: std::path::PathBuf,
    /// Where to write the picture.
    #[arg(long, default_value = "timeline.svg")]
    svg: std::path::PathBuf,
    /// Start this many milliseconds after the trace's first event [default: end at its last].
    #[arg(long)]
    from_ms: Option<f64>,
    /// How many milliseconds to draw.
    #[arg(long, default_value_t = 1000.0)]
    span_ms: f64,
    /// Name an fd in the picture, like 16=leaked (repeatable).
    #[arg(long, value_parser = parse_label)]
    label: Vec<(i64, String)>,
    /// Draw only the threads whose name starts with this (like worker).
    #[arg(long)]
    thread: Option<String>,
}

fn parse_label(s: &str) -> Result<(i64, String), String> {
    let (fd, name) = s.split_once('=').ok_or(format!("'{s}': expected FD=TEXT, like 16=leaked"))?;
    let fd = fd.trim().parse().map_err(|_| format!("'{fd}': not an fd number"))?;
    Ok((fd, name.to_string()))
}

fn timeline(args: TimelineArgs) -> ExitCode {
    if !(args.span_ms > 0.0 && args.span_ms.is_finite()) {
        demo_server::errln!("demo-server timeline: --span-ms must be above zero");
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(&args.trace) {
        Ok(text) => text,
        Err(e) => {
            demo_server::errln!("demo-server timeline: {}: {e}", args.trace.display());
            return ExitCode::FAILURE;
        }
    };
    let options = demo_server::timeline::Options {
        from_ms: args.from_ms,
        span_ms: args.span_ms,
        labels: args.label,
        thread: args.thread,
    };
    let written = demo_server::timeline::svg(&text, &options)
        .and_then(|svg| std::fs::write(&args.svg, svg).map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            demo_server::outln!("timeline written to {}", args.svg.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            demo_server::errln!("demo-server timeline: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct LeakDemoArgs {
    /// Streams to open and close on /stream/fixed (leaky goes on until the limit).
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// RLIMIT_NOFILE of the server child.
    #[arg(long, default_value_t = 256)]
    fd_limit: u64,
    /// Heartbeat interval of the server child.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    interval: Duration,
    /// Write the chart as an SVG picture.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
}

impl LeakDemoArgs {
    /// Everything that can be checked before any work starts.
    fn check(&self) -> Result<(), SettingError> {
        if self.fd_limit < 32 || self.streams == 0 {
            return Err(SettingError::LeakDemoTooSmall);
        }
        let hard = demo_server::procfs::nofile().1;
        if self.fd_limit > hard {
            return Err(SettingError::FdLimitAboveHard { asked: self.fd_limit, hard });
        }
        if self.interval < MIN_INTERVAL {
            return Err(SettingError::IntervalTooShort(self.interval));
        }
        if let Some(path) = &self.svg {
            // Found now, not after the whole run: the file must be writable.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| SettingError::Svg(path.clone(), e.to_string()))?;
        }
        Ok(())
    }
}

fn leak_demo(args: LeakDemoArgs) -> ExitCode {
    if let Err(e) = args.check() {
        demo_server::errln!("demo-server leak-demo: {e}");
        return ExitCode::from(2);
    }
    let options = demo_server::leak_demo::Options {
        streams: args.streams,
        fd_limit: args.fd_limit,
        interval: args.interval,
        svg: args.svg,
        ..Default::default()
    };
    match demo_server::leak_demo::run(&options, &mut std::io::stdout()) {
        Ok(v) if v.ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            demo_server::errln!("demo-server leak-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct InspectArgs {
    /// The process to look at.
    pid: u32,
    /// Print a line every interval (like 1s; 10ms at least) with totals, deltas and growth rate,
    /// on a fixed cadence: the snapshot's own time is not added to the wait.
    #[arg(long, value_parser = parse_duration)]
    watch: Option<Duration>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn inspect(args: InspectArgs) -> ExitCode {
    use demo_server::inspect;
    if let Some(every) = args.watch.filter(|d| *d < demo_server::config::MIN_WATCH) {
        demo_server::errln!("demo-server inspect: {}", SettingError::WatchTooShort(every));
        return ExitCode::from(2);
    }
    let result = match args.watch {
        Some(every) => inspect::watch(args.pid, every, args.json, &mut std::io::stdout()),
        None => inspect::snapshot(args.pid).map(|s| {
            demo_server::outln!("{}", if args.json { s.to_json() } else { s.render() });
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            demo_server::errln!("demo-server inspect: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// One timerfd per heartbeat timer: every timer visible in /proc/PID/fd.
    Dedicated,
    /// All heartbeat timers in one heap on one timerfd.
    Shared,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    addr: SocketAddr,
    /// Heartbeat period, like 100ms or 1s.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Heartbeat timer mode.
    #[arg(long, value_enum, default_value = "dedicated")]
    timer_mode: Mode,
    /// Most connections at once; more get 503 [default: half the fd limit, less a reserve].
    #[arg(long)]
    max_conns: Option<usize>,
    /// Reactor threads, sharing one listening socket.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Time allowed for a request head (slowloris cut-off, answered 408).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Time an idle keep-alive connection is kept.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Most leaky timers (live and orphaned) to hold; then /stream/leaky answers 503.
    #[arg(long, default_value_t = demo_server::config::DEFAULT_MAX_ORPHANS)]
    max_orphans: u64,
    /// Turn /stream/leaky off (it answers 404, saying so): for servers others can reach.
    #[arg(long)]
    no_leaky: bool,
    /// Bytes queued for a client that reads too slowly before it is cut off
    /// (like 64k or 1m); it bounds each buffer's capacity too.
    #[arg(long, default_value = "64k", value_parser = parse_bytes)]
    max_buffered: usize,
    /// Serve /debug/fds (this process's fd table, for the dashboard's kernel
    /// panel) though the server does not listen on loopback; on loopback it is on.
    #[arg(long)]
    debug_fds: bool,
    /// Run under this soft RLIMIT_NOFILE (at most the hard limit) instead of
    /// raising it to the hard limit: to watch the limit bite early.
    #[arg(long)]
    fd_limit: Option<u64>,
}

impl ServeArgs {
    fn config(self) -> Result<Config, SettingError> {
        let defaults = Config::default();
        let cfg = Config {
            addr: self.addr,
            interval: self.interval,
            timer_mode: match self.timer_mode {
                Mode::Dedicated => TimerMode::Dedicated,
                Mode::Shared => TimerMode::Shared,
            },
            max_conns: self.max_conns.unwrap_or(match self.fd_limit {
                Some(limit) => demo_server::config::default_max_conns(limit),
                None => defaults.max_conns,
            }),
            workers: self.workers,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_buffered: self.max_buffered,
            max_orphans: self.max_orphans,
            leaky_route: !self.no_leaky,
            debug_fds: self.debug_fds,
            fd_limit: self.fd_limit,
            ..defaults
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Inspect(args)) => return inspect(args),
        Some(Command::LeakDemo(args)) => return leak_demo(args),
        Some(Command::Timeline(args)) => return timeline(args),
        None => cli.serve,
    };
    let cfg = match args.config() {
        Ok(cfg) => cfg,
        Err(e) => {
            demo_server::errln!("demo-server: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match demo_server::server::serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            demo_server::errln!("demo-server: {e}");
            ExitCode::FAILURE
        }
    };
    // The timeline (REACTOR_TRACE=chrome:PATH), whatever ended the server.
    reactor::trace::chrome::flush();
    code
}
