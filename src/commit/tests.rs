//! Protocol scenarios against the in-memory store: happy path, a crash at every step,
//! lost answers, racing writers, the pruned-slot zombie, orphan cleanup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::sink::memory::{now_ms, Fault, MemStore, Verb};
use crate::sink::FileStore;

const ROOT: &str = "/t";
const TOPIC: &str = "clicks";
const PART: i32 = 3;

/// A fault to arm: the verb, a path substring, which matching call (1-based), what happens.
type Armed<'a> = (Verb, &'a str, u64, Fault);

struct Env {
    store: MemStore,
    stop_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
}

fn env() -> Env {
    let (stop_tx, stop) = watch::channel(false);
    Env { store: MemStore::new(), stop_tx, stop }
}

impl Env {
    fn run(&self, run_id: &str) -> RunContext {
        let backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: None };
        RunContext {
            run_id: run_id.into(),
            config: CommitConfig { backoff, ..CommitConfig::default() },
            stop: self.stop.clone(),
        }
    }

    fn log(&self, run_id: &str) -> CommitLog {
        CommitLog::new(Arc::new(self.store.clone()), ROOT, TOPIC, PART, self.run(run_id)).unwrap()
    }

    /// Writes a staged file for `run_id` and describes it for a commit.
    fn stage(&self, run_id: &str, dir: &str, data: &[u8]) -> StagedFile {
        let staged = staged_path(ROOT, run_id);
        self.store.put(&staged, data);
        StagedFile {
            staged,
            dir: dir.into(),
            ext: "zstd.parquet".into(),
            rows: data.len() as u64,
            bytes: data.len() as u64,
        }
    }

    /// Two files: one data file in a Hive dir, one quarantine file.
    fn batch(&self, run_id: &str, tag: &str) -> Vec<StagedFile> {
        vec![
            self.stage(run_id, "dt=2026-11-25/hour=17", format!("data-{tag}").as_bytes()),
            self.stage(run_id, "_rejected/dt=2026-11-25", format!("bad-{tag}").as_bytes()),
        ]
    }

    /// What Spark would read (everything outside `_landfall/`), by path.
    fn published(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = self.store.files_under("/t/");
        files.retain(|p, _| !p.starts_with("/t/_landfall/"));
        files
    }

    fn manifests(&self) -> Vec<String> {
        self.store.files_under("/t/_landfall/commits/").into_keys().collect()
    }

    fn staged_count(&self) -> usize {
        self.store.files_under("/t/_landfall/staging/").len()
    }
}

fn name(start: i64, end: i64, n: usize) -> String {
    final_file_name(TOPIC, PART, 0, start, end, n, "zstd.parquet").unwrap()
}

fn slot(seq: u64) -> String {
    manifest_path(&commit_dir(ROOT, TOPIC, PART), seq)
}

/// The table after commits [0,9] ("a") and [10,19] ("b") went through.
fn expected_two_commits() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (s, e, tag) in [(0, 9, "a"), (10, 19, "b")] {
        m.insert(format!("/t/dt=2026-11-25/hour=17/{}", name(s, e, 0)), format!("data-{tag}").into_bytes());
        m.insert(format!("/t/_rejected/dt=2026-11-25/{}", name(s, e, 1)), format!("bad-{tag}").into_bytes());
    }
    m
}

/// Commits [0,9] cleanly, then [10,19] with `fault` armed; returns the second result.
async fn two_commits_with(env: &Env, fault: Option<Armed<'_>>) -> Result<Manifest, CommitError> {
    let mut log = env.log("run-1");
    assert_eq!(log.recover().await.unwrap(), None);
    let first = env.batch("run-1", "a");
    log.commit(0, 9, first).await.unwrap();
    let second = env.batch("run-1", "b");
    if let Some((verb, filter, n, kind)) = fault {
        env.store.fail_nth_matching(verb, filter, n, kind);
    }
    let out = log.commit(10, 19, second).await;
    assert_eq!(env.store.armed(), 0, "the injected fault was not reached");
    out
}

#[tokio::test]
async fn quarantine_directories_get_the_quarantine_permissions_and_table_dirs_keep_theirs() {
    let env = env();
    let mut run = env.run("run-1");
    run.config.quarantine_mode = 0o600;
    let mut log = CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, run).unwrap();
    assert_eq!(log.recover().await.unwrap(), None);
    log.commit(0, 9, env.batch("run-1", "a")).await.unwrap();
    assert_eq!(env.store.mode("/t/_rejected/dt=2026-11-25"), Some(0o700));
    assert_eq!(env.store.mode("/t/_rejected"), Some(0o700));
    assert_eq!(env.store.mode("/t/dt=2026-11-25/hour=17"), None, "table directories keep the store's defaults");
    assert_eq!(env.store.mode("/t/dt=2026-11-25"), None);
}

