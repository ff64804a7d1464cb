//! Faults of the lab's services for the tests, each undone when its guard drops (also when the
//! test fails): the lab is shared by every test, and a frozen NameNode or a quota left behind
//! would fail the next test for a reason that is not its own.

use super::repo_root;
use std::process::Command;

/// `./bootstrap.sh ARGS…`; fails the test if it fails. Stopping or starting a service needs the
/// lab alone (`turn.rs`).
pub fn lab(args: &[&str]) {
    if matches!(args.first(), Some(&("kill" | "stop" | "start" | "restart"))) {
        super::assert_alone(&format!("./bootstrap.sh {}", args.join(" ")));
    }
    let status = Command::new(repo_root().join("bootstrap.sh")).args(args).status().expect("./bootstrap.sh");
    assert!(status.success(), "./bootstrap.sh {args:?}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The pid of a running lab service (`kafka`, `namenode`, `datanode`, `rabbitmq`).
pub fn service_pid(service: &str) -> i32 {
    let pid_file = super::lab_dir().join("run").join(format!("{service}.pid"));
    let text = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    text.trim().parse().unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
}

/// A lab service stopped with SIGSTOP (sockets open, nothing answers); resumed when dropped.
pub struct Frozen(i32);

impl Frozen {
    pub fn freeze(service: &str) -> Frozen {
        super::assert_alone(&format!("freezing {service}"));
        Frozen::process(service_pid(service))
    }

    /// Any process, such as a daemon a test started (a zombie in the making).
    pub fn process(pid: i32) -> Frozen {
        assert_eq!(unsafe { libc_kill(pid, super::SIGSTOP) }, 0, "SIGSTOP {pid}");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        unsafe { libc_kill(self.0, super::SIGCONT) };
    }
}

/// A lab service killed (`./bootstrap.sh kill`); started again, healthy, when dropped.
pub struct Killed(&'static str);

impl Killed {
    pub fn kill(service: &'static str) -> Killed {
        lab(&["kill", service]);
        Killed(service)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        lab(&["start", self.0]);
    }
}

/// HDFS in safe mode, entered by hand (`dfsadmin -safemode enter`); left when dropped.
pub struct SafeMode;

impl SafeMode {
    pub fn enter() -> SafeMode {
        super::assert_alone("HDFS safe mode");
        lab(&["hdfs", "dfsadmin", "-safemode", "enter"]);
        SafeMode
    }
}

impl Drop for SafeMode {
    fn drop(&mut self) {
        lab(&["hdfs", "dfsadmin", "-safemode", "leave"]);
    }
}

/// A space quota of one byte on an HDFS directory (every new block is refused); lifted when
/// dropped.
pub struct Quota(String);

impl Quota {
    pub fn exhaust(dir: &str) -> Quota {
        lab(&["hdfs", "dfsadmin", "-setSpaceQuota", "1", dir]);
        Quota(dir.to_string())
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        lab(&["hdfs", "dfsadmin", "-clrSpaceQuota", &self.0]);
    }
}

/// An HDFS tree whose owner lost write permission (`chmod -R u-w`); given back when dropped.
pub struct ReadOnly(String);

impl ReadOnly {
    pub fn make(dir: &str) -> ReadOnly {
        lab(&["hdfs", "dfs", "-chmod", "-R", "u-w", dir]);
        ReadOnly(dir.to_string())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        lab(&["hdfs", "dfs", "-chmod", "-R", "u+w", &self.0]);
    }
}
