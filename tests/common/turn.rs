//! Turns on the shared lab. `./bootstrap.sh test` runs test binaries side by side (see
//! `tests/run_suite.py`), so tests of different binaries run at the same time against one
//! Kafka, one RabbitMQ, one HDFS and one metastore. Most of them only add topics, queues and
//! tables of their own and can share the lab; a test that kills, freezes or restarts a service,
//! or puts HDFS in safe mode, would fail every test running beside it for a reason that is not
//! theirs. So:
//! - every lab test holds a shared turn for its whole run: the guard `require_*` returns;
//! - a test that disturbs a service calls [`lab_alone`] first, and runs while no other test
//!   holds a turn, in any process.
//!
//! Both are `flock(2)` on one file in the lab directory: shared for the many, exclusive for the
//! one. The kernel drops a lock with its process, so a test that dies leaves nothing behind.
//!
//! `flock` alone favours the many: a shared lock is granted whenever nobody holds the exclusive
//! one, so while two binaries' tests overlap, a test waiting for the lab alone waits until
//! both happen to pause at once. A second file, the gate, makes the one waiting go first: a
//! test asks for the lab alone holding the gate, and a new shared turn passes the gate before
//! it takes its lock, so it queues behind the waiting test instead of overtaking it. A thread
//! that already holds a turn takes another without the gate (the waiting test is waiting for
//! that thread, which must not wait for it).

use std::cell::Cell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

extern "C" {
    fn flock(fd: i32, operation: i32) -> i32;
}
const LOCK_SH: i32 = 1;
const LOCK_EX: i32 = 2;

thread_local! {
    /// Turns this test thread holds, and how many of them are the lab alone. A test's body
    /// runs on its own thread (`#[tokio::test]` blocks on it there), so these are per test:
    /// a `require_*` after `lab_alone` on the same thread shares the exclusive turn instead of
    /// waiting for itself.
    static HELD: Cell<u32> = const { Cell::new(0) };
    static ALONE: Cell<u32> = const { Cell::new(0) };
}

/// The same counts for the whole process, for the checks in the fault helpers: a test's
/// faults may be injected from its runtime's worker threads (the fault matrix does), and
/// while one test has the lab alone no other test of any process holds a turn.
static HELD_ANYWHERE: AtomicU32 = AtomicU32::new(0);
static ALONE_ANYWHERE: AtomicU32 = AtomicU32::new(0);

/// A turn on the lab, released when dropped.
#[must_use = "the lab is yours only while the turn is held: `let _lab = require_kafka();`"]
pub struct LabTurn {
    _lock: Option<File>,
    alone: bool,
}

impl Drop for LabTurn {
    fn drop(&mut self) {
        HELD.set(HELD.get().saturating_sub(1));
        HELD_ANYWHERE.fetch_sub(1, Ordering::SeqCst);
        if self.alone {
            ALONE.set(ALONE.get().saturating_sub(1));
            ALONE_ANYWHERE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn locked(operation: i32) -> File {
    locked_file("tests.lock", operation)
}

/// The gate (see the module's doc), held while it is returned.
fn gate() -> File {
    locked_file("tests.gate", LOCK_EX)
}

fn locked_file(name: &str, operation: i32) -> File {
    let dir = super::lab_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    loop {
        if unsafe { flock(file.as_raw_fd(), operation) } == 0 {
            return file;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "flock {}: {e}", path.display());
    }
}

/// The lab to this test alone: waits until no other test holds a turn, then keeps every other
/// test out until dropped. Call it before anything else in a test that kills, freezes or
/// restarts a lab service; `require_*` after it share this turn.
pub fn lab_alone() -> LabTurn {
    assert_eq!(
        HELD.get(),
        0,
        "lab_alone() must come first in the test: it already shares the lab, and would wait for itself"
    );
    let gate = gate();
    let lock = locked(LOCK_EX);
    drop(gate); // the lock now keeps everyone out; the gate is only for the wait
    HELD.set(1);
    ALONE.set(1);
    HELD_ANYWHERE.fetch_add(1, Ordering::SeqCst);
    ALONE_ANYWHERE.fetch_add(1, Ordering::SeqCst);
    LabTurn { _lock: Some(lock), alone: true }
}

/// A shared turn (what `require_*` hold): waits while a test has the lab alone.
pub fn lab_shared() -> LabTurn {
    let lock = (ALONE.get() == 0).then(|| {
        let _gate = (HELD.get() == 0).then(gate);
        locked(LOCK_SH)
    });
    HELD.set(HELD.get() + 1);
    HELD_ANYWHERE.fetch_add(1, Ordering::SeqCst);
    LabTurn { _lock: lock, alone: false }
}

/// Fails the test unless it has the lab alone: `what` disturbs every test using the lab.
pub fn assert_alone(what: &str) {
    assert!(
        ALONE.get() > 0 || ALONE_ANYWHERE.load(Ordering::SeqCst) > 0,
        "{what} disturbs every other test using the lab: call `let _lab = lab_alone();` first in this test"
    );
}

/// Fails the test unless it holds a turn on the lab.
pub fn assert_turn(what: &str) {
    assert!(
        HELD.get() > 0 || HELD_ANYWHERE.load(Ordering::SeqCst) > 0,
        "{what} uses the shared lab: hold a turn for the whole test (`let _lab = require_…();`)"
    );
}
