//! `./bootstrap.sh up` serialises concurrent runs with a lock file; the services it starts
//! must not inherit that lock's descriptor, or they hold it for as long as they run and every
//! later `./bootstrap.sh` (`demo` then `test`, say) waits 15 minutes and fails.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Processes (pid, command line) with `path` open, read from `/proc/*/fd`.
fn holders_of(path: &Path) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return found };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        if fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path)) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmdline.chars().take(120).collect()));
        }
    }
    found
}

#[test]
fn no_lab_service_holds_the_up_lock_and_a_second_up_returns_at_once() {
    let _kafka = require_kafka();
    let _rabbitmq = require_rabbitmq();
    let _hdfs = require_hdfs();
    let lock = lab_dir().join(".up.lock");
    let lock = lock.canonicalize().unwrap_or(lock);
    let holders = holders_of(&lock);
    assert!(
        holders.is_empty(),
        "these processes hold {} open (inherited from `./bootstrap.sh up`): {holders:?}",
        lock.display()
    );

    // With the lab up, `up` finds everything installed and healthy: seconds, not a lock wait.
    let started = Instant::now();
    let out = std::process::Command::new(repo_root().join("bootstrap.sh"))
        .arg("up")
        .env("LANDFALL_LAB", lab_dir())
        .output()
        .expect("run ./bootstrap.sh up");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "a second ./bootstrap.sh up failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(90), "a second ./bootstrap.sh up took {took:?} with the lab already up");
    assert!(holders_of(&lock).is_empty(), "the second up left a process holding the lock");
}

/// A test waiting for the lab alone goes before shared turns asked for after it began to wait
/// (`turn.rs`): without that, two binaries whose tests overlap keep it waiting until both pause
/// at once, which took minutes in the suite.
#[test]
fn a_test_waiting_for_the_lab_alone_is_not_overtaken_by_later_shared_turns() {
    use std::sync::mpsc;
    use std::thread;
    let started = Instant::now();
    let (held_tx, held_rx) = mpsc::channel();
    let first = thread::spawn(move || {
        let _turn = lab_shared();
        held_tx.send(()).unwrap();
        thread::sleep(Duration::from_secs(3));
    });
    held_rx.recv().unwrap();
    let alone = thread::spawn(move || {
        let _turn = lab_alone();
        let got = started.elapsed();
        thread::sleep(Duration::from_secs(1));
        (got, started.elapsed())
    });
    thread::sleep(Duration::from_millis(500)); // the alone one is waiting for `first` now
    let later = thread::spawn(move || {
        let _turn = lab_shared();
        started.elapsed()
    });
    first.join().unwrap();
    let (alone_got, alone_done) = alone.join().unwrap();
    let later_got = later.join().unwrap();
    assert!(
        later_got >= alone_done,
        "a shared turn asked for at 0.5 s was granted at {later_got:?}, before the test waiting for the \
         lab alone since before then had it ({alone_got:?}..{alone_done:?})"
    );
}
