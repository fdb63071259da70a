//! Lines for stdout and stderr that never panic.
//!
//! `println!` and `eprintln!` panic when a write fails, and a write to a
//! closed pipe fails with `EPIPE` (Rust ignores `SIGPIPE`): `demo-server |
//! head -n1` would then turn a clean SIGTERM into exit code 101, with the
//! streams never drained. Every line this binary prints goes through these
//! macros instead; a failed write is dropped, as there is nobody to tell.

/// `println!` that ignores write errors (the banner, `inspect` output).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _nobody_to_tell = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that ignores write errors (diagnostics).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _nobody_to_tell = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// A line for a report going to `out` (any `io::Write`), with the same
/// rule: a reader that went away loses the report, and the tool's verdict
/// is its exit status. Into a `String` or a `Vec`, a write cannot fail.
#[macro_export]
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        let _nobody_to_tell = ::std::writeln!($out, $($arg)*);
    }};
}

/// `eprint!` that ignores write errors (progress bars).
#[macro_export]
macro_rules! errprint {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _nobody_to_tell = ::std::write!(::std::io::stderr().lock(), $($arg)*);
    }};
}
