//! Why files are small: the driver notes what cut each published commit ([`Trigger`]) and how
//! large its table files are, and now and then one log line names the cut that dominates and
//! the setting to change. The decision is [`advise`], a pure function of what was published
//! and the settings; [`SizeAdvisor`] only decides when to ask it.
//!
//! A commit covers one source partition and publishes one file per Hive directory it wrote,
//! so a file is small when its partition's range is cut before that directory's file filled:
//! by `roll.max_age` on a quiet partition, by a sibling directory's full file, by the open-file
//! cap, or by a queue's unacknowledged window. `landfall_commits_total{trigger}` and
//! `landfall_file_size_bytes` show the same facts to a dashboard.

use std::time::{Duration, Instant};

use super::partitions::{RollPolicy, Trigger};
use crate::config::units::{ByteSize, HumanDuration};

/// The first look, ten minutes after the start: at the default `roll.max_age` (60 s) every
/// busy partition has committed about ten times, enough for the steady state to show, while
/// whoever started the pipeline (or changed its settings) still reads its log. A count of
/// commits would not do: a pipeline with hundreds of partitions reaches any such count within
/// its first minute, while catching up, when ranges are cut by size.
const FIRST_LOOK: Duration = Duration::from_secs(600);

/// Later looks, each over the commits since the previous one: at most one line per hour.
const EVERY: Duration = Duration::from_secs(3600);

/// Fewer files than this say nothing about a median: the look waits for more commits (the
/// window keeps growing), so a pipeline that publishes rarely is still looked at eventually.
const MIN_FILES: u64 = 10;

/// Files are small when the median is below `roll.max_bytes` divided by this.
const SMALL_BELOW: u64 = 8;

/// The settings the advice names.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub policy: RollPolicy,
    /// `roll.max_open_files`.
    pub max_open_files: usize,
    /// A queue's messages per commit ([`crate::source::Source::max_open_range`]).
    pub window: Option<u64>,
}

/// What was published since the last look.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Commits by trigger, in the order of [`Trigger::ALL`].
    commits: [u64; Trigger::ALL.len()],
    files: u64,
    bytes: u64,
    sizes: SizeSketch,
}

impl Window {
    pub fn add(&mut self, trigger: Trigger, file_sizes: &[u64]) {
        self.commits[trigger as usize] += 1;
        for &bytes in file_sizes {
            self.files += 1;
            self.bytes += bytes;
            self.sizes.add(bytes);
        }
    }
}

/// File sizes counted in buckets an eighth of a doubling wide (exact below 16 bytes): a fixed
/// 4 KiB whatever the number of files, and a median within 7 % of the true one.
#[derive(Debug, Clone)]
struct SizeSketch {
    counts: Vec<u64>,
}

impl Default for SizeSketch {
    fn default() -> Self {
        SizeSketch { counts: vec![0; SizeSketch::bucket(u64::MAX) + 1] }
    }
}

impl SizeSketch {
    fn bucket(bytes: u64) -> usize {
        if bytes < 16 {
            return bytes as usize;
        }
        let log = u64::from(bytes.ilog2()); // 4..=63
        let eighth = (bytes >> (log - 3)) & 7;
        (16 + (log - 4) * 8 + eighth) as usize
    }

    /// The middle of bucket `i`'s sizes.
    fn middle(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let (log, eighth) = ((i as u64 - 16) / 8 + 4, (i as u64 - 16) % 8);
        let width = 1u64 << (log - 3);
        (8 + eighth) * width + width / 2
    }

    fn add(&mut self, bytes: u64) {
        self.counts[SizeSketch::bucket(bytes)] += 1;
    }

    /// The lower median of `n` sizes added.
    fn median(&self, n: u64) -> u64 {
        let rank = n.div_ceil(2).max(1);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return SizeSketch::middle(i);
            }
        }
        0
    }
}

