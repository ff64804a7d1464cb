//! The declared schema compiled for decoding: each struct level knows its field names as bytes
//! and finds a JSON key's slot without allocating.

use std::collections::HashMap;
use std::fmt;

use crate::schema::{FieldSpec, FieldType};

/// Structs with more fields than this get a hash index for keys the in-order guess misses.
const LINEAR_LOOKUP_MAX: usize = 12;

/// What to decode a JSON value into.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    String,
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal { precision: u8, scale: i8 },
    Date,
    Timestamp,
    List(Box<Kind>),
    Struct(StructPlan),
}

impl Kind {
    pub(crate) fn from_type(t: &FieldType) -> Kind {
        match t {
            FieldType::String => Kind::String,
            FieldType::Bool => Kind::Bool,
            FieldType::Int32 => Kind::Int32,
            FieldType::Int64 => Kind::Int64,
            FieldType::Float32 => Kind::Float32,
            FieldType::Float64 => Kind::Float64,
            FieldType::Decimal { precision, scale } => Kind::Decimal { precision: *precision, scale: *scale },
            FieldType::Date => Kind::Date,
            FieldType::Timestamp => Kind::Timestamp,
            FieldType::List(item) => Kind::List(Box::new(Kind::from_type(item))),
            FieldType::Struct(fields) => {
                Kind::Struct(StructPlan::new(fields.iter().map(|(name, t)| (name.as_str(), Kind::from_type(t), false))))
            }
        }
    }
}

/// Type names as the schema language spells them, for error messages.
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::String => f.write_str("string"),
            Kind::Bool => f.write_str("bool"),
            Kind::Int32 => f.write_str("int32"),
            Kind::Int64 => f.write_str("int64"),
            Kind::Float32 => f.write_str("float32"),
            Kind::Float64 => f.write_str("float64"),
            Kind::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Kind::Date => f.write_str("date"),
            Kind::Timestamp => f.write_str("timestamp"),
            Kind::List(item) => write!(f, "list<{item}>"),
            Kind::Struct(_) => f.write_str("struct (JSON object)"),
        }
    }
}

/// One object level: the top-level message or a `struct<…>` value.
#[derive(Debug, Clone)]
pub(crate) struct StructPlan {
    pub(crate) names: Vec<Box<str>>,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) required: Vec<bool>,
    /// Only for wide structs; narrow ones are scanned linearly.
    index: Option<HashMap<Box<[u8]>, usize>>,
}

impl StructPlan {
    pub(crate) fn top_level(schema: &[FieldSpec]) -> StructPlan {
        StructPlan::new(schema.iter().map(|f| (f.name.as_str(), Kind::from_type(&f.field_type), f.required)))
    }

    fn new<'a>(fields: impl Iterator<Item = (&'a str, Kind, bool)>) -> StructPlan {
        let mut plan = StructPlan { names: Vec::new(), kinds: Vec::new(), required: Vec::new(), index: None };
        for (name, kind, required) in fields {
            plan.names.push(name.into());
            plan.kinds.push(kind);
            plan.required.push(required);
        }
        if plan.names.len() > LINEAR_LOOKUP_MAX {
            let mut index = HashMap::with_capacity(plan.names.len());
            for (i, name) in plan.names.iter().enumerate() {
                // First declaration wins if a schema repeats a name (config validation rejects that).
                index.entry(Box::from(name.as_bytes())).or_insert(i);
            }
            plan.index = Some(index);
        }
        plan
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Slot of `key`. Producers usually emit keys in schema order, so `hint` (the slot after
    /// the previous key) is tried first and almost always hits.
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8], hint: usize) -> Option<usize> {
        if let Some(name) = self.names.get(hint) {
            if name.as_bytes() == key {
                return Some(hint);
            }
        }
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.names.iter().position(|n| n.as_bytes() == key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(n: usize) -> StructPlan {
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        StructPlan::new(names.iter().map(|n| (n.as_str(), Kind::Int64, false)))
    }

    #[test]
    fn lookup_finds_keys_in_and_out_of_order_for_narrow_and_wide_structs() {
        for n in [3, 40] {
            let plan = plan_of(n);
            assert_eq!(plan.lookup(b"f1", 1), Some(1));
            assert_eq!(plan.lookup(b"f2", 0), Some(2));
            assert_eq!(plan.lookup(b"f0", n), Some(0));
            assert_eq!(plan.lookup(b"nope", 0), None);
        }
    }
}
