//! Running a [`Pmd`] on its own thread, pinned to its core.
//!
//! The loop: apply pending control messages, poll once, and when the poll
//! found nothing and `pmd-sleep-max` is set, back off (doubling from 1 µs
//! up to the maximum) so an idle PMD does not burn its core; any packet
//! resets the back-off, as OVS 3.x's PMD load-based sleeping does. The
//! thread stops when its stop flag is raised or its control channel
//! closes, flushing its transmit buffers, deleting its flows as a flush
//! does (the upcall handler hears each one's final statistics) and
//! dropping (returning) every buffer it holds.
//!
//! Thread hooks: a driver whose library wants to know its polling threads
//! (DPDK: `rte_thread_register` gives the thread an lcore id, hence its
//! own mempool cache) adds a [`ThreadHook`] once; every PMD and non-PMD
//! thread spawned afterwards runs each hook's `start` after pinning itself
//! and each `stop` (in reverse order) after it has dropped its `Pmd`, so
//! the last buffers go back while the thread is still registered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};

use super::clock::PmdClock;
use super::{Pmd, PmdMsg};

/// Iterations between rx-cycle history rotations check (cheap).
const ROTATE_CHECK_EVERY: u32 = 1024;

/// Per-thread setup and teardown a driver needs on every polling thread.
#[derive(Clone, Copy, Debug)]
pub struct ThreadHook {
    /// Who added it (one hook per name).
    pub name: &'static str,
    /// Runs on the new thread after pinning, before the first poll.
    pub start: fn(),
    /// Runs on the thread after its `Pmd` is dropped, before it exits.
    pub stop: fn(),
}

static HOOKS: Mutex<Vec<ThreadHook>> = Mutex::new(Vec::new());

/// Adds `hook` for every polling thread spawned from now on; adding a hook
/// with the same name again replaces it.
pub fn add_thread_hook(hook: ThreadHook) {
    let mut hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    hooks.retain(|h| h.name != hook.name);
    hooks.push(hook);
}

fn thread_hooks() -> Vec<ThreadHook> {
    HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs the hooks' `stop`s, in reverse order, when dropped: after the
/// thread's `Pmd` is gone, whether the loop returned or panicked, so a
/// dead PMD thread still gives back what its `start`s took (DPDK: its
/// lcore id, of which there are few).
struct StopHooks(Vec<ThreadHook>);

impl Drop for StopHooks {
    fn drop(&mut self) {
        for hook in self.0.iter().rev() {
            (hook.stop)();
        }
    }
}

/// How a PMD thread runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmdThreadConfig {
    /// Core to pin to; `None` leaves the thread unpinned (non-PMD thread).
    pub core: Option<usize>,
    /// Longest idle back-off (µs); 0 = busy polling.
    pub sleep_max_us: u64,
    /// Length of one rx-cycle history interval (ms).
    pub rxq_interval_ms: u64,
}

/// A running PMD thread.
#[derive(Debug)]
pub struct PmdThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PmdThread {
    /// Starts `pmd` on a new thread named `name`.
    pub fn spawn(
        name: String,
        pmd: Pmd,
        control: Receiver<PmdMsg>,
        config: PmdThreadConfig,
    ) -> std::io::Result<PmdThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let hooks = thread_hooks();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            if let Some(core) = config.core {
                // Failure to pin (core went offline) leaves the thread
                // unpinned: slower, not wrong.
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
            }
            for hook in &hooks {
                (hook.start)();
            }
            // Declared before the Pmd, so dropped after it, on a normal
            // return and when the loop panics alike.
            let _stop_hooks = StopHooks(hooks);
            let mut pmd = pmd;
            run(&mut pmd, &control, &stop_flag, config);
            // Its megaflow copies die with it: their last packets still
            // reach the handler (rule statistics).
            pmd.flush_flows();
        })?;
        Ok(PmdThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for PmdThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn run(pmd: &mut Pmd, control: &Receiver<PmdMsg>, stop: &AtomicBool, config: PmdThreadConfig) {
    let mut sleep_us = 0u64;
    let mut iterations = 0u32;
    // The time from the cycle counter, not a clock_gettime per iteration.
    let mut clock = PmdClock::new();
    let mut next_rotate_ms = clock.now_ns() / 1_000_000 + config.rxq_interval_ms;
    loop {
        let now_ns = clock.now_ns();
        loop {
            match control.try_recv() {
                Ok(msg) => pmd.handle(msg, now_ns),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        let received = pmd.poll_once(now_ns);
        iterations = iterations.wrapping_add(1);
        if config.rxq_interval_ms > 0 && iterations.is_multiple_of(ROTATE_CHECK_EVERY) {
            let now_ms = now_ns / 1_000_000;
            if now_ms >= next_rotate_ms {
                pmd.rotate_rxq_cycles();
                next_rotate_ms = now_ms + config.rxq_interval_ms;
            }
        }
        if received > 0 || config.sleep_max_us == 0 {
            sleep_us = 0;
            continue;
        }
        sleep_us = (sleep_us * 2).clamp(1, config.sleep_max_us);
        std::thread::sleep(Duration::from_micros(sleep_us));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static STOPPED: AtomicUsize = AtomicUsize::new(0);

    fn nothing() {}
    fn count_stop() {
        STOPPED.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn stop_hooks_run_when_the_thread_panics() {
        let hook = ThreadHook {
            name: "test",
            start: nothing,
            stop: count_stop,
        };
        let result = std::thread::spawn(move || {
            let _stop_hooks = StopHooks(vec![hook, hook]);
            panic!("a PMD loop bug");
        })
        .join();
        assert!(result.is_err());
        assert_eq!(STOPPED.load(Ordering::SeqCst), 2);
    }
}
