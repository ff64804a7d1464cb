//! The compaction records of one partition, under `<table>/_landfall/compaction/<partition>/`:
//! `g<N>.plan` (the decision, JSON), `g<N>.built` (the build directory that passed its check),
//! `g<N>.switched` (the metastore points there; its time starts the grace) and `g<N>.cleaned`
//! (the inputs are deleted). The first two carry content and are published by a no-overwrite
//! rename of a hidden temporary file, so a reader never sees half of one and the first writer
//! decides; the last two are empty and created if absent. `docs/design/compaction.md`.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::plan::Plan;
use crate::sink::{FileStore, StoreError};

/// What the records of one generation say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steps {
    pub planned: bool,
    pub built: bool,
    /// When `.switched` was created (store time, ms).
    pub switched_ms: Option<u64>,
    pub cleaned: bool,
}

/// The records of one partition, by generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    pub generations: BTreeMap<u32, Steps>,
}

impl Records {
    /// The newest planned generation and its steps.
    pub fn newest(&self) -> Option<(u32, &Steps)> {
        self.generations.iter().rev().find(|(_, s)| s.planned).map(|(n, s)| (*n, s))
    }

    /// The newest generation the metastore was switched to.
    pub fn switched(&self) -> Option<u32> {
        self.generations.iter().rev().find(|(_, s)| s.switched_ms.is_some()).map(|(n, _)| *n)
    }
}

/// `<root>/_landfall/compaction/<partition>`: the records of a partition (its template
/// directory relative to the table, `dt=2026-11-25/hour=17`).
pub fn records_dir(root: &str, partition: &str) -> String {
    format!("{}/_landfall/compaction/{partition}", root.trim_end_matches('/'))
}

/// `<root>/_landfall/generations/<partition>/g<N>-<run>`: one build of generation `n`.
pub fn build_dir(root: &str, partition: &str, n: u32, run: &str) -> String {
    format!("{}/_landfall/generations/{partition}/g{n:06}-{run}", root.trim_end_matches('/'))
}

/// The directory holding every build of the partition's generations.
pub fn builds_parent(root: &str, partition: &str) -> String {
    format!("{}/_landfall/generations/{partition}", root.trim_end_matches('/'))
}

/// A record's path.
pub fn record(root: &str, partition: &str, n: u32, step: &str) -> String {
    format!("{}/g{n:06}.{step}", records_dir(root, partition))
}

/// Reads a partition's records (none: an empty [`Records`]).
pub async fn read(store: &dyn FileStore, root: &str, partition: &str) -> Result<Records, StoreError> {
    let mut records = Records::default();
    for entry in store.list(&records_dir(root, partition)).await? {
        let name = entry.path.rsplit('/').next().unwrap_or_default();
        let Some((n, step)) = name.strip_prefix('g').and_then(|rest| rest.split_once('.')) else { continue };
        let Ok(n) = n.parse::<u32>() else { continue };
        let steps = records.generations.entry(n).or_default();
        match step {
            "plan" => steps.planned = true,
            "built" => steps.built = true,
            "switched" => steps.switched_ms = Some(entry.modified_ms),
            "cleaned" => steps.cleaned = true,
            _ => {}
        }
    }
    records.generations.retain(|_, s| s.planned);
    Ok(records)
}

/// Publishes `content` at `path` unless something is there already; returns what `path`
/// holds afterwards (ours, or the first writer's).
async fn publish_once(store: &dyn FileStore, path: &str, run: &str, content: Bytes) -> Result<Bytes, StoreError> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let tmp = format!("{dir}/.{name}.{run}");
    store.delete(&tmp).await?;
    let mut w = store.create(&tmp).await?;
    w.write(content.clone()).await?;
    w.close().await?;
    match store.rename(&tmp, path).await {
        Ok(()) => Ok(content),
        Err(StoreError::AlreadyExists { .. }) => {
            store.delete(&tmp).await?;
            store.read(path).await
        }
        Err(e) => Err(e),
    }
}

