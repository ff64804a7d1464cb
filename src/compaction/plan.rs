//! What a generation is built from: the plan of `docs/design/compaction.md`, decided once per
//! generation (create-if-absent) and followed by every build of it. Pure: listings in, plan out.

use serde::{Deserialize, Serialize};

use crate::sink::FileStatus;

/// One file a generation reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub path: String,
    pub bytes: u64,
}

/// The decision to build generation `generation` of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// 1 for the first compaction of the partition, then one more per rebuild.
    pub generation: u32,
    /// Every file the generation reads, in the order it reads them: the template directory's
    /// files no earlier generation holds, then the previous generation's files.
    pub inputs: Vec<Input>,
    /// Every file of the template directory whose rows this generation holds: the previous
    /// plan's `covers` and the template files among `inputs`. A template file outside it
    /// landed after the plan (late rows) and calls for the next generation.
    pub covers: Vec<String>,
    /// The previous generation's directory, deleted when this one is cleaned; `None` for
    /// generation 1 (the template directory's own files are deleted instead).
    pub previous: Option<String>,
}

/// The files Spark would read in a directory listing: not directories, not hidden (`_`/`.`,
/// as Spark skips them: `_SUCCESS`, staging), not empty.
pub fn data_files(listing: &[FileStatus]) -> Vec<&FileStatus> {
    let mut files: Vec<&FileStatus> = listing
        .iter()
        .filter(|f| !f.is_dir && f.len > 0)
        .filter(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path);
            !name.starts_with('_') && !name.starts_with('.')
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// Where the partition stands: its newest generation (the one the metastore points at, or
/// about to), if any.
pub struct Current<'a> {
    pub plan: &'a Plan,
    /// The directory of the build recorded in `.built`.
    pub dir: &'a str,
    /// The files in that directory.
    pub files: &'a [FileStatus],
}

/// The next generation's plan, or `None` when the partition needs none: a first generation
/// once the template directory holds `min_files` data files, a later one once it holds files
/// the current generation does not cover (rows that landed after it was planned).
pub fn next(template: &[FileStatus], current: Option<Current<'_>>, min_files: usize) -> Option<Plan> {
    let files = data_files(template);
    match current {
        None => (files.len() >= min_files.max(2)).then(|| Plan {
            generation: 1,
            inputs: files.iter().map(|f| input(f)).collect(),
            covers: files.iter().map(|f| f.path.clone()).collect(),
            previous: None,
        }),
        Some(current) => {
            let covered: std::collections::HashSet<&str> = current.plan.covers.iter().map(String::as_str).collect();
            let late: Vec<&FileStatus> = files.into_iter().filter(|f| !covered.contains(f.path.as_str())).collect();
            if late.is_empty() {
                return None;
            }
            let mut covers = current.plan.covers.clone();
            covers.extend(late.iter().map(|f| f.path.clone()));
            let mut inputs: Vec<Input> = late.iter().map(|f| input(f)).collect();
            inputs.extend(data_files(current.files).into_iter().map(input));
            Some(Plan {
                generation: current.plan.generation + 1,
                inputs,
                covers,
                previous: Some(current.dir.to_string()),
            })
        }
    }
}

fn input(f: &FileStatus) -> Input {
    Input { path: f.path.clone(), bytes: f.len }
}

impl Plan {
    /// The template directory's files this generation deletes when it is cleaned: its inputs
    /// that are not in the previous generation's directory.
    pub fn template_inputs(&self) -> impl Iterator<Item = &str> {
        let previous = self.previous.as_deref().map(|d| format!("{d}/"));
        self.inputs
            .iter()
            .map(|i| i.path.as_str())
            .filter(move |p| previous.as_deref().is_none_or(|d| !p.starts_with(d)))
    }

    pub fn input_bytes(&self) -> u64 {
        self.inputs.iter().map(|i| i.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, len: u64) -> FileStatus {
        FileStatus { path: path.to_string(), is_dir: false, len, modified_ms: 0 }
    }

    const D: &str = "/t/dt=2026-11-25/hour=17";

    fn template(names: &[&str]) -> Vec<FileStatus> {
        let mut listing: Vec<FileStatus> = names.iter().map(|n| file(&format!("{D}/{n}"), 100)).collect();
        listing.push(file(&format!("{D}/_SUCCESS"), 0));
        listing.push(file(&format!("{D}/.part-x.parquet.tmp"), 7));
        listing.push(FileStatus { path: format!("{D}/sub"), is_dir: true, len: 0, modified_ms: 0 });
        listing
    }

    #[test]
    fn a_first_generation_waits_for_min_files_and_reads_only_data_files() {
        assert_eq!(next(&template(&["part-b", "part-a"]), None, 3), None);
        let plan = next(&template(&["part-c", "part-b", "part-a"]), None, 3).unwrap();
        assert_eq!(plan.generation, 1);
        let paths: Vec<&str> = plan.inputs.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, [format!("{D}/part-a"), format!("{D}/part-b"), format!("{D}/part-c")]);
        assert_eq!(plan.covers, paths);
        assert_eq!(plan.previous, None);
        assert_eq!(plan.input_bytes(), 300);
        assert_eq!(plan.template_inputs().count(), 3);
    }

    #[test]
    fn late_files_make_the_next_generation_from_the_current_one_and_the_late_files() {
        let first = next(&template(&["part-a", "part-b"]), None, 2).unwrap();
        let g1 = "/t/_landfall/generations/dt=2026-11-25/hour=17/g000001-r1";
        let g1_files = vec![file(&format!("{g1}/part-c1-00000.parquet"), 180), file(&format!("{g1}/_SUCCESS"), 0)];
        let current = || Some(Current { plan: &first, dir: g1, files: &g1_files });
        assert_eq!(next(&template(&["part-a", "part-b"]), current(), 2), None, "nothing new");
        // The template files of generation 1 may be gone (cleaned) or still there: either way
        // only the new one is late.
        for listing in [template(&["part-a", "part-b", "part-late"]), template(&["part-late"])] {
            let plan = next(&listing, current(), 2).unwrap();
            assert_eq!(plan.generation, 2);
            let paths: Vec<&str> = plan.inputs.iter().map(|i| i.path.as_str()).collect();
            assert_eq!(paths, [format!("{D}/part-late"), format!("{g1}/part-c1-00000.parquet")]);
            assert_eq!(plan.covers, [format!("{D}/part-a"), format!("{D}/part-b"), format!("{D}/part-late")]);
            assert_eq!(plan.previous.as_deref(), Some(g1));
            let deleted: Vec<&str> = plan.template_inputs().collect();
            assert_eq!(deleted, [format!("{D}/part-late")], "the previous generation goes as a directory");
        }
    }

    #[test]
    fn a_plan_reads_back_as_written_and_refuses_unknown_fields() {
        let plan = next(&template(&["part-a", "part-b"]), None, 2).unwrap();
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), plan);
        let extra = text.replacen('{', r#"{"surprise":1,"#, 1);
        assert!(serde_json::from_str::<Plan>(&extra).is_err());
    }
}
