//! Shared by the benches and the harnesses: the three dispatch loops that
//! `benches/reactor.rs` times with criterion and `dispatch-count` times
//! interleaved and counts under callgrind; the live-bytes allocator the
//! memory-per-timer figures use; and the median every harness reports.

/// A global allocator that keeps a running total of live heap bytes, for
/// memory-per-timer figures. A binary installs it with
/// `#[global_allocator] static GLOBAL: LiveBytes = LiveBytes;`.
pub mod alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

    /// The system allocator, counting live bytes.
    pub struct LiveBytes;

    // SAFETY: delegates to the system allocator; only counts bytes.
    unsafe impl GlobalAlloc for LiveBytes {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
            // SAFETY: same contract as our caller's.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            LIVE_BYTES.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
            // SAFETY: same contract as our caller's.
            unsafe { System.realloc(p, l, new) }
        }
    }

    /// Heap bytes live now, through [`LiveBytes`].
    pub fn live_bytes() -> isize {
        LIVE_BYTES.load(Ordering::Relaxed)
    }
}

/// The median of `v` (the mean of the middle two for an even count; NaN
/// for none). Sorts `v`.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub mod dispatch {
    use std::cell::Cell;
    use std::num::NonZeroU64;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use reactor::{Expiration, Reactor, TimerMode};
    use timerfd_sys::{Clock, TimerFd};

    const FAR: Expiration = Expiration::Once(Duration::from_secs(3600));
    const ONE: NonZeroU64 = NonZeroU64::new(1).unwrap();

    fn set_ticks(fd: i32) {
        let one = 1u64;
        // SAFETY: valid fd; the kernel reads one u64.
        unsafe { libc::ioctl(fd, timerfd_sys::raw::TFD_IOC_SET_TICKS as libc::c_ulong, &one) };
    }

    /// The floor: epoll_wait and read written directly on libc, a Vec of
    /// callbacks indexed by the event's data.
    pub fn raw_epoll(n: usize, iters: u64) -> Duration {
        // SAFETY: plain syscalls on fds this function owns and closes.
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            let timers: Vec<TimerFd> =
                (0..n).map(|_| TimerFd::new(Clock::Monotonic).unwrap()).collect();
            let count = Cell::new(0u64);
            let mut callbacks: Vec<Box<dyn FnMut(u64) + '_>> = Vec::new();
            for (i, t) in timers.iter().enumerate() {
                let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, t.as_raw_fd(), &mut ev);
                callbacks.push(Box::new(|ticks| count.set(count.get() + ticks)));
            }
            let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                timers.iter().for_each(|t| set_ticks(t.as_raw_fd()));
                let start = Instant::now();
                let k = libc::epoll_wait(ep, events.as_mut_ptr(), 1024, 0);
                for e in &events[..k.max(0) as usize] {
                    let i = e.u64 as usize;
                    let mut v = 0u64;
                    libc::read(timers[i].as_raw_fd(), (&mut v as *mut u64).cast(), 8);
                    callbacks[i](v);
                }
                total += start.elapsed();
            }
            libc::close(ep);
            assert_eq!(count.get(), iters * n as u64);
            total
        }
    }

    pub fn ours(n: usize, iters: u64) -> Duration {
        let r = Reactor::new().unwrap();
        let count = Rc::new(Cell::new(0u64));
        let timers: Vec<_> = (0..n)
            .map(|_| {
                let c = count.clone();
                r.add_timer(TimerMode::Dedicated, FAR, move |_, ticks| c.set(c.get() + ticks))
                    .unwrap()
            })
            .collect();
        let fds: Vec<i32> = timers.iter().map(|t| t.fd().unwrap()).collect();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            fds.iter().for_each(|fd| set_ticks(*fd));
            let start = Instant::now();
            r.turn(Some(Duration::ZERO)).unwrap();
            total += start.elapsed();
        }
        assert_eq!(count.get(), iters * n as u64);
        total
    }

    pub fn mio_timers(n: usize, iters: u64) -> Duration {
        use mio::unix::SourceFd;
        use mio::{Events, Interest, Poll, Token};
        let mut poll = Poll::new().unwrap();
        let timers: Vec<TimerFd> =
            (0..n).map(|_| TimerFd::new(Clock::Monotonic).unwrap()).collect();
        let count = Cell::new(0u64);
        let mut callbacks: Vec<Box<dyn FnMut(u64) + '_>> = Vec::new();
        for (i, t) in timers.iter().enumerate() {
            let raw = t.as_raw_fd();
            poll.registry().register(&mut SourceFd(&raw), Token(i), Interest::READABLE).unwrap();
            callbacks.push(Box::new(|ticks| count.set(count.get() + ticks)));
        }
        let mut events = Events::with_capacity(1024);
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            timers.iter().for_each(|t| t.set_ticks(ONE).unwrap());
            let start = Instant::now();
            poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
            for e in events.iter() {
                let i = e.token().0;
                let ticks = timers[i].read().unwrap();
                callbacks[i](ticks);
            }
            total += start.elapsed();
        }
        assert_eq!(count.get(), iters * n as u64);
        total
    }
}
