//! `leak-demo` with its default settings: it must reach its verdict, exit 0,
//! and do it within 60 s.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn leak_demo_with_defaults_observes_the_leak_and_exits_0() {
    let svg = std::env::temp_dir().join(format!("leak-demo-{}.svg", std::process::id()));
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["leak-demo", "--svg"])
        .arg(&svg)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert!(text.contains("verdict: fixed +0 timerfds after 100 streams"), "{text}");
    assert!(
        text.contains("(+1 per stream)")
            && text.contains("limit reached")
            && text.contains("still answering")
    );
    // The table's leaky rows climb by exactly the streams closed.
    let leaky: Vec<(i64, i64)> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"leaky")).then(|| (w[1].parse().unwrap(), w[2].parse().unwrap()))
        })
        .collect();
    assert!(leaky.len() >= 10, "{text}");
    let (first_closed, first_tfd) = leaky[0];
    for (closed, tfd) in &leaky {
        assert_eq!(tfd - first_tfd, closed - first_closed, "{text}");
    }
    // The cost line: the leaked timers' wake-ups, counted, against what
    // N timers every 100 ms must cost.
    let cost = text.lines().find(|l| l.starts_with("cost at the limit")).expect(&text);
    let words: Vec<&str> = cost.split_whitespace().collect();
    let per_sec: f64 =
        words[words.iter().position(|w| *w == "orphan").unwrap() - 1].parse().unwrap();
    let leaked = leaky.last().unwrap().0 as f64;
    assert!(
        (per_sec - leaked * 10.0).abs() < leaked * 10.0 * 0.25,
        "{leaked} timers every 100 ms: {per_sec}/s\n{cost}"
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).ok();
    assert!(picture.starts_with("<svg") && picture.contains("/stream/leaky"));
}

#[test]
fn leak_demo_refuses_nonsense_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["leak-demo", "--fd-limit", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fd-limit must be at least 32"));
}

#[test]
fn leak_demo_takes_a_bounded_number_of_censuses_whatever_the_limit() {
    // Each batch ends with an O(fds) census of the server; batches that
    // grow with the limit keep the run linear in --fd-limit.
    let out = Command::new(env!("CARGO_BIN_EXE_demo-server"))
        .args(["leak-demo", "--fd-limit", "1024"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let leaky_rows = text.lines().filter(|l| l.split_whitespace().next() == Some("leaky")).count();
    let most = demo_server::leak_demo::LEAKY_BATCHES + 4;
    assert!((8..=most).contains(&leaky_rows), "{leaky_rows} batches:\n{text}");
}
