//! `inspect`'s parsers for `/proc/PID/fdinfo`: a timerfd's fields and an
//! eventpoll's `tfd:` lines.
//!
//! The first byte picks the mode:
//! - even: the rest, as text (lossy UTF-8), goes to both parsers; no
//!   panic, and every watch parsed has a non-negative fd;
//! - odd: the rest chooses values that are written in the kernel's own
//!   fdinfo format (`fs/timerfd.c`, `fs/eventpoll.c`), and the parsers must
//!   read back exactly those values.
#![no_main]

use std::fmt::Write as _;
use std::time::Duration;

use demo_server::inspect::{Watch, clock_name, parse_eventpoll, parse_timerfd};
mod common;

use common::take;
use libfuzzer_sys::fuzz_target;

fn u64_(data: &mut &[u8]) -> u64 {
    u64::from_le_bytes(take(data))
}

fn duration(data: &mut &[u8]) -> Duration {
    // The kernel prints ktime_t: at most i64::MAX ns.
    let ns = u64_(data) % (i64::MAX as u64 + 1);
    Duration::from_nanos(ns)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        let _ = parse_timerfd(&text);
        for w in parse_eventpoll(&text) {
            assert!(w.fd >= 0, "{w:?} from {text:?}");
        }
        return;
    }

    // A timerfd fdinfo, as fs/timerfd.c prints it.
    let [clock, flags] = take::<2>(&mut rest);
    let clock = u32::from(clock % 12);
    let flags = u32::from(flags % 4);
    let ticks = u64_(&mut rest);
    let (value, interval) = (duration(&mut rest), duration(&mut rest));
    let text = format!(
        "pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1057\nclockid: {clock}\nticks: {ticks}\nsettime flags: 0{flags:o}\nit_value: ({}, {})\nit_interval: ({}, {})\n",
        value.as_secs(),
        value.subsec_nanos(),
        interval.as_secs(),
        interval.subsec_nanos()
    );
    let t = parse_timerfd(&text).unwrap_or_else(|| panic!("unparsed: {text:?}"));
    assert_eq!(t.clock, clock_name(clock));
    assert_eq!((t.abstime, t.cancel_on_set), (flags & 1 != 0, flags & 2 != 0), "{text:?}");
    assert_eq!((t.remaining, t.interval, t.ticks), (value, interval, ticks), "{text:?}");

    // An eventpoll fdinfo, as fs/eventpoll.c prints it: one tfd: line per watch.
    let mut text = String::from("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n");
    let mut want = Vec::new();
    let [n] = take::<1>(&mut rest);
    for _ in 0..n % 16 {
        let fd = (u64_(&mut rest) % (i32::MAX as u64 + 1)) as i32;
        let events = u64_(&mut rest) as u32;
        let data_ = u64_(&mut rest);
        let ino = u64_(&mut rest);
        let _ = writeln!(
            text,
            "tfd: {fd:8} events: {events:8x} data: {data_:16x}  pos:0 ino:{ino:x} sdev:f"
        );
        want.push(Watch { fd, events, data: data_, ino });
    }
    assert_eq!(parse_eventpoll(&text), want, "{text:?}");
});