#[tokio::test]
async fn happy_path_publishes_every_file_and_recovery_resumes_after_it() {
    let env = env();
    let mut log = env.log("run-1");
    assert_eq!(log.recover().await.unwrap(), None);
    let files = env.batch("run-1", "a");
    let staged: Vec<String> = files.iter().map(|f| f.staged.clone()).collect();
    let m = log.commit(0, 9, files).await.unwrap();
    assert_eq!((m.seq, m.start, m.end, m.version), (0, 0, 9, 1));
    assert_eq!(m.files[0].final_path, format!("/t/dt=2026-11-25/hour=17/{}", name(0, 9, 0)));
    assert_eq!(m.files[1].final_path, format!("/t/_rejected/dt=2026-11-25/{}", name(0, 9, 1)));
    assert_eq!((m.files[0].rows, m.files[0].bytes), (6, 6));
    assert!(staged.iter().all(|s| !env.store.exists(s)));
    assert_eq!(Manifest::parse(&env.store.get(&slot(0)).unwrap()).unwrap(), m);
    assert!(env.store.files_under("/t/_landfall/tmp/").is_empty());
    assert_eq!(log.next_offset(), Some(10));

    log.commit(10, 19, env.batch("run-1", "b")).await.unwrap();
    assert_eq!(env.published(), expected_two_commits());
    let err = log.commit(25, 30, vec![]).await.unwrap_err();
    assert!(matches!(err, CommitError::OutOfOrder { expected: 20, got: 25, .. }), "{err}");

    let mut fresh = env.log("run-2");
    assert_eq!(fresh.recover().await.unwrap(), Some(20));
    assert_eq!(env.published(), expected_two_commits());
}

#[tokio::test]
async fn crash_after_the_commit_point_is_completed_by_recovery() {
    // Each fault stops the protocol dead (no cleanup), like a kill -9 at that step.
    let points: [(&str, Armed); 4] = [
        ("after the commit rename, before the zombie check", (Verb::List, "/commits/", 1, Fault::Fatal)),
        ("before the first publish rename", (Verb::Rename, "part-", 1, Fault::Fatal)),
        ("between the publish renames", (Verb::Rename, "part-", 2, Fault::Fatal)),
        ("after the commit rename, with the answer lost", (Verb::Rename, "/commits/", 1, Fault::AppliedThenTransient)),
    ];
    for (point, fault) in points {
        let env = env();
        let out = two_commits_with(&env, Some(fault)).await;
        if fault.3 == Fault::Fatal {
            assert!(matches!(out, Err(CommitError::Store(_))), "{point}: {out:?}");
            assert_ne!(env.published(), expected_two_commits(), "{point}: nothing should be complete yet");
        }
        let mut restarted = env.log("run-2");
        assert_eq!(restarted.recover().await.unwrap(), Some(20), "{point}");
        assert_eq!(env.published(), expected_two_commits(), "{point}");
        assert_eq!(env.staged_count(), 0, "{point}");
        assert_eq!(env.manifests(), vec![slot(0), slot(1)], "{point}");
    }
}

#[tokio::test]
async fn crash_before_the_commit_point_leaves_nothing_visible() {
    let points: [(&str, Armed); 2] = [
        ("before the manifest temp write", (Verb::Create, "/_landfall/tmp/", 1, Fault::Fatal)),
        ("after the temp write, before the commit rename", (Verb::Rename, "/commits/", 1, Fault::Fatal)),
    ];
    for (point, fault) in points {
        let env = env();
        assert!(two_commits_with(&env, Some(fault)).await.is_err(), "{point}");
        let mut restarted = env.log("run-2");
        assert_eq!(restarted.recover().await.unwrap(), Some(10), "{point}: [10,19] is read again");
        let mut first_only = expected_two_commits();
        first_only.retain(|p, _| p.contains(&name(0, 9, 0)) || p.contains(&name(0, 9, 1)));
        assert_eq!(env.published(), first_only, "{point}");
        assert_eq!(env.staged_count(), 2, "{point}: the orphans wait for cleanup");
        // The re-read batch commits under the same names.
        restarted.commit(10, 19, env.batch("run-2", "b")).await.unwrap();
        assert_eq!(env.published(), expected_two_commits(), "{point}");
    }
}

