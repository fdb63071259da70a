#!/usr/bin/env python3
"""Fault and soak scenarios against demo-server, on loopback.

Run through scripts/reliability.sh, which builds the release server first:

    scripts/reliability.py SERVER_BINARY [SCENARIO...]

Every scenario starts its own server on 127.0.0.1 (a free port), drives it
with clients from this file, reads the server from the kernel's side
(/proc/PID/fd, /proc/PID/status, /proc/PID/stat) and stops it again. It
reads no metric by name: /metrics is only checked to answer 200, so a
rename of the metrics cannot break it. Every
loop is bounded in count and in time. Each scenario runs in three
configurations: dedicated timers (the default), --timer-mode shared, and
--workers 2. The output is one Markdown table row per scenario and
configuration, with its figure and whether the promise was met; the exit
status is 1 if any promise was missed.

QUICK=1 runs the short forms (fewer cycles, shorter runs) that CI runs.
"""

import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

QUICK = os.environ.get("QUICK", "") not in ("", "0")
CONFIGS = [
    ("dedicated", []),
    ("shared", ["--timer-mode", "shared"]),
    ("2 workers", ["--workers", "2"]),
]
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB = 1024
MIB = 1024 * 1024


# --- the server, as the kernel sees it ------------------------------------


class Server:
    """A demo-server child on a free loopback port; killed on stop()."""

    def __init__(self, binary, args):
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.addr = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                raise RuntimeError("demo-server exited before listening: " + self.proc.stderr.read().decode())
            m = re.search(r"listening on http://([^/\s]+)/", line)
            if m:
                host, port = m.group(1).rsplit(":", 1)
                self.addr = (host, int(port))
                break
        if self.addr is None:
            raise RuntimeError("no banner from demo-server within 10 s")
        # Keep draining its output so it never blocks on a full pipe.
        self.stderr_text = []
        for pipe, sink in ((self.proc.stdout, None), (self.proc.stderr, self.stderr_text)):
            threading.Thread(target=_drain, args=(pipe, sink), daemon=True).start()

    def links(self):
        out = []
        try:
            for name in os.listdir(f"/proc/{self.pid}/fd"):
                try:
                    out.append(os.readlink(f"/proc/{self.pid}/fd/{name}"))
                except OSError:
                    pass
        except OSError:
            pass
        return out

    def fds(self):
        return len(self.links())

    def sockets(self):
        return sum(1 for t in self.links() if t.startswith("socket:"))

    def timerfds(self):
        return sum(1 for t in self.links() if t == "anon_inode:[timerfd]")

    def status(self, field):
        """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def rss_kib(self):
        return self.status("VmRSS")

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def settle(self, sockets, limit=10.0):
        """Wait until the server holds `sockets` sockets; the seconds it took, or None."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if self.sockets() == sockets:
                return time.monotonic() - start
            time.sleep(0.01)
        return None

    def warm(self):
        """Open and close one stream, then wait (at most 3 s) until the fd
        table holds still for 300 ms: the baseline every delta is taken
        from. (Workers finish starting after the banner, and some fds are
        made on first use; neither is a leak.)"""
        s = open_stream(self.addr)
        read_until(s, b"event: hello")
        s.close()
        deadline, last, since = time.monotonic() + 3, None, time.monotonic()
        while time.monotonic() < deadline:
            now = sorted(self.links())
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= 0.3:
                break
            time.sleep(0.02)

    def fd_delta(self, base, limit=5.0):
        """Wait (at most `limit` s) for the fd count to return to `base`; the difference left."""
        deadline = time.monotonic() + limit
        while self.fds() != base and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.fds() - base

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def _drain(pipe, sink):
    for line in iter(pipe.readline, b""):
        if sink is not None:
            sink.append(line.decode(errors="replace"))


def get(addr, path, timeout=5.0):
    """(status, body) of a GET, or (None, error)."""
    try:
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return None, str(e)


# --- clients --------------------------------------------------------------

REQUEST = b"GET /stream/fixed HTTP/1.1\r\nHost: reliability\r\n\r\n"


