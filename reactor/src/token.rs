//! Tokens: what the reactor stores in `epoll_event.data`.
//!
//! A token is a slab key in the low 32 bits and a generation in the high 32.
//! The generation is what makes stale events safe: when a source is dropped
//! and its slot reused, the new source gets a new generation, so an event
//! already fetched for the old one no longer matches and is discarded.

use core::fmt;

/// Identifies one registration in a reactor: slab key plus generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u64);

impl Token {
    /// The token for slab slot `key` in its `generation`.
    pub const fn new(key: u32, generation: u32) -> Token {
        Token(((generation as u64) << 32) | key as u64)
    }

    /// Rebuild a token from the `u64` carried by an epoll event.
    pub const fn from_u64(raw: u64) -> Token {
        Token(raw)
    }

    /// The value stored in `epoll_event.data.u64`.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The slab key.
    pub const fn key(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    /// The generation the slot had when this token was handed out.
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(key {} gen {})", self.key(), self.generation())
    }
}

/// Which source a handle or a callback is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum SourceId {
    /// A dedicated timer: its slab entry.
    Dedicated(Token),
    /// A shared timer: slot `key` of the heap of shared clock `clock`
    /// (an index into `shared::CLOCKS`).
    Shared {
        clock: u8,
        key: u32,
        generation: u32,
    },
    Io(Token),
    Signal(Token),
    /// An idle hook: slot `key` of the hook slab.
    Idle {
        key: u32,
        generation: u32,
    },
    /// A deferred callback: it runs once, so there is nothing to remove.
    Deferred,
}