#[tokio::test]
async fn recovery_is_idempotent() {
    let env = env();
    assert!(two_commits_with(&env, Some((Verb::Rename, "part-", 2, Fault::Fatal))).await.is_err());
    let mut a = env.log("run-2");
    assert_eq!(a.recover().await.unwrap(), Some(20));
    let after_first = env.store.files_under("/t/");
    let mut b = env.log("run-3");
    assert_eq!(b.recover().await.unwrap(), Some(20));
    assert_eq!(a.recover().await.unwrap(), Some(20));
    assert_eq!(env.store.files_under("/t/"), after_first);
}

#[tokio::test]
async fn lost_answers_are_treated_as_success_after_a_fresh_look() {
    let faults = [
        (Verb::Rename, "part-", 1, Fault::AppliedThenTransient),
        (Verb::Rename, "part-", 2, Fault::AppliedThenTransient),
        (Verb::Create, "/_landfall/tmp/", 1, Fault::AppliedThenTransient),
        (Verb::Rename, "/commits/", 1, Fault::Transient),
        (Verb::Read, "/commits/", 1, Fault::Transient),
        (Verb::Stat, "/staging/", 1, Fault::Transient),
        (Verb::List, "/commits/", 1, Fault::Transient),
    ];
    for fault in faults {
        let env = env();
        let m = two_commits_with(&env, Some(fault)).await.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!((m.seq, m.start, m.end), (1, 10, 19));
        assert_eq!(env.published(), expected_two_commits(), "{fault:?}");
        assert_eq!(env.staged_count(), 0, "{fault:?}");
    }
}

