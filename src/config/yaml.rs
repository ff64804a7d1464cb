//! The pipeline text as a small tree that remembers where every key and value sits, so each
//! problem can be reported as `file:line:column`. Built from `yaml-rust2`'s event parser
//! (already in the build through the `config` crate); serde only ever sees the
//! `serde_norway::Value` converted from this tree, so both agree on what the file says.

use std::collections::HashMap;

use serde_norway::value::{Tag, TaggedValue};
use serde_norway::{Mapping, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(mark: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos { line: mark.line(), column: mark.col() + 1 }
    }
}

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders `source.kafka.brokers[0]`; with `normalize`, indices become `[]` (the form used
/// to look up the config's shape and the reference values, which do not depend on the index).
pub fn path_string(path: &[Seg], normalize: bool) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(_) if normalize => out.push_str("[]"),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` scalars get YAML's type resolution (`42` is a number, `~` null),
    /// quoted and block scalars are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A problem found while building the tree (YAML syntax, duplicate or non-scalar keys).
#[derive(Debug, Clone, PartialEq)]
pub struct YamlProblem {
    pub pos: Pos,
    pub path: Vec<Seg>,
    pub message: String,
}

impl Node {
    /// The node at `path`, if the file has it.
    pub fn get(&self, path: &[Seg]) -> Option<&Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match (&self.kind, first) {
            (NodeKind::Map(entries), Seg::Key(key)) => entries.iter().find(|e| &e.key == key)?.value.get(rest),
            (NodeKind::Seq(items), Seg::Index(i)) => items.get(*i)?.get(rest),
            _ => None,
        }
    }

    /// Where to point at for a problem with `path`: the value when the file has it; for a
    /// missing key, the key of the closest enclosing section that exists (`kafka:` for a
    /// missing `source.kafka.group`).
    pub fn locate(&self, path: &[Seg]) -> Pos {
        if let Some(node) = self.get(path) {
            return node.pos;
        }
        let Some(len) = (0..path.len()).rev().find(|len| self.get(&path[..*len]).is_some()) else {
            return self.pos;
        };
        if let (Some((Seg::Key(key), parent)), true) = (path[..len].split_last(), len > 0) {
            if let Some(Node { kind: NodeKind::Map(entries), .. }) = self.get(parent) {
                if let Some(entry) = entries.iter().find(|e| &e.key == key) {
                    return entry.key_pos;
                }
            }
        }
        self.get(&path[..len]).map_or(self.pos, |n| n.pos)
    }

    /// Converts to the `Value` serde reads. At paths where `is_enum` says the config has an
    /// externally tagged enum, a one-key mapping `{kafka: {...}}` becomes the tagged value
    /// `!kafka {...}`, the form `serde_norway::Value` deserializes enums from.
    pub fn to_value(&self, path: &mut Vec<Seg>, is_enum: &dyn Fn(&[Seg]) -> bool) -> Value {
        match &self.kind {
            NodeKind::Scalar { text, plain: true } => resolve_plain(text),
            NodeKind::Scalar { text, plain: false } => Value::String(text.clone()),
            NodeKind::Seq(items) => Value::Sequence(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        path.push(Seg::Index(i));
                        let value = item.to_value(path, is_enum);
                        path.pop();
                        value
                    })
                    .collect(),
            ),
            NodeKind::Map(entries) => {
                let mut mapping = Mapping::new();
                for entry in entries {
                    path.push(Seg::Key(entry.key.clone()));
                    let value = entry.value.to_value(path, is_enum);
                    path.pop();
                    mapping.insert(Value::String(entry.key.clone()), value);
                }
                if entries.len() == 1 && is_enum(path) {
                    let (tag, value) = mapping.into_iter().next().expect("one entry");
                    let tag = tag.as_str().unwrap_or_default().to_string();
                    return Value::Tagged(Box::new(TaggedValue { tag: Tag::new(tag), value }));
                }
                Value::Mapping(mapping)
            }
        }
    }
}

/// YAML type resolution of a plain scalar, done by serde_norway itself so that `true`, `0x1f`,
/// `~`, `1e3` mean exactly what they would in `serde_norway::from_str`.
fn resolve_plain(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    match serde_norway::from_str::<Value>(text) {
        Ok(value @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => value,
        _ => Value::String(text.to_string()),
    }
}

/// Parses one YAML document. A syntax error stops everything (nothing after it can be
/// trusted) and is returned as `Err`; duplicate and non-scalar keys are collected as problems
/// and the first occurrence wins.
pub fn parse(text: &str) -> Result<(Node, Vec<YamlProblem>), YamlProblem> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| YamlProblem {
        pos: Pos::from(*e.marker()),
        path: Vec::new(),
        message: format!("YAML syntax error: {}", e.info()),
    })?;
    if builder.documents.len() > 1 {
        return Err(YamlProblem {
            pos: builder.documents[1].pos,
            path: Vec::new(),
            message: "a pipeline file holds exactly one YAML document; remove the `---` separator or split the file"
                .into(),
        });
    }
    let root = builder.documents.pop().unwrap_or(Node {
        pos: Pos { line: 1, column: 1 },
        kind: NodeKind::Scalar { text: String::new(), plain: true },
    });
    Ok((root, builder.problems))
}

enum Frame {
    Seq { pos: Pos, anchor: usize, items: Vec<Node> },
    Map { pos: Pos, anchor: usize, entries: Vec<Entry>, pending_key: Option<(Node, Pos)> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    documents: Vec<Node>,
    anchors: HashMap<usize, Node>,
    problems: Vec<YamlProblem>,
}

impl Builder {
    /// The key path of the node being built, for problem reports.
    fn current_path(&self) -> Vec<Seg> {
        self.stack
            .iter()
            .filter_map(|frame| match frame {
                Frame::Seq { items, .. } => Some(Seg::Index(items.len())),
                Frame::Map { pending_key: Some((Node { kind: NodeKind::Scalar { text, .. }, .. }, _)), .. } => {
                    Some(Seg::Key(text.clone()))
                }
                Frame::Map { .. } => None,
            })
            .collect()
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { pending_key: pending @ None, .. }) => {
                let pos = node.pos;
                *pending = Some((node, pos));
            }
            Some(Frame::Map { .. }) => {
                let Some(Frame::Map { entries, pending_key, .. }) = self.stack.last_mut() else { unreachable!() };
                let (key_node, key_pos) = pending_key.take().expect("key before value");
                let key = match key_node.kind {
                    NodeKind::Scalar { text, .. } => text,
                    _ => {
                        let mut path = self.current_path();
                        path.push(Seg::Key("?".into()));
                        self.problems.push(YamlProblem {
                            pos: key_pos,
                            path,
                            message: "mapping keys must be plain strings".into(),
                        });
                        return;
                    }
                };
                if entries.iter().any(|e| e.key == key) {
                    let mut path = self.current_path();
                    path.push(Seg::Key(key.clone()));
                    self.problems.push(YamlProblem {
                        pos: key_pos,
                        path,
                        message: format!("duplicate key `{key}`; the first one is used, remove the other"),
                    });
                    return;
                }
                let Some(Frame::Map { entries, .. }) = self.stack.last_mut() else { unreachable!() };
                entries.push(Entry { key, key_pos, value: node });
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.finish(Node { pos, kind: NodeKind::Scalar { text, plain } }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { pos, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map { pos, anchor, entries: Vec::new(), pending_key: None })
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => {
                    self.finish(Node { pos, kind: NodeKind::Seq(items) }, anchor)
                }
                Some(Frame::Map { pos, anchor, entries, .. }) => {
                    // yaml-rust2 marks a block mapping at its first `:`; its first key is
                    // where a reader looks.
                    let pos = entries.first().map_or(pos, |e| e.key_pos.min(pos));
                    self.finish(Node { pos, kind: NodeKind::Map(entries) }, anchor)
                }
                None => {}
            },
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .unwrap_or(Node { pos, kind: NodeKind::Scalar { text: String::new(), plain: true } });
                self.finish(Node { pos, ..node }, 0);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn positions_are_one_based_for_keys_and_values() {
        let (root, problems) = parse("name: clicks\nsource:\n  kafka:\n    brokers: [\"a:1\", b]\n").unwrap();
        assert!(problems.is_empty());
        let brokers = [key("source"), key("kafka"), key("brokers")];
        let Some(Node { kind: NodeKind::Map(entries), .. }) = root.get(&brokers[..2]) else { panic!() };
        assert_eq!(entries[0].key_pos, Pos { line: 4, column: 5 });
        assert_eq!(root.locate(&brokers), Pos { line: 4, column: 14 });
        let second = [key("source"), key("kafka"), key("brokers"), Seg::Index(1)];
        assert_eq!(root.locate(&second), Pos { line: 4, column: 22 });
        // A missing key is located at the key of the closest existing parent.
        let missing = [key("source"), key("kafka"), key("group")];
        assert_eq!(root.locate(&missing), Pos { line: 3, column: 3 });
        assert_eq!(root.locate(&[key("absent")]), Pos { line: 1, column: 1 });
    }

    #[test]
    fn duplicate_keys_are_problems_and_first_wins() {
        let (root, problems) = parse("a: 1\nb:\n  c: 2\n  c: 3\n").unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pos, Pos { line: 4, column: 3 });
        assert_eq!(path_string(&problems[0].path, false), "b.c");
        let c = root.get(&[key("b"), key("c")]).unwrap();
        assert_eq!(c.kind, NodeKind::Scalar { text: "2".into(), plain: true });
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax error"), "{}", err.message);
        assert!(err.pos.line >= 2, "{:?}", err.pos);
    }

    #[test]
    fn values_resolve_like_serde_norway_and_enums_become_tags() {
        let (root, _) =
            parse("n: 42\nq: \"42\"\nb: true\nnil:\nsink: {local: {path: x}}\nanchor: &a [1]\nalias: *a\n").unwrap();
        let value = root.to_value(&mut Vec::new(), &|p| path_string(p, true) == "sink");
        let expected: Value = serde_norway::from_str(
            "n: 42\nq: \"42\"\nb: true\nnil: null\nsink: !local {path: x}\nanchor: [1]\nalias: [1]\n",
        )
        .unwrap();
        assert_eq!(value, expected);
        assert_eq!(path_string(&[key("a"), Seg::Index(3), key("b")], false), "a[3].b");
        assert_eq!(path_string(&[key("a"), Seg::Index(3), key("b")], true), "a[].b");
    }
}
