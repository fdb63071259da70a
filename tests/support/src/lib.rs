//! Helpers the workspace's tests share, in one place instead of two or three
//! copies. A dev-dependency only: no product crate links it.
//!
//! | module | what it holds |
//! |---|---|
//! | [`fds`] | this process's or another's open fds and timerfds, by the kernel's count |
//! | [`alloc`] | a global allocator that counts allocations |
//! | [`tool`] | whether an external tool is installed, saying so when not |
//! | [`wait`] | bounded polling for a condition |
//! | `server` | (feature `server`) a `demo-server` child per test, on `demo-server`'s own launcher |
//! | [`http`] | one-request loopback HTTP clients |
//! | [`text`] | comparing a doc's excerpt with a command's output, volatile fields masked |
//! | [`strace`] | re-running a test under `strace -e inject=...`, so a chosen syscall fails underneath it |

pub mod alloc;
pub mod fds;
pub mod http;
#[cfg(feature = "server")]
pub mod server;
pub mod strace;
pub mod text;
pub mod tool;
pub mod wait;

pub use alloc::{CountingAlloc, allocations};
pub use fds::{open_fds, open_timerfds};
#[cfg(feature = "server")]
pub use server::Server;
pub use tool::have;
pub use wait::wait_until;
