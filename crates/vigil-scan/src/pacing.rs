//! `--max-rate`: spaces probe starts evenly.
//!
//! Hand-rolled rather than pulling in `governor`: the scanner needs only a
//! single global "next free slot" clock, which is a few lines.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    /// `rate` probes per second; must be positive.
    pub fn new(rate: f64) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_slots_by_the_interval() {
        let pacer = Pacer::new(100.0);
        let start = Instant::now();
        for _ in 0..11 {
            pacer.wait().await;
        }
        let elapsed = start.elapsed();
        assert_eq!(elapsed, Duration::from_millis(100));
    }
}
