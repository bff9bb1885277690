//! vigil-netem: a userspace link emulator between two network namespaces.
//!
//! ```text
//! vigil-netem --ns-a NAME --dev-a NAME --ns-b NAME --dev-b NAME \
//!             --delay-ms F --loss F [--seed N]
//! ```
//!
//! It creates a TUN device `dev-a` inside namespace `ns-a` and `dev-b` inside
//! `ns-b`, prints `ready` on stdout, then moves IP packets between them: each
//! packet is dropped with probability `loss`, otherwise delivered `delay-ms`
//! after it was read, FIFO per direction. The caller configures addresses,
//! routes and link state after `ready`. It exits on SIGTERM or when its stdin
//! is closed (so it never outlives the process that started it).
//!
//! Why hand-rolled: the kernel we test on has neither `tc netem` nor
//! nfqueue, so latency and loss have to be emulated in userspace. The TUN
//! part is ~40 lines of libc (open /dev/net/tun + TUNSETIFF), and the device
//! must be created after `setns()` into each namespace, which the tun crates
//! don't help with; so no extra dependency.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Upper bound on queued packets per direction (beyond it: tail drop).
const MAX_QUEUE: usize = 100_000;
/// Packets read per wakeup before flushing due packets.
const READ_BATCH: usize = 256;

#[derive(Debug)]
struct Args {
    ns_a: String,
    dev_a: String,
    ns_b: String,
    dev_b: String,
    delay: Duration,
    loss: f64,
    seed: Option<u64>,
}

fn usage() -> String {
    "usage: vigil-netem --ns-a NAME --dev-a NAME --ns-b NAME --dev-b NAME \
     --delay-ms F --loss F [--seed N]"
        .to_string()
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut ns_a, mut dev_a, mut ns_b, mut dev_b) = (None, None, None, None);
    let (mut delay_ms, mut loss, mut seed) = (0.0f64, 0.0f64, None);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(usage());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        let num = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{flag}: not a non-negative number: {v}"))
        };
        match flag.as_str() {
            "--ns-a" => ns_a = Some(value),
            "--dev-a" => dev_a = Some(value),
            "--ns-b" => ns_b = Some(value),
            "--dev-b" => dev_b = Some(value),
            "--delay-ms" => delay_ms = num(&value)?,
            "--loss" => loss = num(&value)?,
            "--seed" => {
                seed = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seed: bad number {value}"))?,
                )
            }
            _ => return Err(format!("unknown argument {flag}\n{}", usage())),
        }
    }
    if loss > 1.0 {
        return Err(format!("--loss {loss} is above 1"));
    }
    let need =
        |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is required\n{}", usage()));
    Ok(Args {
        ns_a: need(ns_a, "--ns-a")?,
        dev_a: need(dev_a, "--dev-a")?,
        ns_b: need(ns_b, "--ns-b")?,
        dev_b: need(dev_b, "--dev-b")?,
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        loss,
        seed,
    })
}

/// Move this thread into the network namespace `/run/netns/NAME`.
fn enter_ns(name: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{name}"))
        .map_err(|e| io::Error::new(e.kind(), format!("open /run/netns/{name}: {e}")))?;
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Create TUN device `name` (IFF_TUN | IFF_NO_PI) in the current namespace.
fn open_tun(name: &str) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::other(format!("bad interface name {name:?}")));
    }
    // SAFETY: opening a path with a NUL-terminated literal.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads/writes a struct ifreq we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
    }
    Ok(fd)
}

/// Wait until `fd` is readable or `timeout` passes (None = forever).
fn wait_readable(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: one valid pollfd, a valid or null timespec, no sigmask.
    if unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Write one packet; a full or downed device just loses it, like a wire.
fn send(fd: RawFd, pkt: &[u8]) {
    // SAFETY: writing from a valid buffer of pkt.len() bytes.
    unsafe { libc::write(fd, pkt.as_ptr().cast(), pkt.len()) };
}

/// Relay packets from `from` to `to` forever (returns only on error).
fn pump(from: &OwnedFd, to: &OwnedFd, delay: Duration, loss: f64, mut rng: SmallRng) -> io::Error {
    let (from, to) = (from.as_raw_fd(), to.as_raw_fd());
    let mut buf = vec![0u8; 65536];
    // Constant delay: arrival order == due order, so a FIFO is time-ordered.
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        let timeout = queue
            .front()
            .map(|(due, _)| due.saturating_duration_since(Instant::now()));
        if timeout != Some(Duration::ZERO) {
            if let Err(e) = wait_readable(from, timeout) {
                return e;
            }
        }
        let now = Instant::now();
        for _ in 0..READ_BATCH {
            // SAFETY: reading into a valid buffer of buf.len() bytes.
            let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return e,
                }
            }
            let pkt = &buf[..n as usize];
            if loss > 0.0 && rng.random::<f64>() < loss {
                continue;
            }
            if delay.is_zero() {
                send(to, pkt);
            } else if queue.len() < MAX_QUEUE {
                queue.push_back((now + delay, pkt.to_vec()));
            }
        }
        let now = Instant::now();
        while queue.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, pkt)) = queue.pop_front() {
                send(to, &pkt);
            }
        }
    }
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; the kernel closes the TUN fds,
    // which removes the (non-persistent) devices.
    unsafe { libc::_exit(0) }
}

fn run(args: Args) -> io::Result<()> {
    // SAFETY: installing a handler that only calls _exit.
    unsafe { libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t) };

    enter_ns(&args.ns_a)?;
    let tun_a = Arc::new(open_tun(&args.dev_a)?);
    enter_ns(&args.ns_b)?;
    let tun_b = Arc::new(open_tun(&args.dev_b)?);

    let seed = args.seed.unwrap_or_else(rand::random);
    for (i, (from, to)) in [(&tun_a, &tun_b), (&tun_b, &tun_a)].into_iter().enumerate() {
        let (from, to) = (Arc::clone(from), Arc::clone(to));
        let rng = SmallRng::seed_from_u64(seed.wrapping_add(i as u64));
        let (delay, loss) = (args.delay, args.loss);
        std::thread::Builder::new()
            .name(format!("pump-{i}"))
            .spawn(move || {
                let e = pump(&from, &to, delay, loss, rng);
                eprintln!("relay direction {i} failed: {e}");
                std::process::exit(1);
            })?;
    }

    let mut out = io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;

    // Run until stdin reaches EOF (or fails): our parent is gone or done.
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_args() {
        let a = args("--ns-a x --dev-a xa --ns-b y --dev-b yb --delay-ms 2.5 --loss 0.1 --seed 7")
            .unwrap();
        assert_eq!((a.ns_a.as_str(), a.dev_b.as_str()), ("x", "yb"));
        assert_eq!(a.delay, Duration::from_micros(2500));
        assert_eq!((a.loss, a.seed), (0.1, Some(7)));
        assert!(args("--ns-a x --dev-a xa --ns-b y").is_err());
        assert!(args("--ns-a x --dev-a xa --ns-b y --dev-b z --loss 2").is_err());
        assert!(args("--bogus 1").is_err());
    }
}
