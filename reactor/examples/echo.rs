//! A UDP echo server whose state lives in one struct every callback
//! reaches through `ctx.data()`: a socket, a ticker that reports, a channel
//! from another thread, and SIGINT/SIGTERM to stop. No `Rc<RefCell<_>>`.
//!
//!   cargo run -p timerfd-reactor --example echo            # a self-test: 5 datagrams, then exits
//!   cargo run -p timerfd-reactor --example echo -- serve   # echo on 127.0.0.1:9999 until Ctrl-C
//!
//! (`nc -u 127.0.0.1 9999` talks to it.)

use std::net::UdpSocket;
use std::time::Duration;

use reactor::channel::Event;
use reactor::{Expiration, Interest, Reactor, Signal, TimerMode};

/// Everything the callbacks share.
#[derive(Default)]
struct Echo {
    echoed: u64,
    bytes: usize,
    ticks: u64,
    notes: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve = std::env::args().nth(1).as_deref() == Some("serve");
    let reactor = Reactor::<Echo>::try_new()?;

    let addr = if serve { "127.0.0.1:9999" } else { "127.0.0.1:0" };
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?; // a blocking socket would be refused: it could block the loop
    let local = socket.local_addr()?;
    let _udp = reactor.add_io(socket.try_clone()?, Interest::READABLE, move |ctx, _| {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if socket.send_to(&buf[..n], from).is_ok() {
                let echo = ctx.data();
                echo.echoed += 1;
                echo.bytes += n;
            }
        }
    })?;

    let every = Expiration::every(Duration::from_millis(if serve { 1000 } else { 20 }));
    let ticker = reactor.add_timer(TimerMode::Shared, every, |ctx, n| {
        let echo = ctx.data();
        echo.ticks += n;
        if std::env::args().nth(1).is_some() {
            println!("{} datagrams, {} bytes echoed", echo.echoed, echo.bytes);
        }
    })?;
    ticker.set_leeway(Duration::from_millis(5))?; // a report may be a little late

    let notes = reactor.channel(|ctx, e: Event<String>| {
        if let Event::Msg(note) = e {
            ctx.data().notes.push(note);
        }
    })?;
    let _signals = reactor.add_signals(&[Signal::INT, Signal::TERM], |ctx, info| {
        println!("{} from pid {}: stopping", info.signal, info.pid);
        ctx.stop();
    })?;

    let mut echo = Echo::default();
    if serve {
        println!("echoing on {local}; Ctrl-C stops");
        reactor.run_with(&mut echo)?;
    } else {
        // The self-test: another thread sends 5 datagrams and a note.
        let tx = notes.sender();
        let client = std::thread::spawn(move || -> std::io::Result<()> {
            let c = UdpSocket::bind("127.0.0.1:0")?;
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut buf = [0u8; 64];
            for i in 0..5 {
                c.send_to(format!("ping {i}").as_bytes(), local)?;
                c.recv_from(&mut buf)?;
            }
            let _ = tx.send("client done".into());
            Ok(())
        });
        let limit = Duration::from_secs(5);
        let done = |e: &mut Echo| e.echoed == 5 && e.ticks >= 2 && !e.notes.is_empty();
        let ok = reactor.run_until_timeout_with(&mut echo, limit, done)?;
        client.join().map_err(|_| "client panicked")??;
        assert!(ok, "the self-test timed out");
    }
    println!(
        "echoed {} datagrams ({} bytes) in {} ticks; notes: {:?}",
        echo.echoed, echo.bytes, echo.ticks, echo.notes
    );
    Ok(())
}
