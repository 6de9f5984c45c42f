//! SIGPIPE handling for the executing thread.
//!
//! A write to a broken connection raises SIGPIPE at the writing thread, and the
//! default action kills the process. closefuzz wants to *see* it: the signal is
//! blocked in each executing thread, so it stays pending instead of being acted on,
//! and after each step [`take_sigpipe`] checks `sigpending` and consumes it with a
//! zero-timeout `sigtimedwait`. A blocked signal is queued even when its disposition
//! is SIG_IGN (Rust's runtime ignores SIGPIPE; the kernel's `sig_ignored()` never
//! treats a blocked signal as ignored), so blocking is enough.

use nix::sys::signal::{SigSet, Signal};
use std::cell::Cell;

thread_local! {
    static BLOCKED: Cell<bool> = const { Cell::new(false) };
}

fn sigpipe_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGPIPE);
    set
}

/// Blocks SIGPIPE in the calling thread (once; later calls are free).
pub fn block_sigpipe_in_this_thread() {
    BLOCKED.with(|b| {
        if !b.get() {
            // pthread_sigmask(SIG_BLOCK): changes only this thread's mask; it cannot
            // fail for a valid set and SIG_BLOCK.
            let _ = sigpipe_set().thread_block();
            b.set(true);
        }
    });
}

/// Whether a SIGPIPE is pending for this thread; consumes it if so.
pub fn take_sigpipe() -> bool {
    // SAFETY: sigpending fills the set we pass.
    let pending = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        libc::sigismember(&set, libc::SIGPIPE) == 1
    };
    if pending {
        consume();
    }
    pending
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn consume() {
    let set = sigpipe_set();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid set and timeout; we do not need the siginfo. (nix has no
    // sigtimedwait.)
    unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) };
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn consume() {
    // macOS has no sigtimedwait; sigwait returns at once because the signal is pending.
    let _ = sigpipe_set().wait();
}
