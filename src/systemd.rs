//! systemd integration: readiness, status and watchdog keep-alives on the notify socket.
//!
//! Under a `Type=notify` unit (`vagrant/systemd/landfall.service`) systemd passes a datagram
//! socket in `NOTIFY_SOCKET` and considers the service started only when `READY=1` arrives, so
//! units ordered after Landfall, and `systemctl start` itself, wait for running pipelines
//! rather than for a forked process. `STATUS=` is the line `systemctl status` shows.
//! With `WatchdogSec=` systemd also sets `WATCHDOG_USEC` and kills and restarts the service when
//! no `WATCHDOG=1` arrives within that time: [`run_watchdog`] sends it only while the daemon's
//! own liveness check passes, so a wedged daemon (a consumer loop stuck on a lock, a runtime
//! whose workers all block) is restarted instead of sitting there looking alive.
//!
//! Outside systemd (a terminal, tests, a container) `NOTIFY_SOCKET` is unset and every function
//! here does nothing. Notifications are best effort, as with `sd_notify(3)`: a failure to send
//! is logged at debug level and never stops the daemon.
//!
//! The message vocabulary is the `sd-notify` crate's [`NotifyState`]. Sending is done here, a
//! few lines, instead of by `sd_notify::notify`, which reads `NOTIFY_SOCKET` itself: taking the
//! socket as a parameter lets the tests send to a socket of their own without setting
//! process-wide environment variables under other tests' threads, and lets us accept abstract
//! socket addresses (`@name`), which that crate's version 0.5 cannot connect to.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd that startup is finished (`READY=1`), with `status` as the status line.
/// Call it once the pipelines are running; `systemctl start` returns then.
pub fn notify_ready(status: &str) {
    notify(notify_socket().as_deref(), &[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// Tells systemd that the daemon is stopping (`STOPPING=1`), so a stop Landfall starts itself
/// shows as `deactivating` rather than as a crash. systemd's `TimeoutStopSec` runs from here.
pub fn notify_stopping() {
    notify(notify_socket().as_deref(), &[NotifyState::Stopping]);
}

/// Sets the line `systemctl status` shows (`STATUS=…`), e.g. "3 pipelines running, 1 failing".
pub fn notify_status(status: &str) {
    notify(notify_socket().as_deref(), &[NotifyState::Status(&one_line(status))]);
}

/// How often to send keep-alives, if systemd watches this process: half the unit's
/// `WatchdogSec` (systemd's advice), or `None` when there is no watchdog. Semantics of
/// `sd_watchdog_enabled(3)`: `WATCHDOG_USEC` must be a positive number of microseconds, and
/// `WATCHDOG_PID`, if set, must be our pid (otherwise the watchdog is meant for another
/// process, e.g. the parent that exec'd us from a wrapper script).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var_os("WATCHDOG_USEC");
    let pid = std::env::var_os("WATCHDOG_PID");
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Sends `WATCHDOG=1` every `interval` (from [`watchdog_interval`]) while `alive()` is `Ok`, and
/// withholds it while `alive()` returns `Err(reason)`, so that systemd restarts a daemon that
/// stays wedged for `WatchdogSec`. Each change of reason is logged once with `error!`, so the
/// journal says why the restart came; the recovery is logged at `info`.
///
/// The first keep-alive goes out at once. Never returns: spawn it on the runtime and drop or
/// abort the task at shutdown. Running on the runtime is deliberate: if every worker is
/// blocked, this task does not run either and the keep-alives stop, which is the point.
/// `alive` runs on a runtime worker, so it must be quick and must not block.
pub async fn run_watchdog(interval: Duration, alive: impl Fn() -> Result<(), String>) {
    watchdog_loop(notify_socket(), interval, alive).await;
}

fn notify_socket() -> Option<OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())
}

/// Best-effort send: nothing without a socket, a debug line on failure.
fn notify(socket: Option<&OsStr>, states: &[NotifyState]) {
    let Some(socket) = socket else { return };
    if let Err(e) = send(socket, states) {
        tracing::debug!(socket = ?socket, error = %e, "systemd notification not sent");
    }
}

/// One datagram, one `KEY=VALUE` line per state, as `sd_notify(3)` sends them. A socket name
/// starting with `@` is in the abstract namespace (Linux), as in systemd.
fn send(socket: &OsStr, states: &[NotifyState]) -> io::Result<()> {
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    if sent != message.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "notification truncated"));
    }
    Ok(())
}

/// A newline would end the `STATUS=` line and start a bogus key.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

fn watchdog_interval_from(usec: Option<&OsStr>, pid: Option<&OsStr>, own_pid: u32) -> Option<Duration> {
    let parse = |v: &OsStr| v.to_str().and_then(|s| s.parse::<u64>().ok());
    let usec = usec?;
    let Some(timeout) = parse(usec).filter(|&u| u > 0 && u != u64::MAX) else {
        tracing::debug!(value = ?usec, "WATCHDOG_USEC is not a positive number of microseconds; no watchdog");
        return None;
    };
    if let Some(pid) = pid {
        if parse(pid) != Some(u64::from(own_pid)) {
            tracing::debug!(value = ?pid, own_pid, "WATCHDOG_PID is not our pid; the watchdog is not ours");
            return None;
        }
    }
    Some(Duration::from_micros(timeout) / 2)
}

async fn watchdog_loop(socket: Option<OsString>, interval: Duration, alive: impl Fn() -> Result<(), String>) {
    let mut ticks = tokio::time::interval(interval);
    // After a stall, one keep-alive, not a burst that would hide how late it is.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = Watchdog::default();
    loop {
        ticks.tick().await;
        watchdog.beat(socket.as_deref(), alive());
    }
}

