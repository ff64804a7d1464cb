//! The set of keys each config struct accepts, read out of the serde derives themselves, so the
//! "unknown key" check can report *every* typo at once (serde stops at the first) without a
//! hand-written key list that could drift from the structs.
//!
//! How: [`Probe`] is a `Deserializer` that answers `deserialize_struct(name, FIELDS, …)` by
//! recording `FIELDS` at the current path, then feeds the visitor each field in turn with a
//! nested probe; `deserialize_enum` records the variant names likewise. Leaf types (strings,
//! sizes, durations) may reject the probe's dummy value, which aborts that attempt, so the
//! probe runs again, skipping the fields already explored, until a run learns nothing new.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::Deserialize;

/// What the config expects at one key path (list indices written as `[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A struct with exactly these keys.
    Struct(&'static [&'static str]),
    /// An externally tagged enum: a one-key mapping naming one of these variants, or a bare
    /// string for unit variants.
    Enum(&'static [&'static str]),
    /// A free-form map (e.g. client options): any key is allowed.
    OpenMap,
}

/// Every path below the root of `T` that holds a struct, an enum or an open map.
pub fn shapes_of<'de, T: Deserialize<'de>>() -> BTreeMap<String, Shape> {
    let state = RefCell::new(State::default());
    loop {
        let before = state.borrow().explored.len();
        let done = T::deserialize(Probe { path: String::new(), state: &state }).is_ok();
        if done || state.borrow().explored.len() == before {
            break;
        }
    }
    state.into_inner().shapes
}

#[derive(Default)]
struct State {
    shapes: BTreeMap<String, Shape>,
    /// Paths whose value has been explored completely.
    explored: BTreeSet<String>,
}

#[derive(Debug)]
struct ProbeError(String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Explores the value at `path` with `seed`, marking it explored unless a deeper path made
/// progress (then a later run must come back for the rest of it).
fn explore<'de, S: DeserializeSeed<'de>>(
    state: &RefCell<State>,
    path: String,
    seed: S,
) -> Result<S::Value, ProbeError> {
    let before = state.borrow().explored.len();
    let result = seed.deserialize(Probe { path: path.clone(), state });
    if result.is_ok() || state.borrow().explored.len() == before {
        state.borrow_mut().explored.insert(path);
    }
    result
}

struct Probe<'a> {
    path: String,
    state: &'a RefCell<State>,
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_char('x')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(b"")
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_bytes(b"")
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let path = format!("{}[]", self.path);
        visitor.visit_seq(OneElement { path: Some(path), state: self.state })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.state.borrow_mut().shapes.insert(self.path.clone(), Shape::OpenMap);
        visitor.visit_map(Fields { path: self.path, fields: &[], next: 0, state: self.state })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.state.borrow_mut().shapes.insert(self.path.clone(), Shape::Struct(fields));
        visitor.visit_map(Fields { path: self.path, fields, next: 0, state: self.state })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.state.borrow_mut().shapes.insert(self.path.clone(), Shape::Enum(variants));
        let state = self.state.borrow();
        let variant =
            variants.iter().copied().find(|v| !state.explored.contains(&join(&self.path, v))).unwrap_or(variants[0]);
        drop(state);
        let result = visitor.visit_enum(Variant { path: join(&self.path, variant), variant, state: self.state });
        // Come back for the other variants: failing here keeps this path unexplored.
        let state = self.state.borrow();
        if variants.iter().any(|v| !state.explored.contains(&join(&self.path, v))) {
            return Err(ProbeError(format!("{} has unexplored variants", self.path)));
        }
        result
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_str("")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
}

/// Feeds a struct visitor the fields not explored yet.
struct Fields<'a> {
    path: String,
    fields: &'static [&'static str],
    next: usize,
    state: &'a RefCell<State>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeError> {
        while let Some(field) = self.fields.get(self.next) {
            if self.state.borrow().explored.contains(&join(&self.path, field)) {
                self.next += 1;
                continue;
            }
            return seed.deserialize(de::value::BorrowedStrDeserializer::new(field)).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, ProbeError> {
        let path = join(&self.path, self.fields[self.next]);
        self.next += 1;
        explore(self.state, path, seed)
    }
}

/// Feeds a sequence visitor one element (at `path[]`) until that element is explored.
struct OneElement<'a> {
    path: Option<String>,
    state: &'a RefCell<State>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ProbeError> {
        match self.path.take() {
            Some(path) if !self.state.borrow().explored.contains(&path) => explore(self.state, path, seed).map(Some),
            _ => Ok(None),
        }
    }
}

struct Variant<'a> {
    path: String,
    variant: &'static str,
    state: &'a RefCell<State>,
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = ProbeError;
    type Variant = Variant<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Variant<'a>), ProbeError> {
        let value = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.variant))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = ProbeError;

    fn unit_variant(self) -> Result<(), ProbeError> {
        self.state.borrow_mut().explored.insert(self.path);
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, ProbeError> {
        explore(self.state, self.path, seed)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, ProbeError> {
        Probe { path: self.path, state: self.state }.deserialize_tuple(len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Probe { path: self.path, state: self.state }.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Top {
        name: String,
        kind: Kind,
        items: Vec<Item>,
        extra: Option<HashMap<String, String>>,
        mode: Mode,
    }
    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Alpha(Inner),
        Beta(Inner2),
    }
    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Inner {
        a: u32,
        #[serde(rename = "type")]
        t: String,
    }
    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Inner2 {
        b: Vec<String>,
    }
    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Item {
        x: bool,
    }
    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Slow,
    }

    #[test]
    fn explores_every_struct_enum_variant_and_list_element() {
        let shapes = shapes_of::<Top>();
        let expected: BTreeMap<String, Shape> = [
            ("", Shape::Struct(&["name", "kind", "items", "extra", "mode"])),
            ("kind", Shape::Enum(&["alpha", "beta"])),
            ("kind.alpha", Shape::Struct(&["a", "type"])),
            ("kind.beta", Shape::Struct(&["b"])),
            ("items[]", Shape::Struct(&["x"])),
            ("extra", Shape::OpenMap),
            ("mode", Shape::Enum(&["fast", "slow"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(shapes, expected);
    }
}