def connect(addr, rcvbuf=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(addr)
    return s


def open_stream(addr, rcvbuf=None):
    s = connect(addr, rcvbuf)
    s.sendall(REQUEST)
    return s


def read_until(s, marker, limit=5.0):
    """Read until `marker` has arrived, EOF or `limit` seconds: the bytes."""
    got = b""
    deadline = time.monotonic() + limit
    while marker not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got


def read_all(socks, done, limit):
    """Read every socket at once until done(bytes) or EOF, for at most
    `limit` seconds. Returns each socket's bytes and whether it reached EOF."""
    sel = selectors.DefaultSelector()
    got = {s: b"" for s in socks}
    eof = {s: False for s in socks}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    pending = len(socks)
    deadline = time.monotonic() + limit
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(0.1, deadline - time.monotonic()))):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                got[s] += chunk
            else:
                eof[s] = True
            if not chunk or done(got[s]):
                sel.unregister(s)
                pending -= 1
    sel.close()
    return got, eof


def rst_close(s):
    """Close with a RST instead of a FIN (SO_LINGER, zero timeout)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class GoodClient(threading.Thread):
    """A stream client that reads everything; records heartbeat arrival gaps."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.sock = open_stream(addr)
        self.stop_at = None
        self.heartbeats = 0
        self.max_gap = 0.0
        self.closed = False

    def run(self):
        last = None
        self.sock.settimeout(0.5)
        while not self.stop_at or time.monotonic() < self.stop_at:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            now = time.monotonic()
            n = chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
            if n:
                if last is not None:
                    self.max_gap = max(self.max_gap, now - last)
                last = now
                self.heartbeats += n


# --- scenarios: each returns (figure, promise, met) ------------------------


def soak(binary, args):
    cycles = 1_000 if QUICK else 10_000
    srv = Server(binary, ["--interval", "100ms", *args])
    try:
        srv.warm()
        base_sockets, base_fds, base_timerfds = srv.sockets(), srv.fds(), srv.timerfds()
        base_rss = srv.rss_kib()
        start = time.monotonic()
        hellos = 0
        for i in range(cycles):
            if time.monotonic() - start > 300:
                break
            s = open_stream(srv.addr)
            if b"event: hello" in read_until(s, b"event: hello"):
                hellos += 1
            if i % 2:
                rst_close(s)
            else:
                s.close()
        took = time.monotonic() - start
        settled = srv.settle(base_sockets)
        fd_delta = srv.fd_delta(base_fds)
        timerfd_delta = srv.timerfds() - base_timerfds
        growth = srv.rss_kib() - base_rss
        ok = hellos == cycles and settled is not None and fd_delta == 0 and growth <= 2 * KIB
        figure = (
            f"{hellos:,}/{cycles:,} streams opened and closed ({cycles // 2:,} FIN, "
            f"{cycles - cycles // 2:,} RST) in {took:.1f} s; fd delta {fd_delta:+d} "
            f"(timerfds {timerfd_delta:+d}); RSS {base_rss / KIB:.1f} → "
            f"{(base_rss + growth) / KIB:.1f} MiB ({growth:+,} KiB)"
        )
        return figure, "fd delta 0, RSS growth ≤ 2 MiB", ok
    finally:
        srv.stop()


def close_all(srv, clients):
    """End a scenario: close its clients, then stop its server."""
    for c in clients:
        c.close()
    srv.stop()


