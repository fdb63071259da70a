//! The README's claims with figures, checked against the code that makes
//! them true, so that changing one without the other fails here. Each
//! figure is read out of the README's own text, not copied into this test.

use std::path::Path;

use test_support::server::{Server, demo_server_bin};

fn readme() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(repo.join("README.md")).unwrap().replace('\n', " ")
}

/// The number right after `before` in the README (digits and `_`/`,`).
fn figure_after(readme: &str, before: &str) -> u64 {
    let at = readme.find(before).unwrap_or_else(|| panic!("the README no longer says {before:?}"));
    let digits: String = readme[at + before.len()..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '_' || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("no figure after {before:?}"))
}

#[test]
fn the_readmes_defaults_are_the_codes() {
    let r = readme();
    assert_eq!(figure_after(&r, "leaky timers ("), demo_server::config::DEFAULT_MAX_ORPHANS);
    let max_buffered = figure_after(&r, "`--max-buffered ") as usize * 1024; // written as 64k
    assert_eq!(max_buffered, demo_server::config::Config::default().max_buffered);
    let leak_demo = figure_after(&r, "the whole reproduction under a ");
    assert_eq!(leak_demo, demo_server::leak_demo::Options::default().fd_limit);
    let default_interval_s = figure_after(&r, "`--interval` (the heartbeat, ");
    assert_eq!(default_interval_s, demo_server::config::Config::default().interval.as_secs());
    let min_interval_ms = figure_after(&r, "s by default, ");
    assert_eq!(u128::from(min_interval_ms), demo_server::config::MIN_INTERVAL.as_millis());
}

#[test]
fn the_readmes_protocol_figures_are_the_codes() {
    let r = readme();
    assert_eq!(figure_after(&r, "one block, `retry: "), u64::from(demo_server::sse::RETRY_MS));
    assert_eq!(
        figure_after(&r, "last `event: shutdown` with `retry: "),
        u64::from(demo_server::sse::SHUTDOWN_RETRY_MS)
    );
    let exponent = figure_after(&r, "a `Last-Event-ID` above 2^");
    assert_eq!((1u64 << exponent) - 1, demo_server::sse::MAX_EVENT_ID);
    assert!(r.contains(&format!("`event: {}`", demo_server::sse::HELLO)));
}

#[test]
fn a_stream_opens_as_the_readme_says() {
    if !test_support::have("curl") {
        return;
    }
    let r = readme();
    let retry = figure_after(&r, "one block, `retry: ");
    let server = Server::spawn(demo_server_bin(), &["--interval", "100ms"], &[]);
    let url = format!("http://{}/stream/fixed", server.addr);
    let out = std::process::Command::new("curl").args(["-sN", "--max-time", "0.3", &url]).output();
    let text = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
    let first_block = text.split("\n\n").next().unwrap_or("");
    assert!(first_block.contains(&format!("retry: {retry}\n")), "{first_block:?}");
    assert!(first_block.contains("event: hello\n"), "{first_block:?}");
}