/// Why files are small and what to change.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub median_file_bytes: u64,
    pub mean_file_bytes: u64,
    pub files: u64,
    pub commits: u64,
    /// The trigger that cut the most commits, and its share of them.
    pub trigger: Trigger,
    pub share_pct: u64,
    /// The log line.
    pub text: String,
}

impl Advice {
    /// Logged at `info`, not `warn`: small files are what the settings ask for on a quiet
    /// source (a commit per `roll.max_age` per partition), nothing failed and nothing needs
    /// doing now; the line is there to answer "why are my files small?", not to alert.
    pub fn log(&self, pipeline: &str) {
        tracing::info!(
            pipeline = %pipeline,
            median_file_bytes = self.median_file_bytes,
            mean_file_bytes = self.mean_file_bytes,
            files = self.files,
            commits = self.commits,
            trigger = self.trigger.label(),
            share_pct = self.share_pct,
            "{}",
            self.text
        );
    }
}

/// The advice for what was published in `w`, or `None` when files are not small (median at or
/// above 1/8 of `roll.max_bytes`) or there are too few to tell.
pub fn advise(w: &Window, s: &Settings) -> Option<Advice> {
    if w.files < MIN_FILES {
        return None;
    }
    let median = w.sizes.median(w.files);
    let max_bytes = s.policy.max_bytes;
    if median >= max_bytes / SMALL_BELOW {
        return None;
    }
    let commits: u64 = w.commits.iter().sum();
    // The most frequent trigger; on a tie the first in `Trigger::ALL`.
    let (trigger, count) = Trigger::ALL
        .into_iter()
        .map(|t| (t, w.commits[t as usize]))
        .fold((Trigger::ALL[0], 0), |best, (t, n)| if n > best.1 { (t, n) } else { best });
    let share_pct = (count * 100 + commits / 2) / commits.max(1);
    let (cause, what_to_do) = match trigger {
        Trigger::MaxAge => (
            format!("roll.max_age ({})", HumanDuration(s.policy.max_age)),
            "raise roll.max_age for larger files at the cost of freshness (rows become visible up to that much later)".to_string(),
        ),
        Trigger::MaxRows => (
            format!("roll.max_rows ({})", s.policy.max_rows),
            "files stop at that many rows whatever their size: raise roll.max_rows".to_string(),
        ),
        Trigger::MaxBytes => (
            format!("roll.max_bytes ({})", ByteSize(max_bytes)),
            "a commit publishes every file of its source partition, and one full file took its smaller siblings in other directories along: a coarser partition.path (fewer directories written at once)".to_string(),
        ),
        Trigger::MaxOpenFiles => (
            format!("roll.max_open_files ({})", s.max_open_files),
            "raise roll.max_open_files (each open file buffers a row group, within roll.max_buffered_bytes), or coarsen partition.path so fewer directories are written at once".to_string(),
        ),
        Trigger::Window => (
            match s.window {
                Some(n) => format!("the RabbitMQ unacknowledged window ({n} messages per commit, a third of 2 x prefetch)"),
                None => "the RabbitMQ unacknowledged window (a third of 2 x prefetch per commit)".to_string(),
            },
            "source.rabbitmq.prefetch bounds the rows of a commit: raise it (at most 65535), or write fewer directories at once (a coarser partition.path)".to_string(),
        ),
        Trigger::Shutdown => (
            "the run ending".to_string(),
            "each stop publishes what is buffered: restart the pipeline less often, or give backfills (--until-caught-up) more data per run".to_string(),
        ),
    };
    let text = format!(
        "files are small: the median file published is {} against roll.max_bytes {}; {share_pct} % of {commits} commits were cut by {cause}: {what_to_do}",
        human(median),
        ByteSize(max_bytes),
    );
    Some(Advice {
        median_file_bytes: median,
        mean_file_bytes: w.bytes / w.files,
        files: w.files,
        commits,
        trigger,
        share_pct,
        text,
    })
}

