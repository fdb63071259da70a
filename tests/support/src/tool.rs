//! External tools some tests drive (strace, curl, chromium, promtool, go,
//! node). CI installs them all (`.ci/run`); elsewhere a test without its
//! tool skips, saying so.

use std::process::Command;

/// Whether `tool --version` runs; prints a SKIPPED line when it does not.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty());
    if !ok {
        println!("SKIPPED: {tool} is not installed (CI installs it; see .ci/run)");
    }
    ok
}
