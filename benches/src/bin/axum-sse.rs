//! The peer for the SSE load test: the same heartbeat stream as the demo
//! server's `/stream/fixed`, written the way an axum user would, on a
//! current-thread tokio runtime (one worker, like `demo-server --workers 1`).
//!
//!   axum-sse [--addr 127.0.0.1:0] [--interval 100ms]
//!
//! Prints `demo-server listening on http://ADDR/` so the load harness can
//! drive it exactly like the demo server.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use futures_util::stream::{Stream, StreamExt};
use tokio_stream::wrappers::IntervalStream;

fn parse_ms(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("ms") {
        return v.parse().ok().map(Duration::from_millis);
    }
    s.strip_suffix('s').and_then(|v| v.parse().ok()).map(Duration::from_secs)
}

fn main() {
    let mut addr = "127.0.0.1:0".to_string();
    let mut interval = Duration::from_millis(100);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--addr", Some(v)) => addr = v,
            ("--interval", Some(v)) => interval = parse_ms(&v).unwrap_or(interval),
            _ => {
                eprintln!("usage: axum-sse [--addr ADDR] [--interval 100ms]");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let app = Router::new().route(
            "/stream/fixed",
            get(move || async move {
                let mut seq = 0u64;
                let ticks = IntervalStream::new(tokio::time::interval_at(
                    tokio::time::Instant::now() + interval,
                    interval,
                ));
                let events: std::pin::Pin<
                    Box<dyn Stream<Item = Result<Event, Infallible>> + Send>,
                > = Box::pin(ticks.map(move |_| {
                    seq += 1;
                    Ok(Event::default().id(seq.to_string()).data(format!(
                        "{{\"seq\":{seq},\"route\":\"fixed\",\"expirations\":1,\"missed\":0}}"
                    )))
                }));
                Sse::new(events)
            }),
        );
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("demo-server listening on http://{}/", listener.local_addr().unwrap());
        println!("  pid {}, axum peer, heartbeat every {interval:?}", std::process::id());
        axum::serve(listener, app).await.unwrap();
    });
}
