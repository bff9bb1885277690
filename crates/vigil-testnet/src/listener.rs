//! TCP listeners in the target namespace, all served by one accept thread.
//!
//! Sockets keep the namespace they were created in, so a listener is bound on
//! a helper thread inside the target namespace and then handed to a single
//! `poll(2)` loop that drains every listener's accept queue, writes the
//! optional banner and closes each connection. Hundreds of listeners cost one
//! thread in total.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::TestNetError;

/// Backlog for every listener (the kernel caps it at `net.core.somaxconn`,
/// 4096 by default in a fresh namespace).
const BACKLOG: libc::c_int = 4096;

struct Entry {
    sock: TcpListener,
    banner: Option<Arc<[u8]>>,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    next_id: u64,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// eventfd that interrupts the accept thread's poll after changes.
    wake: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// A listening TCP port in the target namespace. Dropping it closes the
/// socket, so the port becomes closed (connects get RST).
pub struct Listener {
    id: u64,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Listener {
    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Removing the entry drops (closes) the socket right here. The accept
        // thread's poll() may still hold a reference to it until it wakes,
        // which would keep it listening a moment longer; shutdown() takes it
        // out of LISTEN at once, so the port answers RST from now on.
        let removed = self.shared.lock().entries.remove(&self.id);
        if let Some(entry) = &removed {
            // SAFETY: plain syscall on a socket fd we still own.
            unsafe { libc::shutdown(entry.sock.as_raw_fd(), libc::SHUT_RDWR) };
        }
        drop(removed);
        self.shared.wake();
    }
}

/// The accept thread and the listeners it serves. Dropping it closes all of
/// them.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    pub(crate) fn new() -> Result<Hub, TestNetError> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(TestNetError::io("eventfd", io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vigil-testnet-accept".into())
            .spawn(move || accept_loop(&thread_shared))
            .map_err(|e| TestNetError::io("spawning the accept thread", e))?;
        Ok(Hub {
            shared,
            thread: Some(thread),
        })
    }

    /// Serve `sock` (a bound socket) from now on.
    pub(crate) fn add(
        &self,
        sock: TcpListener,
        banner: Option<Vec<u8>>,
    ) -> Result<Listener, TestNetError> {
        let addr = sock
            .local_addr()
            .map_err(|e| TestNetError::io("listener local_addr", e))?;
        sock.set_nonblocking(true)
            .map_err(|e| TestNetError::io(format!("set_nonblocking on {addr}"), e))?;
        let entry = Entry {
            sock,
            banner: banner.map(Arc::from),
        };
        let id = {
            let mut state = self.shared.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.entries.insert(id, entry);
            id
        };
        self.shared.wake();
        Ok(Listener {
            id,
            addr,
            shared: Arc::clone(&self.shared),
        })
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Close whatever Listener handles are still around.
        self.shared.lock().entries.clear();
    }
}

/// Bind `addr` with a large backlog. Must run inside the target namespace.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = TcpListener::bind(addr)?;
    // A second listen() on a listening socket just raises the backlog.
    // SAFETY: plain syscall on a valid socket fd.
    if unsafe { libc::listen(sock.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

fn accept_loop(shared: &Shared) {
    loop {
        // Snapshot the fds to poll; slot 0 is the wake eventfd.
        let (ids, mut fds): (Vec<u64>, Vec<libc::pollfd>) = {
            let state = shared.lock();
            if state.shutdown {
                return;
            }
            std::iter::once((u64::MAX, shared.wake.as_raw_fd()))
                .chain(
                    state
                        .entries
                        .iter()
                        .map(|(id, e)| (*id, e.sock.as_raw_fd())),
                )
                .map(|(id, fd): (u64, RawFd)| {
                    let pfd = libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    (id, pfd)
                })
                .unzip()
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue; // EINTR
        }
        if fds[0].revents != 0 {
            let mut buf = 0u64;
            // SAFETY: reading 8 bytes into a valid u64 resets the eventfd.
            unsafe { libc::read(shared.wake.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        }
        // Look listeners up by id: an fd may have been closed (and its number
        // reused) while we were polling.
        let mut stalled = false;
        let state = shared.lock();
        for (id, pfd) in ids.iter().zip(&fds).skip(1) {
            if pfd.revents == 0 {
                continue;
            }
            if let Some(entry) = state.entries.get(id) {
                stalled |= !drain(entry);
            }
        }
        drop(state);
        if stalled {
            // e.g. out of fds: don't spin on a permanently readable listener.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Accept everything queued on one listener, greet and close. Returns false
/// if accepting failed with an error that may persist.
fn drain(entry: &Entry) -> bool {
    loop {
        match entry.sock.accept() {
            Ok((mut stream, _)) => {
                if let Some(banner) = &entry.banner {
                    // Best effort: a banner fits into a fresh send buffer.
                    let _ = stream.set_nonblocking(true);
                    let _ = stream.write(banner);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(_) => return false,
        }
    }
}
