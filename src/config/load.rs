//! From pipeline text to a checked [`PipelineConfig`], collecting every problem on the way:
//!
//! 1. `${VAR}` interpolation (missing variables are reported, parsing goes on);
//! 2. YAML → position-aware tree (a syntax error stops here: nothing after it is reliable);
//! 3. unknown keys, against the key sets read out of the serde derives ([`super::shape`]);
//! 4. serde, repeatedly: each type error is reported, then the bad value is replaced by the
//!    value at the same path in a shipped example (or removed) and serde runs again, so one
//!    bad value does not hide the next;
//! 5. semantic checks ([`super::validate`]) on every section that parsed cleanly; their
//!    warnings are kept apart from the errors.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use serde_norway::Value;

use super::env::interpolate;
use super::errors::{ConfigError, ConfigErrors, ConfigWarning};
use super::pipeline::PipelineConfig;
use super::secret::Redactor;
use super::shape::{shapes_of, Shape};
use super::validate::{self, TemplateParser};
use super::yaml::{self, path_string, Node, NodeKind, Pos, Seg};

/// Shipped example pipelines; also the source of stand-in values for step 4.
pub(crate) const EXAMPLES: &[(&str, &str)] = &[
    ("clicks.yaml", include_str!("examples/clicks.yaml")),
    ("orders_local.yaml", include_str!("examples/orders_local.yaml")),
];

/// The result of parsing one file: the config if it could be built, the tree for locating
/// later problems, every problem found, and the warnings about settings that work but
/// surprise.
pub(crate) struct Parsed {
    pub config: Option<PipelineConfig>,
    pub tree: Option<Node>,
    pub errors: ConfigErrors,
    pub warnings: Vec<ConfigWarning>,
}

fn shapes() -> &'static BTreeMap<String, Shape> {
    static SHAPES: OnceLock<BTreeMap<String, Shape>> = OnceLock::new();
    SHAPES.get_or_init(shapes_of::<PipelineConfig>)
}

fn is_enum(path: &[Seg]) -> bool {
    matches!(shapes().get(&path_string(path, true)), Some(Shape::Enum(_)))
}

fn reference_values() -> &'static [Value] {
    static VALUES: OnceLock<Vec<Value>> = OnceLock::new();
    VALUES.get_or_init(|| {
        EXAMPLES
            .iter()
            .filter_map(|(_, text)| yaml::parse(text).ok())
            .map(|(tree, _)| tree.to_value(&mut Vec::new(), &is_enum))
            .collect()
    })
}

