//! Accumulates decoded rows into Arrow columns. Appending cannot fail: every value was checked
//! against the schema when the row was parsed.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListArray, NullBufferBuilder, RecordBatch, RecordBatchOptions, StringBuilder, StructArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};

use super::row::{ParsedRow, Slot};
use crate::schema::{arrow_schema, FieldSpec, FieldType, UTC};

/// Builds one `RecordBatch` at a time from [`ParsedRow`]s of one schema.
#[derive(Debug)]
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
    bytes: usize,
}

impl BatchBuilder {
    /// A builder for `schema`, whose Arrow schema is [`crate::schema::arrow_schema`].
    pub fn new(schema: &[FieldSpec]) -> BatchBuilder {
        BatchBuilder {
            schema: Arc::new(arrow_schema(schema)),
            columns: schema.iter().map(|f| Column::new(&f.field_type)).collect(),
            rows: 0,
            bytes: 0,
        }
    }

    /// The Arrow schema of the batches this builder produces.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends one row; `row` must come from a [`RowParser`](super::RowParser) of the same schema.
    pub fn append(&mut self, row: &ParsedRow) {
        debug_assert_eq!(row.top_len, self.columns.len(), "row parsed with another schema");
        for (column, slot) in self.columns.iter_mut().zip(&row.slots[..row.top_len]) {
            column.append(*slot, row);
        }
        self.rows += 1;
        self.bytes += row.approx_bytes();
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Rough Arrow memory held (see [`ParsedRow::approx_bytes`]); O(1), for roll and memory policy.
    pub fn estimated_bytes(&self) -> usize {
        self.bytes
    }

    /// Returns the rows appended so far as one batch and starts a new, empty one.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .expect("columns are built from the same FieldSpecs as the schema, one value per row")
    }
}

/// One Arrow column under construction, mirroring the schema type.
#[derive(Debug)]
enum Column {
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    String(StringBuilder),
    List { field: FieldRef, offsets: Vec<i32>, nulls: NullBufferBuilder, items: Box<Column> },
    Struct { fields: Fields, children: Vec<Column>, nulls: NullBufferBuilder },
}

impl Column {
    fn new(t: &FieldType) -> Column {
        match t {
            FieldType::String => Column::String(StringBuilder::new()),
            FieldType::Bool => Column::Bool(BooleanBuilder::new()),
            FieldType::Int32 => Column::Int32(Int32Builder::new()),
            FieldType::Int64 => Column::Int64(Int64Builder::new()),
            FieldType::Float32 => Column::Float32(Float32Builder::new()),
            FieldType::Float64 => Column::Float64(Float64Builder::new()),
            FieldType::Decimal { precision, scale } => Column::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(*precision, *scale)
                    .expect("schema parser only admits precision 1..=38 and scale <= precision"),
            ),
            FieldType::Date => Column::Date(Date32Builder::new()),
            FieldType::Timestamp => Column::Timestamp(TimestampMicrosecondBuilder::new().with_timezone(UTC)),
            FieldType::List(item) => {
                let DataType::List(field) = t.to_arrow() else {
                    unreachable!("FieldType::List maps to DataType::List")
                };
                Column::List {
                    field,
                    offsets: vec![0],
                    nulls: NullBufferBuilder::new(0),
                    items: Box::new(Column::new(item)),
                }
            }
            FieldType::Struct(children) => {
                let DataType::Struct(fields) = t.to_arrow() else {
                    unreachable!("FieldType::Struct maps to DataType::Struct")
                };
                Column::Struct {
                    fields,
                    children: children.iter().map(|(_, t)| Column::new(t)).collect(),
                    nulls: NullBufferBuilder::new(0),
                }
            }
        }
    }

    fn append(&mut self, slot: Slot, row: &ParsedRow) {
        match (self, slot) {
            (column, Slot::Null | Slot::Missing) => column.append_null(),
            (Column::Bool(b), Slot::Bool(v)) => b.append_value(v),
            (Column::Int32(b), Slot::Int(v)) => b.append_value(v as i32),
            (Column::Int64(b), Slot::Int(v)) => b.append_value(v),
            (Column::Float32(b), Slot::Float32(v)) => b.append_value(v),
            (Column::Float64(b), Slot::Float64(v)) => b.append_value(v),
            (Column::Decimal(b), Slot::Decimal(v, _)) => b.append_value(v),
            (Column::Date(b), Slot::Date(v)) => b.append_value(v),
            (Column::Timestamp(b), Slot::Timestamp(v)) => b.append_value(v),
            (Column::String(b), Slot::Str { start, len }) => b.append_value(row.str_at(start, len)),
            (Column::List { offsets, nulls, items, .. }, Slot::List { start, len }) => {
                let start = start as usize;
                for item in &row.slots[start..start + len as usize] {
                    items.append(*item, row);
                }
                let last = *offsets.last().expect("offsets start with 0");
                offsets.push(last + len as i32);
                nulls.append_non_null();
            }
            (Column::Struct { children, nulls, .. }, Slot::Struct { start }) => {
                let start = start as usize;
                for (i, child) in children.iter_mut().enumerate() {
                    child.append(row.slots[start + i], row);
                }
                nulls.append_non_null();
            }
            (column, slot) => unreachable!("parser produced {slot:?} for column {column:?}"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Decimal(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Timestamp(b) => b.append_null(),
            Column::String(b) => b.append_null(),
            Column::List { offsets, nulls, .. } => {
                let last = *offsets.last().expect("offsets start with 0");
                offsets.push(last);
                nulls.append_null();
            }
            Column::Struct { children, nulls, .. } => {
                children.iter_mut().for_each(Column::append_null);
                nulls.append_null();
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float32(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Decimal(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
            Column::String(b) => Arc::new(b.finish()),
            Column::List { field, offsets, nulls, items } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    field.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    items.finish(),
                    nulls.finish(),
                ))
            }
            Column::Struct { fields, children, nulls } => {
                let arrays = children.iter_mut().map(Column::finish).collect();
                Arc::new(StructArray::new(fields.clone(), arrays, nulls.finish()))
            }
        }
    }
}
