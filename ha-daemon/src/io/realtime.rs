//! Real-time scheduling and memory locking, so heartbeats keep their timing on a loaded
//! machine (as corosync does): the detection thread runs SCHED_FIFO, and the daemon's
//! memory is locked so a page fault never stalls it.

use std::io;

/// Gives the calling thread SCHED_FIFO at `priority` (1..=99).
#[expect(unsafe_code, reason = "FFI: nix has no sched_setscheduler")]
pub fn make_current_thread_realtime(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; pid 0
    // names the calling thread; the call reads nothing else.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Locks all current and future pages of the process in memory.
pub fn lock_memory() -> io::Result<()> {
    use nix::sys::mman::{MlockAllFlags, mlockall};
    mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE).map_err(io::Error::from)
}
