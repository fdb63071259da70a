//! The tools around the server, apart from it: what a user runs to see the
//! leak (`inspect`, `leak-demo`) and the loop's timeline (`timeline`), the
//! small client they use, and the one
//! launcher every test, bench and tool starts a server with. Product code,
//! packaged with the crate; nothing in the server depends on it.

pub mod client;
pub mod inspect;
pub mod launcher;
pub mod leak_demo;
pub mod timeline;
