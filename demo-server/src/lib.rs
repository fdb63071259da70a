//! An SSE server on the reactor that reproduces the "heartbeat ticker that
//! is never stopped" leak next to its fix, and makes the difference visible.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | settings, and the `100ms`/`1s` duration syntax |
//! | [`console`] | `outln!`, `errln!`: printing that never panics on a closed pipe |
//! | [`wire`] | what both sides of the wire share: routes, the largest event id |
//! | [`http`] | request heads: parsing, statuses, responses |
//! | [`sse`] | the event-stream wire format |
//! | `worker` | one reactor thread: one event table, the run loop; a file each for accepting, refusing, the connection's states, requests, streams, and failure episodes |
//! | [`server`] | listeners, worker threads, signals, shutdown |
//! | [`metrics`] | counters, and the `/metrics` text |
//! | [`stats`] | `/stream/stats`: the dashboard's snapshots and their bounded history |
//! | [`procfs`] | what `/proc/self` says about our fds |
//! | [`census`] | the fd census thread: `/proc/self/fd` counted off the reactor threads |
//! | [`debug_fds`] | `/debug/fds`: the kernel's view of this server, for the dashboard's panel |
//! | [`debug_fds`] | `/debug/fds`: the kernel's view of this server, for the dashboard's panel |
//! | [`tools`] | apart from the server: [`inspect`] (what `/proc/PID` says about any process), [`leak_demo`] (the reproduction in one command, with a verdict), [`client`] (the small blocking HTTP client they use), [`launcher`] (the one way to start a server child), [`timeline`] (the reactor's trace drawn as SVG) |
//!
//! # The leak and the fix
//!
//! Both stream routes arm a periodic heartbeat timer when a client
//! connects. On `/stream/fixed` the connection owns the timer's handle, so
//! when the client goes (RDHUP, HUP, a read of 0, EPIPE, ECONNRESET) the
//! connection is removed and the timer with it: `epoll_ctl(DEL)` and
//! `close`. On `/stream/leaky` the handle is detached when the stream
//! starts, the way a Go handler leaks a `time.Ticker` it never `Stop()`s:
//! after the client leaves, the timer fires forever for nobody.
//!
//! In dedicated mode (the default) each such timer is a timerfd, so every
//! closed leaky stream leaves exactly one more fd in `/proc/PID/fd`, until
//! `accept` or `timerfd_create` meets EMFILE. In shared mode the timers are
//! heap entries on one timerfd: the fd count stays flat, while
//! `reactor_timers_active{mode="shared"}`, `reactor_shared_heap_entries`
//! and the wake-up rate climb instead. (Go's runtime is like shared mode:
//! its tickers are heap entries, not timerfds.)

#![cfg(target_os = "linux")]

pub mod census;
pub mod config;
pub mod console;
pub mod debug_fds;
pub mod http;
pub mod metrics;
pub mod procfs;
pub mod server;
pub mod sse;
pub mod stats;
pub mod tools;
pub mod wire;
mod worker;

pub use tools::{client, inspect, launcher, leak_demo, timeline};

/// The dashboard: one HTML file, inline script and style, no build step.
pub const DASHBOARD: &str = include_str!("dashboard.html");