#[tokio::test]
async fn two_writers_racing_for_the_same_range_one_wins() {
    let env = env();
    let mut w0 = env.log("run-0");
    w0.recover().await.unwrap();
    w0.commit(0, 9, env.batch("run-0", "a")).await.unwrap();
    let (mut w1, mut w2) = (env.log("run-1"), env.log("run-2"));
    assert_eq!(w1.recover().await.unwrap(), Some(10));
    assert_eq!(w2.recover().await.unwrap(), Some(10));
    let (f1, f2) = (env.batch("run-1", "one"), env.batch("run-2", "two"));
    let (r1, r2) = tokio::join!(w1.commit(10, 19, f1), w2.commit(10, 19, f2));
    let (winner, loser) = match (&r1, &r2) {
        (Ok(_), Err(e)) => ("one", e),
        (Err(e), Ok(_)) => ("two", e),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert!(loser.is_fenced(), "{loser}");
    assert!(loser.to_string().contains("committed by another writer"), "{loser}");
    let data = env.published();
    assert_eq!(data[&format!("/t/dt=2026-11-25/hour=17/{}", name(10, 19, 0))], format!("data-{winner}").into_bytes());
    assert_eq!(data.len(), 4);
    assert_eq!(env.staged_count(), 2, "the loser's files stay staged until cleanup");
    assert!(env.store.files_under("/t/_landfall/tmp/").is_empty());
}

#[tokio::test]
async fn first_commits_at_different_offsets_are_fenced_too() {
    // With `start: latest`, two first owners may begin at different offsets; the fence is the
    // sequence number, not the offset, so they still collide.
    let env = env();
    let (mut w1, mut w2) = (env.log("run-1"), env.log("run-2"));
    assert_eq!(w1.recover().await.unwrap(), None);
    assert_eq!(w2.recover().await.unwrap(), None);
    w1.commit(100, 110, env.batch("run-1", "one")).await.unwrap();
    let err = w2.commit(150, 160, env.batch("run-2", "two")).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert_eq!(w2.next_offset(), None);
    assert!(matches!(w2.commit(111, 120, vec![]).await, Err(CommitError::NotRecovered { .. })));
    assert_eq!(w2.recover().await.unwrap(), Some(111));
}

#[tokio::test]
async fn a_zombie_reusing_a_pruned_slot_is_fenced_and_retracts() {
    let env = env();
    let mut owner = env.log("run-1");
    owner.recover().await.unwrap();
    owner.commit(0, 9, env.batch("run-1", "a")).await.unwrap();
    let mut zombie = env.log("run-z");
    assert_eq!(zombie.recover().await.unwrap(), Some(10));
    for (i, s) in (10..50).step_by(10).enumerate() {
        owner.commit(s, s + 9, env.batch("run-1", &format!("n{i}"))).await.unwrap();
    }
    assert_eq!(env.manifests(), vec![slot(2), slot(3), slot(4)], "keep = 3");
    let before = env.published();
    // The zombie wakes up and commits #1 = [10,19]: the slot is free again.
    let zfiles = env.batch("run-z", "zombie");
    let err = zombie.commit(10, 19, zfiles.clone()).await.unwrap_err();
    assert!(err.to_string().contains("a newer commit #4 exists"), "{err}");
    assert!(!env.store.exists(&slot(1)), "the zombie took its manifest back");
    assert_eq!(env.published(), before, "nothing of the zombie was published");
    assert!(zfiles.iter().all(|f| env.store.exists(&f.staged)));
    let mut next = env.log("run-2");
    assert_eq!(next.recover().await.unwrap(), Some(50));
}

#[tokio::test]
async fn a_store_that_guesses_success_cannot_fool_the_commit_point() {
    // The slot belongs to another writer, but the store claims our rename worked.
    let env = env();
    let (mut w1, mut w2) = (env.log("run-1"), env.log("run-2"));
    w1.recover().await.unwrap();
    w2.recover().await.unwrap();
    w1.commit(0, 9, env.batch("run-1", "a")).await.unwrap();
    env.store.fail_nth_matching(Verb::Rename, "/commits/", 1, Fault::SkippedButOk);
    let err = w2.commit(0, 9, env.batch("run-2", "x")).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
    assert_eq!(env.published()[&format!("/t/dt=2026-11-25/hour=17/{}", name(0, 9, 0))], b"data-a");
}

#[tokio::test]
async fn stale_or_missing_staged_files_are_refused_before_the_commit_point() {
    let env = env();
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    let files = env.batch("run-1", "a");
    env.store.set_modified(&files[1].staged, now_ms() - 31 * 60 * 1000);
    let err = log.commit(0, 9, files).await.unwrap_err();
    assert!(matches!(err, CommitError::StaleStaged { limit_s: 1800, .. }), "{err}");
    assert!(env.manifests().is_empty());
    log.recover().await.unwrap();
    let mut files = env.batch("run-1", "b");
    files[0].staged = staged_path(ROOT, "run-1");
    assert!(matches!(log.commit(0, 9, files).await, Err(CommitError::MissingStaged { .. })));
    assert!(env.manifests().is_empty());
}

#[tokio::test]
async fn a_committed_file_that_vanished_is_reported_as_lost() {
    let env = env();
    assert!(two_commits_with(&env, Some((Verb::Rename, "part-", 1, Fault::Fatal))).await.is_err());
    let m = Manifest::parse(&env.store.get(&slot(1)).unwrap()).unwrap();
    env.store.delete(&m.files[0].staged).await.unwrap();
    let err = env.log("run-2").recover().await.unwrap_err();
    assert!(matches!(err, CommitError::Lost { start: 10, end: 19, .. }), "{err}");
    assert!(err.to_string().contains("re-ingest offsets 10..=19"), "{err}");
}

#[tokio::test]
async fn a_published_name_taken_by_someone_else_is_a_conflict() {
    let env = env();
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    env.store.put(&format!("/t/dt=2026-11-25/hour=17/{}", name(0, 9, 0)), b"foreign");
    let err = log.commit(0, 9, env.batch("run-1", "a")).await.unwrap_err();
    assert!(matches!(err, CommitError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("both the staged and the published file exist"), "{err}");
}

#[tokio::test]
async fn manifests_of_an_unknown_version_stop_recovery() {
    let env = env();
    env.store.put(&slot(0), br#"{"version":2,"topic":"clicks"}"#);
    let err = env.log("run-1").recover().await.unwrap_err();
    assert!(
        matches!(err, CommitError::BadManifest { source: ManifestError::UnknownVersion { found: 2, .. }, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("unsupported manifest version 2"), "{err}");
}

#[tokio::test]
async fn shutdown_ends_retries_and_recovery_treats_it_as_a_crash() {
    let env = env();
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    env.store.fail_nth_matching(Verb::Rename, "/commits/", 1, Fault::Transient);
    env.stop_tx.send(true).unwrap();
    let err = log.commit(0, 9, env.batch("run-1", "a")).await.unwrap_err();
    assert!(matches!(err, CommitError::Stopped { .. }), "{err}");
    assert_eq!(env.log("run-2").recover().await.unwrap(), None);
}

#[tokio::test]
async fn orphan_cleanup_respects_the_grace_period_and_manifests() {
    let env = env();
    let hour = 3600 * 1000;
    let old = now_ms() - 2 * hour;
    // A committed but unpublished batch (crash before publish), then aged past grace.
    assert!(two_commits_with(&env, Some((Verb::Rename, "part-", 1, Fault::Fatal))).await.is_err());
    let committed = Manifest::parse(&env.store.get(&slot(1)).unwrap()).unwrap();
    for f in &committed.files {
        env.store.set_modified(&f.staged, old);
    }
    let old_orphan = env.stage("run-0", "x", b"old");
    env.store.set_modified(&old_orphan.staged, old);
    let young_orphan = env.stage("run-1", "x", b"young");
    env.store.put("/t/_landfall/tmp/old.json", b"{}");
    env.store.set_modified("/t/_landfall/tmp/old.json", old);
    env.store.put("/t/_landfall/tmp/young.json", b"{}");
    env.store.mkdirs("/t/_landfall/staging/run-dead").await.unwrap();
    env.store.set_modified("/t/_landfall/staging/run-dead", old);
    env.store.mkdirs("/t/_landfall/staging/run-new").await.unwrap();

    let report = clean_orphans(&env.store, ROOT, default_grace()).await.unwrap();
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut expected = vec![
        old_orphan.staged.clone(),
        "/t/_landfall/tmp/old.json".to_string(),
        "/t/_landfall/staging/run-dead".to_string(),
    ];
    expected.sort();
    assert_eq!(deleted, expected);
    assert_eq!((report.kept_young, report.kept_referenced), (2, 2));
    assert!(env.store.exists(&young_orphan.staged));
    // The referenced files survived, so recovery still completes the commit.
    assert_eq!(env.log("run-2").recover().await.unwrap(), Some(20));
    assert_eq!(env.published(), expected_two_commits());
}

#[tokio::test]
async fn invalid_requests_are_rejected_without_touching_the_store() {
    let env = env();
    assert!(CommitLog::new(Arc::new(env.store.clone()), "relative", TOPIC, PART, env.run("r")).is_err());
    assert!(CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, env.run("bad/run")).is_err());
    assert!(CommitLog::new(Arc::new(env.store.clone()), ROOT, "", PART, env.run("r")).is_err());
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    assert!(matches!(log.commit(9, 0, vec![]).await, Err(CommitError::Invalid(_))));
    let mut escaping = env.batch("run-1", "a");
    escaping[0].dir = "../other".into();
    assert!(matches!(log.commit(0, 9, escaping).await, Err(CommitError::Invalid(_))));
    let mut foreign = env.batch("run-1", "a");
    foreign[0].staged = "/t/dt=1/x.parquet".into();
    log.recover().await.unwrap();
    assert!(matches!(log.commit(0, 9, foreign).await, Err(CommitError::Invalid(_))));
    assert!(env.manifests().is_empty());
}

#[tokio::test]
async fn the_dedup_window_keeps_and_recovers_the_ids_of_the_last_messages() {
    let env = env();
    let mut run = env.run("20261125T170000Z-0000000a");
    run.config.keep_ids = 5;
    let mut log = CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, run.clone()).unwrap();
    assert_eq!(log.recover().await.unwrap(), None);
    // Six commits of two messages; the fourth one's messages had no message_id.
    for c in 0..6i64 {
        let files = env.batch("20261125T170000Z-0000000a", &c.to_string());
        let ids = if c == 3 { Vec::new() } else { vec![format!("m{}", 2 * c), format!("m{}", 2 * c + 1)] };
        log.commit_ids(2 * c, 2 * c + 1, files, ids).await.unwrap();
    }
    // Five messages need the newest three commits (6 messages): #3..#5; older ones are pruned.
    let seqs: Vec<String> = env.manifests().into_iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(seqs, [3, 4, 5].map(|s| format!("{s:020}.json")));
    let mut again = CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, run).unwrap();
    assert_eq!(again.recover().await.unwrap(), Some(12));
    let mut ids = again.take_recovered_ids();
    ids.sort();
    assert_eq!(ids, ["m10", "m11", "m8", "m9"], "commit #3 had no ids but still counts as two messages");
    assert!(again.take_recovered_ids().is_empty(), "taken once");
}

/// A topic recreated under a committed log: the jump lands nothing, the next commits re-use
/// offsets the old log had without touching its files (new generation, new names), and a
/// restart resumes after the jump, not at the old position.
#[tokio::test]
async fn a_position_jump_opens_a_generation_whose_files_never_take_old_names() {
    let env = env();
    let before = {
        two_commits_with(&env, None).await.unwrap();
        env.published()
    };
    let mut log = env.log("run-2");
    assert_eq!(log.recover().await.unwrap(), Some(20));
    assert!(log.commit(0, 9, env.batch("run-2", "c")).await.is_err(), "offsets below the position are refused");
    assert_eq!(log.recover().await.unwrap(), Some(20));
    let jump = log.jump(0, 0, 15, "earliest").await.unwrap();
    assert_eq!((jump.seq, jump.generation, jump.files.len(), jump.next()), (2, 1, 0, 0));
    log.commit(0, 9, env.batch("run-2", "c")).await.unwrap();

    let published = env.published();
    for (path, bytes) in &before {
        assert_eq!(published.get(path), Some(bytes), "{path} was touched by the new generation");
    }
    let new: Vec<&String> = published.keys().filter(|p| !before.contains_key(*p)).collect();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().all(|p| p.contains("/part-clicks-3-g1-00000000000000000000-00000000000000000009-")), "{new:?}");

    let mut restarted = env.log("run-3");
    assert_eq!(restarted.recover().await.unwrap(), Some(10), "resumes after the new generation's commit");
    restarted.commit(10, 19, env.batch("run-3", "d")).await.unwrap();
    assert_eq!(env.published().len(), before.len() + 4);
    let mut again = env.log("run-4");
    assert_eq!(again.recover().await.unwrap(), Some(20));
    assert!(again.jump(-1, 0, 0, "earliest").await.is_err());
    let mut empty = CommitLog::new(Arc::new(MemStore::new()), ROOT, TOPIC, PART, env.run("run-5")).unwrap();
    assert_eq!(empty.recover().await.unwrap(), None);
    assert!(empty.jump(0, 0, 0, "earliest").await.is_err(), "an empty log has no position to lose");
}

/// Lanes (docs/design/queue-lanes.md): another lane's fence takes the owner's next slot, so
/// the commit the owner has in flight is fenced; recovered, the owner commits the same range
/// after the fence under the same names.
#[tokio::test]
async fn a_fence_stops_the_owners_commit_in_flight_and_the_owner_goes_on_after_it() {
    let env = env();
    let mut owner = env.log("run-a");
    assert_eq!(owner.recover().await.unwrap(), None);
    owner.commit(0, 9, env.batch("run-a", "a")).await.unwrap();
    let fence = env.log("run-b").fence(7).await.unwrap();
    assert_eq!(
        (fence.seq, fence.start, fence.end, fence.files.len(), fence.next(), fence.count()),
        (1, 9, 9, 0, 10, 0)
    );
    assert_eq!(fence.fence, Some(Fence { by: 7 }));
    assert_eq!(Manifest::parse(&env.store.get(&slot(1)).unwrap()).unwrap(), fence);

    let err = owner.commit(10, 19, env.batch("run-a", "b")).await.unwrap_err();
    assert!(matches!(err, CommitError::Fenced { seq: 1, .. }), "{err}");
    assert_eq!(env.published().len(), 2, "only the first commit is visible");
    assert_eq!(owner.recover().await.unwrap(), Some(10), "a fence does not move the position");
    let again = owner.commit(10, 19, env.batch("run-a", "b")).await.unwrap();
    assert_eq!(again.seq, 2);
    assert_eq!(env.published(), expected_two_commits());
    assert_eq!(env.log("run-c").recover().await.unwrap(), Some(20));
}

/// The owner stopped after its commit point and before publishing; the fence goes on top of
/// that commit, which stays (it is published by the fencer's recovery, and by any later one
/// even under several fences).
#[tokio::test]
async fn a_commit_that_passed_its_commit_point_survives_fences_and_is_published_under_them() {
    let env = env();
    assert!(two_commits_with(&env, Some((Verb::List, "/commits/", 1, Fault::Fatal))).await.is_err());
    assert_ne!(env.published(), expected_two_commits());
    // The first fencer stops before it could publish the commit under its fence.
    env.store.fail_nth_matching(Verb::Rename, "part-", 1, Fault::Fatal);
    assert!(env.log("run-b").fence(7).await.is_err());
    assert_eq!(env.store.armed(), 0);
    assert_ne!(env.published(), expected_two_commits());
    let second = env.log("run-c").fence(8).await.unwrap();
    assert_eq!((second.seq, second.next()), (3, 20));
    assert_eq!(env.published(), expected_two_commits(), "the commit under both fences is published");
    assert_eq!(env.manifests(), vec![slot(1), slot(2), slot(3)], "the three newest are kept");
    let mut restarted = env.log("run-d");
    assert_eq!(restarted.recover().await.unwrap(), Some(20));
    restarted.commit(20, 29, env.batch("run-d", "c")).await.unwrap();
    assert_eq!(env.published().len(), 6);
}

/// A fence on a log without commits holds the first slot; the owner's first commit goes after it.
#[tokio::test]
async fn a_fence_on_an_empty_log_takes_its_first_slot() {
    let env = env();
    let mut owner = env.log("run-a");
    assert_eq!(owner.recover().await.unwrap(), None);
    let fence = env.log("run-b").fence(2).await.unwrap();
    assert_eq!((fence.seq, fence.start, fence.end, fence.next()), (0, -1, -1, 0));
    assert!(matches!(owner.commit(0, 9, env.batch("run-a", "a")).await, Err(CommitError::Fenced { .. })));
    assert_eq!(owner.recover().await.unwrap(), Some(0));
    let mut jumper = env.log("run-c");
    assert_eq!(jumper.recover().await.unwrap(), Some(0));
    assert!(jumper.jump(5, 0, 9, "latest").await.is_err(), "nothing landed before: no position to lose");
    assert_eq!(owner.commit(0, 9, env.batch("run-a", "a")).await.unwrap().seq, 1);
    // Only a fence may sit before offset 0, and a fence lands nothing.
    let mut bad = fence.clone();
    bad.fence = None;
    assert!(matches!(Manifest::parse(&bad.to_json()), Err(ManifestError::Invalid(_))));
    let mut bad = fence;
    bad.message_ids = vec!["m1".into()];
    assert!(matches!(Manifest::parse(&bad.to_json()), Err(ManifestError::Invalid(_))));
}

/// What the fencer judges redeliveries against: the ids of the owner's newest commits,
/// including one its owner committed but never published.
#[tokio::test]
async fn a_fencer_reads_the_ids_of_the_commits_under_its_fence() {
    let env = env();
    let mut run = env.run("run-a");
    run.config.keep_ids = 100;
    let mut owner = CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, run.clone()).unwrap();
    assert_eq!(owner.recover().await.unwrap(), None);
    owner.commit_ids(0, 1, env.batch("run-a", "a"), vec!["m0".into(), "m1".into()]).await.unwrap();
    env.store.fail_nth_matching(Verb::List, "/commits/", 1, Fault::Fatal);
    assert!(owner.commit_ids(2, 3, env.batch("run-a", "b"), vec!["m2".into(), "m3".into()]).await.is_err());
    run.run_id = "run-b".into();
    let mut fencer = CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, run).unwrap();
    fencer.fence(5).await.unwrap();
    let mut ids = fencer.take_recovered_ids();
    ids.sort();
    assert_eq!(ids, ["m0", "m1", "m2", "m3"]);
}

