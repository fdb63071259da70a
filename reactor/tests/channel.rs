//! The channel source: messages from other threads reach the loop thread
//! in order per sender, none lost or duplicated, in batches that need far
//! fewer wake-ups than messages; the callback learns when every sender is
//! gone; a send after the source is gone returns its message.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::SOON;
use reactor::channel::{Event, SendError};
use reactor::{Expiration, Reactor, TimerMode};

const THREADS: u32 = 4;
const MESSAGES: u32 = 50_000;

#[test]
fn n_threads_times_m_messages_arrive_once_each_in_order_with_far_fewer_wakeups() {
    let r = Reactor::new().unwrap();
    let next: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(vec![0; THREADS as usize]));
    let (received, closed) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0)));
    let (n, rcv, cl) = (next.clone(), received.clone(), closed.clone());
    let channel = r
        .channel(move |_, event: Event<(u32, u32)>| match event {
            Event::Msg((thread, seq)) => {
                let mut next = n.borrow_mut();
                // In order per sender, with no gap and no repeat.
                assert_eq!(seq, next[thread as usize], "thread {thread}");
                next[thread as usize] += 1;
                rcv.set(rcv.get() + 1);
            }
            Event::Closed => cl.set(cl.get() + 1),
        })
        .unwrap();
    let tx = channel.sender();
    let wakeups_before = r.stats().wakeups;
    let producers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for seq in 0..MESSAGES {
                    tx.send((thread, seq)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let total = u64::from(THREADS * MESSAGES);
    assert!(r.run_until_timeout(Duration::from_secs(30), || closed.get() == 1).unwrap());
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(received.get(), total, "none lost");
    assert!(next.borrow().iter().all(|&n| n == MESSAGES));
    let wakeups = r.stats().wakeups - wakeups_before;
    eprintln!("{wakeups} wake-ups for {total} messages from {THREADS} threads");
    assert!(wakeups * 10 < total, "{wakeups} wake-ups for {total} messages: not batched");
    r.turn(Some(Duration::from_millis(10))).unwrap();
    assert_eq!(closed.get(), 1, "Closed is sent once");
    assert!(channel.is_live(), "the source stays until its handle is dropped");
}

#[test]
#[allow(deprecated)] // the older API, kept source-compatible: this test is its proof
fn a_send_after_the_source_is_gone_returns_the_message_and_queued_ones_are_dropped() {
    let r = Reactor::new().unwrap();
    let (tx, channel) = r.add_channel(|_, _: Event<Rc<()>>| {}).unwrap();
    let queued = Rc::new(());
    tx.send(queued.clone()).unwrap();
    drop(channel);
    assert_eq!(Rc::strong_count(&queued), 1, "the queued message was dropped with the source");
    let back = tx.send(queued.clone()).unwrap_err();
    assert!(matches!(back, SendError::Closed(_)));
    assert!(Rc::ptr_eq(&back.into_inner(), &queued), "the message came back");
    assert_eq!(r.stats().io_sources, 0);
}

#[test]
fn a_bounded_channel_refuses_when_full_and_a_panicking_callback_closes_it() {
    let r = Reactor::new().unwrap();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let channel = r
        .bounded_channel(2, move |_, e: Event<u32>| {
            if let Event::Msg(n) = e {
                assert!(n != 99, "poisoned message");
                g.set(g.get() + 1);
            }
        })
        .unwrap();
    let tx = channel.sender();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(tx.send(3), Err(SendError::Full(3)));
    assert!(r.run_until_timeout(SOON, || got.get() == 2).unwrap());
    tx.send(3).unwrap();
    tx.send(99).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.run_until_timeout(SOON, || false).unwrap();
    }));
    assert!(caught.is_err());
    assert!(!channel.is_live(), "the panic removed the source");
    assert_eq!(tx.send(4), Err(SendError::Closed(4)));
    // The loop goes on with its other sources.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let _t =
        r.add_timer(TimerMode::Shared, Expiration::Once(Duration::ZERO), move |_, _| f.set(true));
    assert!(r.run_until_timeout(SOON, || fired.get()).unwrap());
}

#[test]
fn senders_are_send_and_clone() {
    fn assert_send_clone<T: Send + Clone>() {}
    assert_send_clone::<reactor::Sender<String>>();
}

/// The handle's promise: once the source is removed, its callback never
/// runs again, even for the rest of a batch already taken, and every later
/// send gets its message back. Checked for both ways a callback can remove
/// its own source: `ctx.remove()` and dropping the handle it captured.
#[test]
fn a_channel_removed_mid_batch_delivers_nothing_more_and_refuses_later_sends() {
    for by_handle in [false, true] {
        let r = Reactor::new().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let handle: Rc<RefCell<Option<reactor::Channel<u32>>>> = Rc::default();
        let (g, h) = (got.clone(), handle.clone());
        let channel = r
            .channel(move |ctx, e: Event<u32>| {
                let Event::Msg(n) = e else { return };
                g.borrow_mut().push(n);
                if n == 2 {
                    match by_handle {
                        true => drop(h.borrow_mut().take()),
                        false => ctx.remove(),
                    }
                }
            })
            .unwrap();
        let tx = channel.sender();
        *handle.borrow_mut() = Some(channel);
        for n in 1..=5 {
            tx.send(n).unwrap(); // one batch: all queued before the loop runs
        }
        r.turn(Some(SOON)).unwrap();
        assert_eq!(*got.borrow(), [1, 2], "by handle: {by_handle}");
        assert_eq!(tx.send(6), Err(SendError::Closed(6)), "by handle: {by_handle}");
        r.turn(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(*got.borrow(), [1, 2]);
        assert_eq!(r.stats().io_sources, 0);
    }
}

#[test]
fn senders_come_from_the_handle_and_count_towards_closed() {
    let r = Reactor::new().unwrap();
    let closed = Rc::new(Cell::new(false));
    let c = closed.clone();
    let channel = r
        .channel(move |_, e: Event<()>| {
            if e == Event::Closed {
                c.set(true)
            }
        })
        .unwrap();
    let (a, b) = (channel.sender(), channel.sender());
    drop(a);
    r.turn(Some(Duration::from_millis(10))).unwrap();
    assert!(!closed.get(), "one sender is left");
    drop(b);
    assert!(r.run_until_timeout(SOON, || closed.get()).unwrap());
}
