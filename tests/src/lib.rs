//! Cross-crate checks for the timerfd-reactor workspace. Everything lives in
//! `tests/` (the integration tests of this package): the guide and README
//! stay true, dependencies point one way (`demo-server -> reactor ->
//! timerfd-sys`), and the leak story holds end to end across the three
//! crates. Helpers shared by every crate's tests are in `test-support`
//! (`tests/support`).

/// The workspace README's examples, compiled and run as doctests so they
/// stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
