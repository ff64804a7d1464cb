//! Headless Chromium (Debian's `chromium`) for the tests of the status page: missing in CI
//! fails loudly, and a run is bounded in time.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Debian's package puts the browser here.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser, or `None` outside CI when it is not installed. In CI (`CI` set) a missing
/// browser fails the test: the page would otherwise go untested without anyone noticing.
pub fn chromium() -> Option<&'static Path> {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    let fix = "install it with `apt-get install -y --no-install-recommends chromium` (./bootstrap.sh does)";
    assert!(std::env::var_os("CI").is_none(), "{CHROMIUM} is missing, so the status page cannot be tested: {fix}");
    eprintln!("SKIPPED: {CHROMIUM} is missing ({fix}); under CI=true this fails");
    None
}

/// `Some(status)` once the child exited, `None` (after killing it) if it outlived `limit`.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs headless Chromium on `url` with `args`, giving the page 5 s of (virtual) time, so its
/// first fetches and refreshes happen before the DOM is dumped or the screenshot taken.
/// Returns what it printed. Output goes through files in `work`: the browser's stderr is
/// chatty (D-Bus complaints in a container), and a full pipe would block it.
pub fn chromium_run(browser: &Path, work: &Path, url: &str, args: &[&str]) -> String {
    let (out, err) = (work.join("chromium.out"), work.join("chromium.err"));
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", work.join("chromium-profile").display()))
        .args(args)
        .arg(url)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start chromium");
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("chromium {args:?} {url} took over 60 s:\n{stderr}"));
    assert!(status.success(), "chromium {args:?} {url} failed ({status}):\n{stderr}");
    std::fs::read_to_string(&out).unwrap()
}

/// The element starting at the tag that contains `marker`, up to its closing `</tag>` (the
/// page nests neither sections in sections nor svgs in svgs).
pub fn element<'a>(dom: &'a str, tag: &str, marker: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind(&format!("<{tag}"))?;
    let end = start + dom[start..].find(&format!("</{tag}>"))?;
    Some(&dom[start..end])
}
