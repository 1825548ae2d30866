//! How many UDP exchanges the stub client keeps in flight: an adaptive window that backs
//! off when answers go missing (a full socket buffer somewhere drops datagrams, and each
//! drop costs a whole timeout) and grows back while answers come.
//!
//! The window is judged over epochs of completed exchanges. An epoch whose share of
//! losses (exchanges that timed out) is above [`LOSS_SHARE`] halves the window, down to
//! half of what was actually in flight; an epoch without loss in which the window was
//! full grows it by a sixteenth. A name that is simply never answered (a broken
//! delegation) is one loss among many answers and does not shrink the window: only loss
//! at a rate that looks like congestion does.
//!
//! The window starts at its maximum, so that a caller's own limit (`Limited`,
//! `check --concurrency`) is what counts until loss is seen.

use std::sync::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The largest window (and the first): above any `--concurrency` the CLI accepts.
pub(crate) const MAX_WINDOW: usize = 4096;
/// The window never shrinks below this.
pub(crate) const MIN_WINDOW: usize = 16;
/// An epoch with more than this share of losses (1 in 50) shrinks the window.
const LOSS_SHARE: usize = 50;

#[derive(Debug)]
pub(crate) struct Window {
    permits: Semaphore,
    state: Mutex<State>,
    min: usize,
    max: usize,
}

#[derive(Debug)]
struct State {
    /// The window: permits in circulation, less `debt`.
    size: usize,
    /// Permits to take out of circulation as they come back (after a shrink).
    debt: usize,
    /// Exchanges holding a permit, and the most at once this epoch.
    in_flight: usize,
    peak: usize,
    /// This epoch: exchanges completed, of which lost; whether the window was full.
    completed: usize,
    lost: usize,
    full: bool,
}

/// The right to send one datagram; given back (or retired, after a shrink) on drop.
pub(crate) struct WindowPermit<'a> {
    window: &'a Window,
    permit: Option<SemaphorePermit<'a>>,
}

impl Window {
    pub(crate) fn new(min: usize, max: usize) -> Self {
        let max = max.max(1);
        let min = min.clamp(1, max);
        Window {
            permits: Semaphore::new(max),
            state: Mutex::new(State { size: max, debt: 0, in_flight: 0, peak: 0, completed: 0, lost: 0, full: false }),
            min,
            max,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current window.
    pub(crate) fn size(&self) -> usize {
        self.state().size
    }

    pub(crate) async fn acquire(&self) -> WindowPermit<'_> {
        // The semaphore is never closed.
        let permit = self.permits.acquire().await.ok();
        let mut s = self.state();
        s.in_flight += 1;
        s.peak = s.peak.max(s.in_flight);
        if s.in_flight >= s.size {
            s.full = true;
        }
        WindowPermit { window: self, permit }
    }

    /// One exchange ended: answered, or `lost` (timed out).
    fn complete(&self, lost: bool) {
        let mut s = self.state();
        s.completed += 1;
        s.lost += usize::from(lost);
        let epoch = s.size.clamp(32, 512);
        if s.completed < epoch {
            return;
        }
        if s.lost * LOSS_SHARE > s.completed {
            // Congestion: half of what was in flight, whatever the window allowed.
            let target = (s.peak.min(s.size) / 2).max(self.min);
            if target < s.size {
                s.debt += s.size - target;
                s.size = target;
                // Idle permits go at once; those in use as they come back.
                let idle = self.permits.forget_permits(s.debt);
                s.debt -= idle;
            }
        } else if s.lost == 0 && s.full && s.size < self.max {
            let grow = (s.size / 16).max(1).min(self.max - s.size);
            s.size += grow;
            let repaid = grow.min(s.debt);
            s.debt -= repaid;
            if grow > repaid {
                self.permits.add_permits(grow - repaid);
            }
        }
        s.completed = 0;
        s.lost = 0;
        s.peak = s.in_flight;
        s.full = s.in_flight >= s.size;
    }
}

impl WindowPermit<'_> {
    pub(crate) fn answered(self) {
        self.window.complete(false);
    }

    pub(crate) fn lost(self) {
        self.window.complete(true);
    }
}

impl Drop for WindowPermit<'_> {
    fn drop(&mut self) {
        let mut s = self.window.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(permit) = self.permit.take() {
            if s.debt > 0 {
                s.debt -= 1;
                permit.forget();
            } else {
                drop(permit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    /// `n` exchanges in flight at once, then each completes (the first `lost` of them lost).
    async fn burst(w: &Window, n: usize, lost: usize) {
        let mut permits = Vec::new();
        for _ in 0..n {
            permits.push(w.acquire().await);
        }
        for (i, p) in permits.into_iter().enumerate() {
            if i < lost { p.lost() } else { p.answered() }
        }
    }

    #[test]
    fn backs_off_on_loss_to_half_of_what_was_in_flight() {
        rt().block_on(async {
            let w = Window::new(MIN_WINDOW, MAX_WINDOW);
            assert_eq!(w.size(), MAX_WINDOW);
            // 256 in flight (the caller's limit), a tenth of them lost: 128.
            burst(&w, 256, 26).await;
            burst(&w, 256, 26).await;
            assert_eq!(w.size(), 128);
            // The permits beyond the window are retired: no more than 128 can be had.
            let mut held = Vec::new();
            for _ in 0..128 {
                held.push(w.acquire().await);
            }
            assert!(w.permits.try_acquire().is_err());
            for p in held {
                p.lost();
            }
            // Loss goes on: down to the floor, never below.
            for _ in 0..20 {
                burst(&w, w.size(), w.size()).await;
            }
            assert_eq!(w.size(), MIN_WINDOW);
        });
    }

    #[test]
    fn a_few_lost_answers_do_not_shrink_it() {
        rt().block_on(async {
            let w = Window::new(MIN_WINDOW, MAX_WINDOW);
            for _ in 0..20 {
                burst(&w, 256, 2).await; // under 1 in 50
            }
            assert_eq!(w.size(), MAX_WINDOW);
        });
    }

    #[test]
    fn grows_back_while_full_and_answered() {
        rt().block_on(async {
            let w = Window::new(MIN_WINDOW, 256);
            for _ in 0..10 {
                burst(&w, w.size(), w.size()).await;
            }
            assert_eq!(w.size(), MIN_WINDOW);
            for _ in 0..200 {
                burst(&w, w.size(), 0).await;
            }
            assert_eq!(w.size(), 256);
            // Every permit is back in circulation, none more.
            let mut held = Vec::new();
            for _ in 0..256 {
                held.push(w.permits.try_acquire().unwrap());
            }
            assert!(w.permits.try_acquire().is_err());
        });
    }
}