/// What recovery publishes under fences follows the chain of `previous` digests from the
/// tip, not positions: a manifest in a slot below the fences that the chain does not name (a
/// stale writer's, in a slot pruning had emptied) is never published.
#[tokio::test]
async fn under_fences_only_the_commit_the_chain_names_is_published() {
    let env = env();
    assert!(two_commits_with(&env, Some((Verb::List, "/commits/", 1, Fault::Fatal))).await.is_err());
    env.store.fail_nth_matching(Verb::Rename, "part-", 1, Fault::Fatal);
    assert!(env.log("run-b").fence(7).await.is_err(), "the fence is written, its recovery stops");
    // A stale writer's manifest for offsets 10..=14 now sits in slot #1.
    let mut stale = Manifest::parse(&env.store.get(&slot(1)).unwrap()).unwrap();
    stale.end = 14;
    stale.run_id = "run-z".into();
    for (n, f) in stale.files.iter_mut().enumerate() {
        f.staged = env.stage("run-z", "x", b"zombie").staged;
        f.final_path = f.final_path.replace(&name(10, 19, n), &name(10, 14, n));
        f.bytes = 6;
    }
    env.store.put(&slot(1), &stale.to_json());
    assert_eq!(env.log("run-c").recover().await.unwrap(), Some(20));
    let published = env.published();
    assert!(published.keys().all(|p| !p.contains(&name(10, 14, 0)) && !p.contains(&name(10, 14, 1))), "{published:?}");
}

