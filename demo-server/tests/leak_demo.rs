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
