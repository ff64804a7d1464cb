//! One decoded message, held in buffers that are reused from message to message.

/// One decoded value. Nested values point into the row's slot arena, strings into its text
/// buffer, so a row is a few flat `Vec`s that keep their capacity between messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    /// Key absent from the object; treated as null once the object is complete.
    Missing,
    Null,
    Bool(bool),
    /// int32 and int64 (range already checked).
    Int(i64),
    Float32(f32),
    Float64(f64),
    /// Unscaled value; the scale travels along for partition rendering.
    Decimal(i128, i8),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Byte range in [`ParsedRow::text`].
    Str {
        start: u32,
        len: u32,
    },
    /// `len` item slots starting at `start` in the arena.
    List {
        start: u32,
        len: u32,
    },
    /// The struct's field slots (as many as the struct type declares) start at `start`.
    Struct {
        start: u32,
    },
}

/// A decoded message, as [`RowParser::parse`](super::RowParser::parse) leaves it. It is
/// overwritten by the next `parse`, so take what you need (append it to a batch, render its
/// partition) before parsing again.
#[derive(Debug, Default)]
pub struct ParsedRow {
    /// Top-level fields occupy slots `0..top_len`, in schema order; nested values follow.
    pub(crate) slots: Vec<Slot>,
    pub(crate) top_len: usize,
    /// Every string value of the row, unescaped, back to back.
    pub(crate) text: String,
}

/// A scalar value of a top-level (or struct-nested) field, as partitioning sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PartitionValue<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    TimestampMicros(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Unscaled value and scale: `Decimal(1234, 2)` is 12.34.
    Decimal(i128, i8),
    Float(f64),
}

impl ParsedRow {
    pub(crate) fn reset(&mut self, top_len: usize) {
        self.slots.clear();
        self.slots.resize(top_len, Slot::Missing);
        self.top_len = top_len;
        self.text.clear();
    }

    /// Number of top-level fields (the schema's length).
    pub fn len(&self) -> usize {
        self.top_len
    }

    /// True for a schema without fields.
    pub fn is_empty(&self) -> bool {
        self.top_len == 0
    }

    /// The scalar value of top-level field `index` (schema order); `None` when it is null,
    /// missing, or a list/struct.
    pub fn value(&self, index: usize) -> Option<PartitionValue<'_>> {
        self.value_at(&[index])
    }

    /// The scalar value at a path of field indexes through nested structs: `[2, 0]` is the
    /// first field of the struct in top-level field 2. `None` when any step is null or missing,
    /// the path does not lead through structs, or the value is a list/struct.
    pub fn value_at(&self, path: &[usize]) -> Option<PartitionValue<'_>> {
        let (&first, rest) = path.split_first()?;
        if first >= self.top_len {
            return None;
        }
        let mut slot = self.slots[first];
        for &i in rest {
            match slot {
                Slot::Struct { start } => slot = *self.slots.get(start as usize + i)?,
                _ => return None,
            }
        }
        Some(match slot {
            Slot::Bool(b) => PartitionValue::Bool(b),
            Slot::Int(v) => PartitionValue::Int(v),
            Slot::Float32(v) => PartitionValue::Float(f64::from(v)),
            Slot::Float64(v) => PartitionValue::Float(v),
            Slot::Decimal(v, s) => PartitionValue::Decimal(v, s),
            Slot::Date(d) => PartitionValue::Date(d),
            Slot::Timestamp(t) => PartitionValue::TimestampMicros(t),
            Slot::Str { start, len } => PartitionValue::Str(self.str_at(start, len)),
            Slot::Missing | Slot::Null | Slot::List { .. } | Slot::Struct { .. } => return None,
        })
    }

    /// Rough Arrow memory this row adds to a batch: fixed-width values, string bytes and
    /// offsets. Meant for roll and memory policies, not accounting.
    pub fn approx_bytes(&self) -> usize {
        self.slots.len() * 9 + self.text.len()
    }

    #[inline]
    pub(crate) fn str_at(&self, start: u32, len: u32) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }
}
