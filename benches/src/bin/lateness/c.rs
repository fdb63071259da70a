//! The C contenders: each a program compiled at run time with the system
//! `gcc`, run as a child, printing one line of figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::runs::Q;

/// A C program that the harness compiles: its path from the repository
/// root, and the library it links (`-l`) with the apt package providing it.
#[derive(Clone, Copy, PartialEq)]
pub struct CSource {
    pub path: &'static str,
    pub lib: Option<(&'static str, &'static str)>,
}

pub const FLOOR: CSource = CSource { path: "scripts/lateness-floor.c", lib: None };
pub const SD_EVENT: CSource =
    CSource { path: "benches/c/sd-event.c", lib: Some(("systemd", "libsystemd-dev")) };
pub const LIBEV: CSource = CSource { path: "benches/c/libev.c", lib: Some(("ev", "libev-dev")) };
pub const LIBUV: CSource = CSource { path: "benches/c/libuv.c", lib: Some(("uv", "libuv1-dev")) };
pub const IO_URING: CSource =
    CSource { path: "benches/c/io_uring.c", lib: Some(("uring", "liburing-dev")) };
pub const EPOLL_PWAIT2: CSource = CSource { path: "benches/c/epoll_pwait2.c", lib: None };

/// Compile `src` next to this binary (`lateness-<name>`) with the system
/// `gcc`; on failure, gcc's messages.
pub fn build(src: CSource) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let here = exe.parent().ok_or("no exe dir")?;
    let root = here.ancestors().nth(3).ok_or("no repository root")?;
    let stem = Path::new(src.path).file_stem().and_then(|s| s.to_str()).ok_or("bad path")?;
    let bin = here.join(if stem.starts_with("lateness-") {
        stem.to_string()
    } else {
        format!("lateness-{stem}")
    });
    let mut gcc = Command::new("gcc");
    gcc.args(["-O2", "-o"]).arg(&bin).arg(root.join(src.path));
    if let Some((lib, _)) = src.lib {
        gcc.arg(format!("-l{lib}"));
    }
    let out = gcc.output().map_err(|e| format!("gcc: {e}"))?;
    if out.status.success() {
        Ok(bin)
    } else {
        Err(format!("gcc: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// A C program, as a child process: it prints
/// `samples p50 p99 p99.9 max cpu_ns_per_expiry`, all in ns.
pub fn run(
    name: &str,
    bin: &Path,
    extra: Option<&str>,
    n: usize,
    period: Duration,
    secs: Duration,
) -> Q {
    let out = Command::new(bin)
        .args([n.to_string(), period.as_nanos().to_string(), secs.as_secs_f64().to_string()])
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            eprintln!("lateness: running {}: {e}", bin.display());
            std::process::exit(1);
        });
    // Its warnings (callbacks before their deadline) or its error.
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    if !out.status.success() || f.len() != 6 {
        eprintln!(
            "lateness: {} ({}) failed, {}, printing {text:?}",
            name,
            bin.display(),
            out.status
        );
        std::process::exit(1);
    }
    Q {
        samples: f[0] as usize,
        p50: f[1] / 1e3,
        p99: f[2] / 1e3,
        p999: f[3] / 1e3,
        max: f[4] / 1e3,
        cpu: f[5],
    }
}