/// The watchdog's memory between beats: the reason keep-alives are withheld, if they are.
#[derive(Default)]
struct Watchdog {
    withheld: Option<String>,
}

impl Watchdog {
    /// One beat: send `WATCHDOG=1` if alive, else log the reason if it is new.
    fn beat(&mut self, socket: Option<&OsStr>, alive: Result<(), String>) {
        match alive {
            Ok(()) => {
                if let Some(reason) = self.withheld.take() {
                    tracing::info!(%reason, "alive again; sending systemd watchdog keep-alives again");
                }
                notify(socket, &[NotifyState::Watchdog]);
            }
            Err(reason) => {
                if self.withheld.as_ref() != Some(&reason) {
                    tracing::error!(%reason, "not alive: withholding systemd watchdog keep-alives; systemd restarts the daemon if this lasts WatchdogSec");
                    self.withheld = Some(reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Instant;

    use super::*;

    /// A socket playing systemd's part, bound in a temporary directory.
    struct Manager {
        socket: UnixDatagram,
        path: OsString,
        _dir: tempfile::TempDir,
    }

    impl Manager {
        fn new() -> Manager {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify");
            let socket = UnixDatagram::bind(&path).unwrap();
            socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            Manager { socket, path: path.into_os_string(), _dir: dir }
        }

        fn path(&self) -> Option<&OsStr> {
            Some(&self.path)
        }

        /// The next datagram, or `None` if none arrives within 200 ms.
        fn recv(&self) -> Option<String> {
            let mut buf = [0u8; 4096];
            match self.socket.recv(&mut buf) {
                Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => None,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    #[test]
    fn ready_sends_ready_and_status_in_one_datagram() {
        let manager = Manager::new();
        notify(manager.path(), &[NotifyState::Ready, NotifyState::Status(&one_line("3 pipelines\nrunning"))]);
        assert_eq!(manager.recv().as_deref(), Some("READY=1\nSTATUS=3 pipelines running\n"));
        notify(manager.path(), &[NotifyState::Stopping]);
        assert_eq!(manager.recv().as_deref(), Some("STOPPING=1\n"));
        assert_eq!(manager.recv(), None);
    }

    #[test]
    fn abstract_socket_names_are_understood() {
        let name = format!("landfall-test-{}-{:?}", std::process::id(), Instant::now());
        let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        send(OsStr::new(&format!("@{name}")), &[NotifyState::Watchdog]).unwrap();
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1\n");
    }

    #[test]
    fn no_socket_or_a_dead_one_is_not_an_error() {
        notify(None, &[NotifyState::Ready]);
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nobody-listens");
        assert!(send(gone.as_os_str(), &[NotifyState::Ready]).is_err());
        notify(Some(gone.as_os_str()), &[NotifyState::Ready]); // logged, not raised
    }

    #[test]
    fn watchdog_beats_only_while_alive() {
        let manager = Manager::new();
        let mut watchdog = Watchdog::default();
        watchdog.beat(manager.path(), Ok(()));
        assert_eq!(manager.recv().as_deref(), Some("WATCHDOG=1\n"));

        watchdog.beat(manager.path(), Err("pipeline clicks: consumer loop silent for 95 s".into()));
        watchdog.beat(manager.path(), Err("pipeline clicks: consumer loop silent for 95 s".into()));
        assert_eq!(manager.recv(), None, "no keep-alive while not alive");
        assert_eq!(watchdog.withheld.as_deref(), Some("pipeline clicks: consumer loop silent for 95 s"));

        watchdog.beat(manager.path(), Err("pipeline orders: consumer loop silent for 61 s".into()));
        assert_eq!(watchdog.withheld.as_deref(), Some("pipeline orders: consumer loop silent for 61 s"));
        assert_eq!(manager.recv(), None);

        watchdog.beat(manager.path(), Ok(()));
        assert_eq!(manager.recv().as_deref(), Some("WATCHDOG=1\n"));
        assert_eq!(watchdog.withheld, None);
    }

    #[tokio::test]
    async fn watchdog_loop_sends_at_once_then_every_interval_and_pauses_while_not_alive() {
        let manager = Manager::new();
        let beats = Cell::new(0u32);
        // Alive for the first two beats, then wedged.
        let alive = || {
            beats.set(beats.get() + 1);
            if beats.get() <= 2 {
                Ok(())
            } else {
                Err("wedged".to_string())
            }
        };
        let started = Instant::now();
        let looping = watchdog_loop(Some(manager.path.clone()), Duration::from_millis(50), alive);
        assert!(tokio::time::timeout(Duration::from_millis(300), looping).await.is_err(), "the loop never ends");
        assert!(beats.get() >= 4, "checked every interval, {} times in 300 ms", beats.get());
        assert_eq!(manager.recv().as_deref(), Some("WATCHDOG=1\n"));
        assert_eq!(manager.recv().as_deref(), Some("WATCHDOG=1\n"));
        assert_eq!(manager.recv(), None, "nothing sent once alive() failed");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn watchdog_interval_follows_sd_watchdog_enabled() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(watchdog_interval_from(os("60000000"), None, 42), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval_from(os("60000000"), os("42"), 42), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval_from(os("60000000"), os("41"), 42), None, "another process's watchdog");
        assert_eq!(watchdog_interval_from(os("60000000"), os("x"), 42), None);
        assert_eq!(watchdog_interval_from(None, os("42"), 42), None);
        assert_eq!(watchdog_interval_from(os("0"), None, 42), None, "0 means no watchdog");
        assert_eq!(watchdog_interval_from(os("18446744073709551615"), None, 42), None, "infinity");
        assert_eq!(watchdog_interval_from(os("-5"), None, 42), None);
        assert_eq!(watchdog_interval_from(os(""), None, 42), None);
    }
}