def slow_readers(binary, args):
    # The short form cuts the queues to 8 KiB, so that readers fall that far
    # behind (and are cut off) within its 10 s; the full form uses the default.
    n, secs, max_buffered = (500, 10, 8 * KIB) if QUICK else (500, 60, 64 * KIB)
    srv = Server(
        binary,
        ["--interval", "10ms", "--max-conns", "2000", "--max-buffered", str(max_buffered), *args],
    )
    clients = []
    try:
        base_sockets, base_rss = srv.sockets(), srv.rss_kib()
        good = GoodClient(srv.addr)
        good.stop_at = time.monotonic() + secs + 5
        good.start()
        for _ in range(n):
            clients.append(open_stream(srv.addr, rcvbuf=4096))
        start = time.monotonic()
        peak_rss, first_cut_at, all_cut_at = base_rss, None, None
        while time.monotonic() - start < secs:
            time.sleep(0.25)
            peak_rss = max(peak_rss, srv.rss_kib())
            held = srv.sockets() - base_sockets - 1
            if first_cut_at is None and held < n:
                first_cut_at = time.monotonic() - start
            if all_cut_at is None and held == 0:
                all_cut_at = time.monotonic() - start
        remaining = srv.sockets() - base_sockets - 1
        end_rss = srv.rss_kib()
        gap_ms = good.max_gap * 1000
        beats = good.heartbeats
        good_alive = not good.closed
        bound = 8 * MIB // KIB + (n + 1) * (max_buffered + KIB) // KIB
        ok = remaining == 0 and good_alive and peak_rss <= bound and gap_ms <= 100
        if all_cut_at is not None:
            cut = f"all {n} cut off between {first_cut_at:.1f} and {all_cut_at:.1f} s"
        else:
            cut = f"{remaining} of {n} not cut off after {secs} s"
        figure = (
            f"--max-buffered {max_buffered // KIB}k: {cut}; peak RSS {peak_rss / KIB:.1f} MiB "
            f"(bound {bound / KIB:.0f} MiB), {end_rss / KIB:.1f} MiB at the end; "
            f"good client: {beats:,} heartbeats, largest gap {gap_ms:.0f} ms"
            + ("" if good_alive else ", **cut off**")
        )
        good.stop_at = time.monotonic()
        return figure, f"{n} readers at 10 ms for {secs} s: all cut off, RSS bounded, gap ≤ 100 ms", ok
    finally:
        close_all(srv, clients)