/// Parses and checks pipeline text; `file` only labels the errors.
pub(crate) fn parse_pipeline_text(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    template: TemplateParser,
) -> Parsed {
    let interpolated = interpolate(text, env);
    let mut report = Report { file, redactor: &interpolated.redactor, errors: Vec::new() };

    let (mut tree, yaml_problems) = match yaml::parse(&interpolated.text) {
        Ok(parsed) => parsed,
        Err(problem) => {
            for env_problem in &interpolated.problems {
                report.add(Pos { line: env_problem.line, column: env_problem.column }, &[], &env_problem.message);
            }
            report.add(problem.pos, &problem.path, &problem.message);
            return Parsed { config: None, tree: None, errors: report.finish(), warnings: Vec::new() };
        }
    };
    if !matches!(tree.kind, NodeKind::Map(_)) {
        let found = match &tree.kind {
            NodeKind::Scalar { text, .. } if text.is_empty() => "an empty document".to_string(),
            NodeKind::Scalar { text, .. } => format!("the scalar `{text}`"),
            _ => "a list".to_string(),
        };
        let keys = match shapes().get("") {
            Some(Shape::Struct(fields)) => list(fields),
            _ => String::new(),
        };
        report.add(tree.pos, &[], &format!("a pipeline file is a YAML mapping with the keys {keys}; found {found}"));
        return Parsed { config: None, tree: None, errors: report.finish(), warnings: Vec::new() };
    }
    let mut suppress = Suppress::default();
    let mut tainted: HashSet<String> = HashSet::new();
    for env_problem in &interpolated.problems {
        let path = path_at(&tree, env_problem.line, env_problem.column);
        taint(&mut tainted, &path);
        suppress.lines.insert(env_problem.line);
        if !path.is_empty() {
            suppress.paths.push(path_string(&path, false));
        }
        report.add(Pos { line: env_problem.line, column: env_problem.column }, &path, &env_problem.message);
    }
    for problem in yaml_problems {
        report.add(problem.pos, &problem.path, &problem.message);
    }

    let mut structural = Structural::default();
    check_keys(&tree, &mut Vec::new(), &mut structural);
    for (pos, path, message) in &structural.problems {
        report.add(*pos, path, message);
    }
    for path in &structural.broken_enums {
        taint(&mut tainted, path);
    }
    suppress.paths.extend(structural.broken_enums.iter().map(|p| path_string(p, false)));
    let original = tree.clone();
    for path in &structural.remove {
        remove_node(&mut tree, path);
    }

    let mut value = tree.to_value(&mut Vec::new(), &is_enum);
    let config = deserialize_repairing(&mut value, &original, &suppress, &mut tainted, &mut report);

    let mut warnings = Vec::new();
    let config = config.map(|mut config| {
        config.source.mark_secrets(&interpolated.redactor);
        config.sink.mark_secrets(&interpolated.redactor);
        let clean = |section: &str| !tainted.contains(section);
        let findings = validate::check(&config, &clean, template);
        for issue in findings.errors {
            if !suppress.covers(&issue.path, original.locate(&issue.path)) {
                report.add(original.locate(&issue.path), &issue.path, &issue.message);
            }
        }
        for issue in findings.warnings {
            let pos = original.locate(&issue.path);
            warnings.push(ConfigWarning(report.error(pos, &issue.path, &issue.message)));
        }
        config
    });
    Parsed { config, tree: Some(original), errors: report.finish(), warnings }
}

/// Step 4: serde until it succeeds, reporting and repairing one error per round.
fn deserialize_repairing(
    value: &mut Value,
    tree: &Node,
    suppress: &Suppress,
    tainted: &mut HashSet<String>,
    report: &mut Report<'_>,
) -> Option<PipelineConfig> {
    let mut reported = HashSet::new();
    let mut repaired = HashSet::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, PipelineConfig>(value.clone()) {
            Ok(config) => return Some(config),
            Err(error) => error,
        };
        let mut path = to_segs(error.path());
        let inner = error.into_inner().to_string();
        let message = match missing_field(&inner) {
            Some(field) => {
                path.push(Seg::Key(field.to_string()));
                format!("missing required field `{field}`")
            }
            None => inner,
        };
        taint(tainted, &path);
        let key = path_string(&path, false);
        let pos = tree.locate(&path);
        if !suppress.covers(&path, pos) && reported.insert(key.clone()) {
            report.add(pos, &path, &message);
        }
        // A path repaired before and failing again cannot be fixed by more rounds.
        if !repaired.insert(key) {
            return None;
        }
        let done = match reference_value(&path) {
            Some(stand_in) => set_value(value, &path, stand_in),
            None => remove_value(value, &path),
        };
        if !done {
            return None;
        }
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn to_segs(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            _ => None,
        })
        .collect()
}

fn taint(tainted: &mut HashSet<String>, path: &[Seg]) {
    if let Some(Seg::Key(section)) = path.first() {
        tainted.insert(section.clone());
    }
}

/// Problems that would only echo one already reported: anything inside an enum whose variant
/// key was wrong, and anything on a line where a `${VAR}` was missing.
#[derive(Default)]
struct Suppress {
    paths: Vec<String>,
    lines: HashSet<usize>,
}

impl Suppress {
    fn covers(&self, path: &[Seg], pos: Pos) -> bool {
        let text = path_string(path, false);
        self.lines.contains(&pos.line) || self.paths.iter().any(|p| text == *p || text.starts_with(&format!("{p}.")))
    }
}

struct Report<'a> {
    file: &'a Path,
    redactor: &'a Redactor,
    errors: Vec<ConfigError>,
}