/// `0.6 MiB` reads better than bytes; below 1 MiB, whole KiB.
fn human(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{} KiB", bytes.div_ceil(1024))
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    }
}

/// When to ask [`advise`]: [`FIRST_LOOK`] after the start, then every [`EVERY`], each over the
/// commits published since the previous look. Lives as long as the driver: a restarted
/// pipeline looks early again.
pub struct SizeAdvisor {
    settings: Settings,
    window: Window,
    next_look: Instant,
}

impl SizeAdvisor {
    pub fn new(settings: Settings, now: Instant) -> SizeAdvisor {
        SizeAdvisor { settings, window: Window::default(), next_look: now + FIRST_LOOK }
    }

    /// Notes a published commit (once per commit, off the hot path); returns the advice when a
    /// look is due and files are small.
    pub fn published(&mut self, trigger: Trigger, file_sizes: &[u64], now: Instant) -> Option<Advice> {
        self.window.add(trigger, file_sizes);
        if now < self.next_look || self.window.files < MIN_FILES {
            return None;
        }
        self.next_look = now + EVERY;
        advise(&std::mem::take(&mut self.window), &self.settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn settings() -> Settings {
        Settings {
            policy: RollPolicy { max_rows: 1_000_000, max_bytes: 128 * MIB, max_age: Duration::from_secs(60) },
            max_open_files: 500,
            window: Some(43_690),
        }
    }

    fn window(commits: &[(Trigger, u64)], sizes: &[u64]) -> Window {
        let mut w = Window::default();
        for &(trigger, n) in commits {
            for _ in 0..n {
                w.add(trigger, &[]);
            }
        }
        for &size in sizes {
            w.files += 1;
            w.bytes += size;
            w.sizes.add(size);
        }
        w
    }

    #[test]
    fn the_median_is_within_a_sixteenth_of_the_true_one() {
        for size in [0, 1, 15, 16, 17, 1000, 640_000, 250_000, 16 * MIB - 1, 128 * MIB, 5 << 40] {
            let mut s = SizeSketch::default();
            s.add(size);
            let m = s.median(1);
            assert!(m.abs_diff(size) <= size / 16, "{size} read back as {m}");
        }
        let mut s = SizeSketch::default();
        for size in [10 * MIB, MIB, 2 * MIB, 100, 200 * MIB] {
            s.add(size);
        }
        assert!(s.median(5).abs_diff(2 * MIB) <= 2 * MIB / 16, "{}", s.median(5));
    }

    /// Commits by trigger, file sizes, the expected (trigger, share %), words the line must hold.
    type Case<'a> = (&'a [(Trigger, u64)], &'a [u64], Option<(Trigger, u64)>, &'a [&'a str]);

    #[test]
    fn advice_names_the_dominant_trigger_only_when_files_are_small() {
        use Trigger::*;
        let small = [640_000u64; 20];
        let big = [100 * MIB; 20];
        let cases: Vec<Case> = vec![
            (
                &[(MaxAge, 92), (MaxRows, 8)],
                &small,
                Some((MaxAge, 92)),
                &[
                    "92 % of 100 commits",
                    "roll.max_age (1m)",
                    "raise roll.max_age",
                    "KiB against roll.max_bytes 128MiB",
                ],
            ),
            (
                &[(MaxRows, 3), (MaxAge, 1)],
                &small,
                Some((MaxRows, 75)),
                &["roll.max_rows (1000000)", "raise roll.max_rows"],
            ),
            (&[(MaxBytes, 5)], &small, Some((MaxBytes, 100)), &["roll.max_bytes (128MiB)", "coarser partition.path"]),
            (
                &[(MaxOpenFiles, 10), (MaxAge, 2)],
                &small,
                Some((MaxOpenFiles, 83)),
                &["roll.max_open_files (500)", "raise roll.max_open_files", "coarsen partition.path"],
            ),
            (&[(Window, 30)], &small, Some((Window, 100)), &["43690 messages per commit", "source.rabbitmq.prefetch"]),
            (&[(Shutdown, 4)], &small, Some((Shutdown, 100)), &["the run ending"]),
            // A tie goes to the first in Trigger::ALL.
            (&[(MaxAge, 5), (MaxRows, 5)], &small, Some((MaxRows, 50)), &[]),
            // Large files: nothing to say, whatever cut them.
            (&[(MaxAge, 100)], &big, None, &[]),
            // Just at an eighth of max_bytes is not small.
            (&[(MaxAge, 100)], &[16 * MIB; 20], None, &[]),
            // Too few files to tell.
            (&[(MaxAge, 9)], &small[..9], None, &[]),
        ];
        for (commits, sizes, want, words) in cases {
            let advice = advise(&window(commits, sizes), &settings());
            assert_eq!(advice.as_ref().map(|a| (a.trigger, a.share_pct)), want, "{commits:?}: {advice:?}");
            let text = advice.map(|a| a.text).unwrap_or_default();
            for word in words {
                assert!(text.contains(word), "{commits:?}: {word:?} missing from {text:?}");
            }
        }
    }

    #[test]
    fn the_median_decides_not_the_mean() {
        // Nine tiny files and two huge ones: the mean is large, most files are small.
        let mut sizes = vec![100_000u64; 9];
        sizes.extend([1 << 30, 1 << 30]);
        let advice = advise(&window(&[(Trigger::MaxAge, 11)], &sizes), &settings()).expect("small files");
        assert!(advice.mean_file_bytes > 128 * MIB / 8 && advice.median_file_bytes < 128 * MIB / 8, "{advice:?}");
    }

    #[test]
    fn the_advisor_looks_after_ten_minutes_then_hourly() {
        let start = Instant::now();
        let mut a = SizeAdvisor::new(settings(), start);
        let at = |m: u64| start + Duration::from_secs(60 * m);
        for m in 0..10 {
            assert_eq!(a.published(Trigger::MaxAge, &[50_000, 60_000], at(m)), None, "minute {m}: too early");
        }
        let first = a.published(Trigger::MaxAge, &[50_000], at(10)).expect("the first look at ten minutes");
        assert_eq!((first.files, first.commits), (21, 11), "the window held every commit so far");
        assert_eq!(a.published(Trigger::MaxAge, &[50_000; 20], at(11)), None, "at most once per hour");
        assert_eq!(a.published(Trigger::MaxAge, &[50_000; 20], at(69)), None);
        let second = a.published(Trigger::MaxRows, &[50_000], at(70)).expect("an hour after the first");
        assert_eq!((second.files, second.commits), (41, 3), "only the commits since the first look");
    }

    #[test]
    fn a_look_with_too_few_files_waits_for_more() {
        let start = Instant::now();
        let mut a = SizeAdvisor::new(settings(), start);
        let late = start + FIRST_LOOK + Duration::from_secs(1);
        assert_eq!(a.published(Trigger::MaxAge, &[1000; 4], late), None);
        assert_eq!(a.published(Trigger::MaxAge, &[1000; 5], late), None, "nine files");
        let advice = a.published(Trigger::MaxAge, &[1000], late).expect("ten files");
        assert_eq!(advice.files, 10);
    }

    #[test]
    fn large_files_are_looked_at_and_forgotten_quietly() {
        let start = Instant::now();
        let mut a = SizeAdvisor::new(settings(), start);
        assert_eq!(a.published(Trigger::MaxBytes, &[128 * MIB; 10], start + FIRST_LOOK), None);
        let hour = start + FIRST_LOOK + EVERY;
        let advice = a.published(Trigger::MaxAge, &[1000; 10], hour).expect("small files since");
        assert_eq!((advice.files, advice.trigger), (10, Trigger::MaxAge), "the large files' look reset the window");
    }
}