/// Temp manifests present under the table's state dir.
fn tmp_manifests(env: &Env) -> Vec<String> {
    let dir = crate::commit::paths::tmp_dir(ROOT);
    env.store.files_under(&dir).into_keys().filter(|p| p.ends_with(".json")).collect()
}

#[tokio::test]
async fn the_manifest_is_written_while_the_files_close_and_the_commit_point_waits_for_them() {
    let env = env();
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    let files = env.batch("run-1", "a");
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let store = env.store.clone();
    let closing = async move {
        // The temp manifest appears while this close is still pending...
        let dir = crate::commit::paths::tmp_dir(ROOT);
        for _ in 0..1000 {
            if store.files_under(&dir).keys().any(|p| p.ends_with(".json")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let written = store.files_under(&dir).keys().any(|p| p.ends_with(".json"));
        // ...and nothing is committed before it ends.
        let committed = store.files_under(&format!("{ROOT}/_landfall/commits")).is_empty();
        let _ = closed_tx.send(());
        if written && committed {
            Ok(())
        } else {
            Err(format!("temp manifest written: {written}, commit log still empty: {committed}"))
        }
    };
    let m = log.commit_while_closing(0, 9, files, vec!["a".into()], None, closing).await.unwrap();
    closed_rx.await.unwrap();
    assert_eq!(m.seq, 0);
    assert!(tmp_manifests(&env).is_empty(), "the temp manifest became the commit");
    assert_eq!(log.next_offset(), Some(10));
}

#[tokio::test]
async fn a_file_that_fails_to_close_voids_the_commit_and_its_temp_manifest() {
    let env = env();
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    let files = env.batch("run-1", "a");
    let files_copy = files.clone();
    let closing = async { Err("closing staged file x: the DataNode went away".to_string()) };
    let err = log.commit_while_closing(0, 9, files, vec![], None, closing).await.unwrap_err();
    assert!(matches!(&err, CommitError::NotClosed { reason } if reason.contains("DataNode")), "{err}");
    assert!(tmp_manifests(&env).is_empty(), "the temp manifest of a void commit was left behind");
    for f in &files_copy {
        assert!(!env.store.exists(&f.staged), "staged file {} of a void commit was left behind", f.staged);
    }
    // Nothing was committed: a fresh writer finds an empty log.
    let mut again = env.log("run-2");
    assert_eq!(again.recover().await.unwrap(), None);
}

#[tokio::test]
async fn a_staged_file_shorter_than_written_is_refused_before_the_commit_point() {
    let env = env();
    let mut log = env.log("run-1");
    log.recover().await.unwrap();
    let mut files = env.batch("run-1", "a");
    files[0].bytes += 1;
    let err = log.commit(0, 9, files).await.unwrap_err();
    assert!(matches!(&err, CommitError::StagedSize { found, written, .. } if found + 1 == *written), "{err}");
    let mut again = env.log("run-2");
    assert_eq!(again.recover().await.unwrap(), None);
}

/// Partition completion: each manifest records the partition's cumulative event-time maximum
/// (a range of late rows never lowers it), recovery reads it back (through a fence), a jump
/// carries it, and with `record_event_time` off no manifest has the field.
#[tokio::test]
async fn manifests_record_how_far_event_time_reached_and_recovery_reads_it_back() {
    let env = env();
    let recording = |run_id: &str| {
        let mut run = env.run(run_id);
        run.config.record_event_time = true;
        CommitLog::new(Arc::new(env.store.clone()), ROOT, TOPIC, PART, run).unwrap()
    };
    let reached = |m: &Manifest| m.event_time.map(|t| t.reached);
    let mut log = recording("run-1");
    assert_eq!(log.recover().await.unwrap(), None);
    let none = async { Ok(()) };
    let m = log.commit_while_closing(0, 9, env.batch("run-1", "a"), vec![], None, none).await.unwrap();
    assert_eq!(reached(&m), None, "no clock value known yet: nothing recorded");
    let m =
        log.commit_while_closing(10, 19, env.batch("run-1", "b"), vec![], Some(500), async { Ok(()) }).await.unwrap();
    assert_eq!(reached(&m), Some(500));
    let m =
        log.commit_while_closing(20, 29, env.batch("run-1", "c"), vec![], Some(100), async { Ok(()) }).await.unwrap();
    assert_eq!(reached(&m), Some(500), "late rows do not lower it");
    assert_eq!(log.reached(), Some(500));

    let mut restarted = recording("run-2");
    assert_eq!(restarted.recover().await.unwrap(), Some(30));
    assert_eq!(restarted.reached(), Some(500), "recovery reads the newest manifest's");
    let m =
        restarted.commit_while_closing(30, 39, env.batch("run-2", "d"), vec![], None, async { Ok(()) }).await.unwrap();
    assert_eq!(reached(&m), Some(500), "a range without clock values keeps the partition's");
    let jump = restarted.jump(0, 0, 5, "earliest").await.unwrap();
    assert_eq!(reached(&jump), Some(500), "a jump lands nothing and keeps it");

    let fence = recording("run-3").fence(7).await.unwrap();
    assert_eq!(reached(&fence), None, "a fence records none");
    let mut under_fence = recording("run-4");
    under_fence.recover().await.unwrap();
    assert_eq!(under_fence.reached(), Some(500), "read through the fence from the commit below");

    let mut off = env.log("run-5");
    off.recover().await.unwrap();
    let m = off.commit_while_closing(0, 9, env.batch("run-5", "e"), vec![], Some(900), async { Ok(()) }).await.unwrap();
    assert_eq!(reached(&m), None, "not recorded unless completion is configured");
}