impl Report<'_> {
    fn add(&mut self, pos: Pos, path: &[Seg], message: &str) {
        let error = self.error(pos, path, message);
        self.errors.push(error);
    }

    /// A finding at `pos` in this file, with secrets redacted from its message.
    fn error(&self, pos: Pos, path: &[Seg], message: &str) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            key_path: path_string(path, false),
            message: self.redactor.redact(message),
        }
    }

    fn finish(self) -> ConfigErrors {
        let mut errors = ConfigErrors(self.errors);
        errors.sort_within_file();
        errors
    }
}

/// Step 3 findings.
#[derive(Default)]
struct Structural {
    problems: Vec<(Pos, Vec<Seg>, String)>,
    /// Unknown keys, removed before serde sees the tree (they are already reported).
    remove: Vec<Vec<Seg>>,
    /// Enums whose variant key is wrong, missing or ambiguous.
    broken_enums: Vec<Vec<Seg>>,
}

fn check_keys(node: &Node, path: &mut Vec<Seg>, out: &mut Structural) {
    let shape = shapes().get(&path_string(path, true));
    match (&node.kind, shape) {
        (NodeKind::Map(entries), Some(Shape::Struct(fields))) => {
            for entry in entries {
                path.push(Seg::Key(entry.key.clone()));
                if fields.contains(&entry.key.as_str()) {
                    check_keys(&entry.value, path, out);
                } else {
                    out.problems.push((
                        entry.key_pos,
                        path.clone(),
                        format!(
                            "unknown field `{}`, expected one of {}{}",
                            entry.key,
                            list(fields),
                            suggest(&entry.key, fields)
                        ),
                    ));
                    out.remove.push(path.clone());
                }
                path.pop();
            }
        }
        (NodeKind::Map(entries), Some(Shape::Enum(variants))) => {
            let mut known = Vec::new();
            for entry in entries {
                path.push(Seg::Key(entry.key.clone()));
                if variants.contains(&entry.key.as_str()) {
                    known.push(entry.key.as_str());
                    check_keys(&entry.value, path, out);
                } else {
                    out.problems.push((
                        entry.key_pos,
                        path.clone(),
                        format!(
                            "unknown variant `{}`, expected one of {}{}",
                            entry.key,
                            list(variants),
                            suggest(&entry.key, variants)
                        ),
                    ));
                    out.remove.push(path.clone());
                }
                path.pop();
            }
            if known.len() != 1 {
                if known.len() > 1 || entries.is_empty() {
                    let found = if known.is_empty() { "none".to_string() } else { list(&known) };
                    out.problems.push((
                        node.pos,
                        path.clone(),
                        format!("choose exactly one of {}, found {found}", list(variants)),
                    ));
                }
                out.broken_enums.push(path.clone());
            }
        }
        (NodeKind::Scalar { text, .. }, Some(Shape::Enum(variants)))
            if variants.iter().any(|v| shapes().contains_key(&format!("{}.{v}", path_string(path, true)))) =>
        {
            out.problems.push((
                node.pos,
                path.clone(),
                format!("expected a mapping with one of {} and its settings below it (e.g. `{}: {{ ... }}`), found `{text}`", list(variants), variants[0]),
            ));
            out.broken_enums.push(path.clone());
        }
        (NodeKind::Seq(items), _) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                check_keys(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// ` (did you mean `group`?)` when a known name is close to the typo ([`crate::suggest`]).
fn suggest(typo: &str, names: &[&str]) -> String {
    crate::suggest::closest(typo, names.iter().copied())
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}

/// The innermost key path at or before `line:column` (to name the key of a `${VAR}` problem).
fn path_at(tree: &Node, line: usize, column: usize) -> Vec<Seg> {
    fn walk(node: &Node, path: &mut Vec<Seg>, target: (usize, usize), best: &mut Vec<Seg>) {
        let before = |pos: Pos| (pos.line, pos.column) <= target;
        if !before(node.pos) {
            return;
        }
        *best = path.clone();
        match &node.kind {
            NodeKind::Map(entries) => {
                for entry in entries.iter().filter(|e| before(e.key_pos)) {
                    path.push(Seg::Key(entry.key.clone()));
                    *best = path.clone();
                    walk(&entry.value, path, target, best);
                    path.pop();
                }
            }
            NodeKind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(item, path, target, best);
                    path.pop();
                }
            }
            NodeKind::Scalar { .. } => {}
        }
    }
    let mut best = Vec::new();
    walk(tree, &mut Vec::new(), (line, column), &mut best);
    best
}

fn remove_node(tree: &mut Node, path: &[Seg]) {
    let Some((Seg::Key(key), parent)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for seg in parent {
        let next = match (&mut node.kind, seg) {
            (NodeKind::Map(entries), Seg::Key(k)) => entries.iter_mut().find(|e| &e.key == k).map(|e| &mut e.value),
            (NodeKind::Seq(items), Seg::Index(i)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return };
        node = next;
    }
    if let NodeKind::Map(entries) = &mut node.kind {
        entries.retain(|e| &e.key != key);
    }
}

/// The value at `path` (indices read as 0) in the first shipped example that has it.
fn reference_value(path: &[Seg]) -> Option<Value> {
    reference_values().iter().find_map(|root| {
        let mut value = root;
        for seg in path {
            value = match seg {
                Seg::Index(_) => value.as_sequence()?.first()?,
                Seg::Key(key) => child(value, key)?,
            };
        }
        Some(value.clone())
    })
}

fn tag_is(tagged: &serde_norway::value::TaggedValue, key: &str) -> bool {
    tagged.tag.to_string().trim_start_matches('!') == key
}

fn child<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match value {
        Value::Mapping(map) => map.get(key),
        Value::Tagged(tagged) if tag_is(tagged, key) => Some(&tagged.value),
        _ => None,
    }
}

/// Walks to the parent of `path`'s last segment.
fn parent_mut<'v>(mut value: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    for seg in path {
        value = match (value, seg) {
            (Value::Mapping(map), Seg::Key(key)) => map.get_mut(key.as_str())?,
            (Value::Tagged(tagged), Seg::Key(key)) if tag_is(tagged, key) => &mut tagged.value,
            (Value::Sequence(items), Seg::Index(i)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

fn set_value(root: &mut Value, path: &[Seg], new: Value) -> bool {
    let Some((last, parent)) = path.split_last() else {
        *root = new;
        return true;
    };
    match (parent_mut(root, parent), last) {
        (Some(Value::Mapping(map)), Seg::Key(key)) => {
            map.insert(Value::String(key.clone()), new);
            true
        }
        (Some(Value::Tagged(tagged)), Seg::Key(key)) if tag_is(tagged, key) => {
            tagged.value = new;
            true
        }
        (Some(Value::Sequence(items)), Seg::Index(i)) if *i < items.len() => {
            items[*i] = new;
            true
        }
        // The parent is not a mapping (e.g. `source: kafka`): replace the parent instead.
        (Some(_), _) => reference_value(parent).is_some_and(|v| set_value(root, parent, v)),
        _ => false,
    }
}

fn remove_value(root: &mut Value, path: &[Seg]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match (parent_mut(root, parent), last) {
        (Some(Value::Mapping(map)), Seg::Key(key)) => map.remove(key.as_str()).is_some(),
        (Some(Value::Sequence(items)), Seg::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_small_typos_only() {
        assert_eq!(suggest("groupp", &["brokers", "group"]), " (did you mean `group`?)");
        assert_eq!(suggest("compresion", &["compression"]), " (did you mean `compression`?)");
        assert_eq!(suggest("zzz", &["brokers", "group"]), "");
        assert_eq!(suggest("kafak", &["kafka", "rabbitmq"]), " (did you mean `kafka`?)", "a transposition is one edit");
    }

    #[test]
    fn reference_values_follow_enum_tags_and_indices() {
        let path = [
            Seg::Key("decode".into()),
            Seg::Key("json".into()),
            Seg::Key("schema".into()),
            Seg::Index(4),
            Seg::Key("type".into()),
        ];
        assert_eq!(reference_value(&path), Some(Value::String("string".into())));
        let local = [Seg::Key("sink".into()), Seg::Key("local".into()), Seg::Key("path".into())];
        assert_eq!(reference_value(&local), Some(Value::String("./landing/orders".into())));
    }
}
