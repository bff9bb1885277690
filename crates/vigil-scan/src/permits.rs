//! An outside bound on a scan's sockets.
//!
//! A scan alone keeps [`crate::ScanConfig::concurrency`] connects in
//! flight. A program that runs many scans at once (the Vigil server: every
//! tenant's scans) wants one bound over all of them, so that together they
//! leave descriptors for everything else, and shares it out its own way.
//! It gives each scan a [`Permits`] source: before each port is probed the
//! scan waits for a [`Permit`], which it holds while that port's connects
//! (retries included) are under way. Each shard waits for one permit at a
//! time, so a scan queues a handful of waiters, not thousands.
//!
//! Without a source nothing is awaited: `vigil scan` runs as before.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A permit's wait; `None` when no more permits will come (the source is
/// closed): the scan then stops probing.
pub type PermitFuture = Pin<Box<dyn Future<Output = Option<Permit>> + Send>>;

/// Where a scan gets its permits. The future must not depend on the
/// runtime it is polled in (each shard polls it on its own thread):
/// `tokio::sync` primitives are fine.
pub trait PermitSource: Send + Sync + 'static {
    fn acquire(&self) -> PermitFuture;
}

/// The right to one socket; dropping it gives the socket back.
pub struct Permit {
    _held: Box<dyn Send>,
}

impl Permit {
    /// A permit that holds `guard` (e.g. semaphore permits) until dropped.
    pub fn new(guard: impl Send + 'static) -> Permit {
        Permit {
            _held: Box::new(guard),
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// A shared [`PermitSource`], as a scan's config holds it.
#[derive(Clone)]
pub struct Permits(Arc<dyn PermitSource>);

impl Permits {
    pub fn new(source: impl PermitSource) -> Permits {
        Permits(Arc::new(source))
    }

    /// Waits for a permit (what a scan does before each port).
    pub fn acquire(&self) -> PermitFuture {
        self.0.acquire()
    }
}

impl fmt::Debug for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permits")
    }
}