/// Records the decision to build `plan`'s generation; returns the plan that holds: ours, or
/// the one another completer decided first.
pub async fn decide(
    store: &dyn FileStore,
    root: &str,
    partition: &str,
    plan: &Plan,
    run: &str,
) -> Result<Plan, String> {
    let path = record(root, partition, plan.generation, "plan");
    let text = serde_json::to_vec(plan).map_err(|e| format!("{path}: {e}"))?;
    let held = publish_once(store, &path, run, Bytes::from(text)).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&held).map_err(|e| format!("{path}: not a compaction plan ({e})"))
}

/// Reads generation `n`'s plan.
pub async fn plan(store: &dyn FileStore, root: &str, partition: &str, n: u32) -> Result<Plan, String> {
    let path = record(root, partition, n, "plan");
    let text = store.read(&path).await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| format!("{path}: not a compaction plan ({e})"))
}

/// Records `dir` as generation `n`'s build; returns the directory that holds: ours, or the
/// one another build recorded first.
pub async fn record_built(
    store: &dyn FileStore,
    root: &str,
    partition: &str,
    n: u32,
    dir: &str,
    run: &str,
) -> Result<String, StoreError> {
    let path = record(root, partition, n, "built");
    let held = publish_once(store, &path, run, Bytes::from(dir.to_string())).await?;
    Ok(String::from_utf8_lossy(&held).into_owned())
}

/// The directory recorded in generation `n`'s `.built`.
pub async fn built(store: &dyn FileStore, root: &str, partition: &str, n: u32) -> Result<String, StoreError> {
    let held = store.read(&record(root, partition, n, "built")).await?;
    Ok(String::from_utf8_lossy(&held).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compaction::plan::Input;
    use crate::sink::memory::MemStore;

    fn plan(n: u32, first: &str) -> Plan {
        Plan { generation: n, inputs: vec![Input { path: first.into(), bytes: 1 }], covers: vec![], previous: None }
    }

    #[tokio::test]
    async fn the_first_decision_and_the_first_build_hold() {
        let store = MemStore::new();
        let p = "dt=2026-11-25/hour=17";
        assert_eq!(read(&store, "/t", p).await.unwrap(), Records::default());
        let ours = decide(&store, "/t", p, &plan(1, "/t/a"), "run-a").await.unwrap();
        assert_eq!(ours, plan(1, "/t/a"));
        let theirs = decide(&store, "/t", p, &plan(1, "/t/b"), "run-b").await.unwrap();
        assert_eq!(theirs, plan(1, "/t/a"), "a second completer follows the first decision");
        let dir_a = build_dir("/t", p, 1, "run-a");
        assert_eq!(record_built(&store, "/t", p, 1, &dir_a, "run-a").await.unwrap(), dir_a);
        let dir_b = build_dir("/t", p, 1, "run-b");
        assert_eq!(record_built(&store, "/t", p, 1, &dir_b, "run-b").await.unwrap(), dir_a);
        assert_eq!(built(&store, "/t", p, 1).await.unwrap(), dir_a);
        let names: Vec<String> = store.list(&records_dir("/t", p)).await.unwrap().into_iter().map(|f| f.path).collect();
        assert_eq!(names.len(), 2, "no temporary file left behind: {names:?}");

        let records = read(&store, "/t", p).await.unwrap();
        assert_eq!(
            records.newest(),
            Some((1, &Steps { planned: true, built: true, switched_ms: None, cleaned: false }))
        );
        assert_eq!(records.switched(), None);
    }

    #[tokio::test]
    async fn steps_without_a_plan_are_ignored_and_switches_keep_their_time() {
        let store = MemStore::new();
        let p = "dt=x";
        decide(&store, "/t", p, &plan(1, "/t/a"), "r").await.unwrap();
        crate::completion::records::create_empty(&store, &record("/t", p, 1, "switched")).await.unwrap();
        crate::completion::records::create_empty(&store, &record("/t", p, 2, "switched")).await.unwrap();
        let records = read(&store, "/t", p).await.unwrap();
        assert_eq!(records.generations.len(), 1, "generation 2 has no plan: {records:?}");
        assert_eq!(records.switched(), Some(1));
        assert!(records.generations[&1].switched_ms.is_some());
    }
}