def emfile(binary, args):
    n = 300
    # --fd-limit: the server sets its own soft limit (the hard one stays,
    # so --max-conns 1000 is allowed and the fd limit is what binds).
    srv = Server(binary, ["--interval", "100ms", "--fd-limit", "64", "--max-conns", "1000", *args])
    clients = []
    try:
        srv.warm()
        base_fds, base_sockets = srv.fds(), srv.sockets()
        for _ in range(n):
            try:
                clients.append(open_stream(srv.addr))
            except OSError:
                pass
        answers, _ = read_all(clients, lambda b: len(b) >= 12, limit=10)
        counts = {"200": 0, "503": 0, "none": 0}
        for b in answers.values():
            key = b[9:12].decode(errors="replace") if b.startswith(b"HTTP/1.1 ") else "none"
            counts[key] = counts.get(key, 0) + 1
        at_limit = srv.fds()
        cpu0, t0 = srv.cpu_seconds(), time.monotonic()
        time.sleep(2.0)
        cpu = (srv.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
        status, _ = get(srv.addr, "/metrics")
        for c in clients:
            c.close()
        clients = []
        recovered = srv.settle(base_sockets)
        after = open_stream(srv.addr)
        fresh = read_until(after, b"\nid: ", limit=3)
        after.close()
        fresh_ok = fresh.startswith(b"HTTP/1.1 200") and b"\nid: " in fresh
        srv.settle(base_sockets)
        fd_delta = srv.fd_delta(base_fds)
        ok = (
            cpu < 5
            and status == 200
            and recovered is not None
            and fresh_ok
            and fd_delta == 0
            and counts["200"] + counts["503"] == n
        )
        figure = (
            f"{n} clients: {counts['200']} × 200, {counts['503']} × 503, {n - counts['200'] - counts['503']} other; "
            f"{at_limit}/64 fds in use; CPU {cpu:.1f}% while full; /metrics {status}; "
            + (f"recovered in {recovered * 1000:.0f} ms" if recovered is not None else "**not recovered**")
            + f", a new stream {'streams' if fresh_ok else '**fails**'}, fd delta {fd_delta:+d}"
        )
        return figure, "nofile 64: no spin (< 5% CPU), /metrics answers, full recovery", ok
    finally:
        close_all(srv, clients)


def sigterm(binary, args):
    n = 1000
    srv = Server(binary, ["--interval", "1s", *args])
    clients = []
    try:
        for _ in range(n):
            clients.append(open_stream(srv.addr))
        hellos, _ = read_all(clients, lambda b: b"event: hello" in b, limit=20)
        opened = sum(1 for b in hellos.values() if b"event: hello" in b)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        ends, eof = read_all(clients, lambda b: b"event: shutdown" in b, limit=5)
        got_final = sum(1 for b in ends.values() if b"event: shutdown" in b)
        try:
            code = srv.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - t0
        ok = opened == n and got_final == n and code == 0 and took <= 2.0
        figure = (
            f"{opened}/{n} streams open; exit {code} {took:.2f} s after SIGTERM; "
            f"{got_final}/{n} got `event: shutdown`"
        )
        return figure, "exit 0 within 2 s, every client gets the final event", ok
    finally:
        close_all(srv, clients)


KILLED_CLIENT = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(n):
    s = socket.create_connection((host, port))
    held.append(s)
    s.sendall(b"GET /stream/fi")  # half a request head
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(b"GET /stream/fixed HTTP/1.1\r\nHost: x\r\n\r\n")  # a stream it never reads
    held.append(s)
print("ready", flush=True)
time.sleep(60)
"""


def killed_client(binary, args):
    n = 20
    srv = Server(binary, ["--interval", "2ms", *args])
    try:
        srv.warm()
        base_fds = srv.fds()
        base_sockets = srv.sockets()
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_CLIENT, srv.addr[0], str(srv.addr[1]), str(n)],
            stdout=subprocess.PIPE,
        )
        ready = child.stdout.readline().strip() == b"ready"
        held = srv.settle(base_sockets + 2 * n, limit=5) is not None
        time.sleep(1.0)  # the streams' unread heartbeats pile up in the kernel
        child.kill()
        child.wait(timeout=5)
        closed = srv.settle(base_sockets, limit=10)
        fd_delta = srv.fd_delta(base_fds)
        status, _ = get(srv.addr, "/metrics")
        alive = srv.proc.poll() is None
        ok = ready and held and closed is not None and fd_delta == 0 and status == 200 and alive
        figure = (
            f"SIGKILL on a client holding {n} half-sent heads and {n} unread streams: "
            + (f"server closed all {2 * n} in {closed * 1000:.0f} ms" if closed is not None else "**connections left open**")
            + f", fd delta {fd_delta:+d}; /metrics {status}"
        )
        return figure, "every connection of a killed client closes, the server lives on", ok
    finally:
        srv.stop()


def never_send(binary, args):
    n, timeout = 50, 1.0
    srv = Server(binary, ["--header-timeout", "1s", *args])
    clients = []
    try:
        t0 = time.monotonic()
        clients = [connect(srv.addr) for _ in range(n)]
        closed_at = {}
        sel = selectors.DefaultSelector()
        got = {s: b"" for s in clients}
        for s in clients:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while len(closed_at) < n and time.monotonic() - t0 < timeout + 5:
            for key, _ in sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                got[s] += chunk
                if not chunk:
                    closed_at[s] = time.monotonic() - t0
                    sel.unregister(s)
        sel.close()
        times = sorted(closed_at.values())
        got408 = sum(1 for b in got.values() if b.startswith(b"HTTP/1.1 408"))
        ok = len(times) == n and got408 == n and times[0] >= timeout * 0.99 and times[-1] <= timeout + 0.5
        span = f"{times[0]:.2f}–{times[-1]:.2f} s" if times else "never"
        figure = f"{len(times)}/{n} closed after {span} (--header-timeout 1s); {got408} got 408"
        return figure, "closed at the header timeout, with 408", ok
    finally:
        close_all(srv, clients)


SCENARIOS = [
    ("soak", soak),
    ("slow readers", slow_readers),
    ("EMFILE", emfile),
    ("SIGTERM", sigterm),
    ("killed client", killed_client),
    ("never sends", never_send),
]


def main():
    binary = sys.argv[1]
    wanted = set(sys.argv[2:])
    print(f"| scenario | config | figure | promise | met |\n|---|---|---|---|---|", flush=True)
    missed = 0
    for name, run in SCENARIOS:
        if wanted and name.split()[0].lower() not in wanted:
            continue
        for config, args in CONFIGS:
            if os.environ.get("CONFIG") and os.environ["CONFIG"] != config:
                continue
            t0 = time.monotonic()
            try:
                figure, promise, ok = run(binary, args)
            except Exception as e:  # a scenario that breaks is a missed promise, said so
                figure, promise, ok = f"**error**: {type(e).__name__}: {e}", "", False
            missed += not ok
            print(
                f"| {name} | {config} | {figure} ({time.monotonic() - t0:.0f} s run) | {promise} | "
                f"{'yes' if ok else '**no**'} |",
                flush=True,
            )
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
