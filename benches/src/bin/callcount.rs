//! One timerfd operation, N times, through one implementation: the program
//! `scripts/bench.sh` runs under `valgrind --tool=callgrind` to count the
//! user-space instructions each wrapper adds to the raw syscall. Instruction
//! counts repeat exactly from run to run, unlike nanoseconds on this machine.
//!
//!   callcount IMPL OP N
//!   IMPL: libc | timerfd-sys | nix | timerfd      OP: set | get | read | disarm

use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: callcount libc|timerfd-sys|nix|timerfd set|get|read|disarm N");
        std::process::exit(2);
    }
    let n: u64 = args[3].parse().unwrap_or(0);
    let (imp, op) = (args[1].as_str(), args[2].as_str());
    match imp {
        "libc" => {
            // SAFETY: plain syscalls on an fd we own.
            unsafe {
                let fd = libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                );
                let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                let hour = libc::timespec { tv_sec: 3600, tv_nsec: 0 };
                let armed = libc::itimerspec { it_interval: hour, it_value: hour };
                let off = libc::itimerspec { it_interval: zero, it_value: zero };
                libc::timerfd_settime(fd, 0, &armed, std::ptr::null_mut());
                for _ in 0..n {
                    match op {
                        "set" => {
                            libc::timerfd_settime(fd, 0, black_box(&armed), std::ptr::null_mut());
                        }
                        "disarm" => {
                            libc::timerfd_settime(fd, 0, black_box(&off), std::ptr::null_mut());
                        }
                        "get" => {
                            let mut cur = off;
                            libc::timerfd_gettime(fd, &mut cur);
                            black_box(cur.it_value.tv_sec);
                        }
                        _ => {
                            let mut v = 0u64;
                            libc::read(fd, (&mut v as *mut u64).cast(), 8);
                            black_box(v);
                        }
                    }
                }
            }
        }
        "timerfd-sys" => {
            use timerfd_sys::{Clock, Expiration, TimerFd};
            let t = TimerFd::new(Clock::Monotonic).unwrap();
            t.set(Expiration::every(HOUR)).unwrap();
            for _ in 0..n {
                match op {
                    "set" => t.set(black_box(Expiration::every(HOUR))).unwrap(),
                    "disarm" => t.disarm().unwrap(),
                    "get" => {
                        black_box(t.get().unwrap());
                    }
                    _ => {
                        black_box(t.read().unwrap());
                    }
                }
            }
        }
        "nix" => {
            use nix::sys::time::TimeSpec;
            use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
            let t = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )
            .unwrap();
            let h = TimeSpec::from_duration(HOUR);
            t.set(Expiration::IntervalDelayed(h, h), TimerSetTimeFlags::empty()).unwrap();
            for _ in 0..n {
                match op {
                    "set" => t
                        .set(
                            black_box(Expiration::IntervalDelayed(h, h)),
                            TimerSetTimeFlags::empty(),
                        )
                        .unwrap(),
                    "disarm" => t.unset().unwrap(),
                    "get" => {
                        black_box(t.get().unwrap());
                    }
                    _ => {
                        black_box(t.wait().is_err());
                    }
                }
            }
            black_box(t.as_fd().as_raw_fd());
        }
        "timerfd" => {
            use timerfd::{ClockId, SetTimeFlags, TimerFd, TimerState};
            let mut t = TimerFd::new_custom(ClockId::Monotonic, true, true).unwrap();
            let armed = TimerState::Periodic { current: HOUR, interval: HOUR };
            t.set_state(armed.clone(), SetTimeFlags::Default);
            for _ in 0..n {
                match op {
                    "set" => {
                        black_box(t.set_state(black_box(armed.clone()), SetTimeFlags::Default));
                    }
                    "disarm" => {
                        black_box(t.set_state(TimerState::Disarmed, SetTimeFlags::Default));
                    }
                    "get" => {
                        black_box(t.get_state());
                    }
                    _ => {
                        black_box(t.read());
                    }
                }
            }
        }
        other => {
            eprintln!("unknown implementation {other}");
            std::process::exit(2);
        }
    }
}
