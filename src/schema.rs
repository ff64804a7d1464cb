//! The declared schema of a pipeline: field names and Landfall's type language
//! (`string`, `int64`, `decimal(12,2)`, `list<string>`, `struct<lat: float64, lon: float64>` …)
//! and how each maps onto Arrow types that Spark reads correctly.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use serde::{Deserialize, Deserializer};

/// Timezone string Arrow stores on timestamp columns; Parquet then records
/// `TIMESTAMP(MICROS, isAdjustedToUTC=true)`, which Spark reads as `timestamp`.
pub const UTC: &str = "+00:00";

/// One column of the declared schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Column name, also the JSON key it is read from.
    pub name: String,
    /// Landfall type, e.g. `int64`, `decimal(12,2)`, `list<string>`.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// A required field that is missing or null sends the message to quarantine.
    #[serde(default)]
    pub required: bool,
}

/// Landfall's closed set of column types.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    String,
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal with `precision` digits, `scale` of them after the point (precision ≤ 38).
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Calendar date (`YYYY-MM-DD`), Arrow Date32.
    Date,
    /// Instant with microsecond precision, stored as UTC.
    Timestamp,
    List(Box<FieldType>),
    Struct(Vec<(String, FieldType)>),
}

impl FieldType {
    /// The Arrow type written to Parquet for this field.
    pub fn to_arrow(&self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Bool => DataType::Boolean,
            FieldType::Int32 => DataType::Int32,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float32 => DataType::Float32,
            FieldType::Float64 => DataType::Float64,
            FieldType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            FieldType::Date => DataType::Date32,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            FieldType::List(item) => DataType::List(Arc::new(Field::new("element", item.to_arrow(), true))),
            FieldType::Struct(fields) => DataType::Struct(Fields::from(
                fields.iter().map(|(name, t)| Field::new(name, t.to_arrow(), true)).collect::<Vec<_>>(),
            )),
        }
    }

    /// Parses the type language; the error says what was expected where.
    pub fn parse(text: &str) -> Result<FieldType, String> {
        let mut parser = TypeParser { text, pos: 0 };
        let parsed = parser.parse_type()?;
        parser.skip_ws();
        if parser.pos != text.len() {
            return Err(format!("unexpected `{}` after type in `{text}`", &text[parser.pos..]));
        }
        Ok(parsed)
    }
}

/// The Arrow schema of the table's data columns, in declaration order.
pub fn arrow_schema(fields: &[FieldSpec]) -> Schema {
    Schema::new(fields.iter().map(|f| Field::new(&f.name, f.field_type.to_arrow(), !f.required)).collect::<Vec<_>>())
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::String => f.write_str("string"),
            FieldType::Bool => f.write_str("bool"),
            FieldType::Int32 => f.write_str("int32"),
            FieldType::Int64 => f.write_str("int64"),
            FieldType::Float32 => f.write_str("float32"),
            FieldType::Float64 => f.write_str("float64"),
            FieldType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            FieldType::Date => f.write_str("date"),
            FieldType::Timestamp => f.write_str("timestamp"),
            FieldType::List(item) => write!(f, "list<{item}>"),
            FieldType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        FieldType::parse(&text).map_err(serde::de::Error::custom)
    }
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
}

const TYPE_NAMES: &str =
    "string, bool, int32, int64, float32, float64, decimal(p,s), date, timestamp, list<T>, struct<name: T, …>";

impl TypeParser<'_> {
    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn expect(&mut self, token: char) -> Result<(), String> {
        self.skip_ws();
        if self.text[self.pos..].starts_with(token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{token}` at position {} of `{}`", self.pos + 1, self.text))
        }
    }

    fn number(&mut self) -> Result<u32, String> {
        self.skip_ws();
        let start = self.pos;
        while self.text[self.pos..].starts_with(|c: char| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.text[start..self.pos]
            .parse()
            .map_err(|_| format!("expected a number at position {} of `{}`", start + 1, self.text))
    }

    fn parse_type(&mut self) -> Result<FieldType, String> {
        let name = self.ident().to_ascii_lowercase();
        Ok(match name.as_str() {
            "string" => FieldType::String,
            "bool" | "boolean" => FieldType::Bool,
            "int32" => FieldType::Int32,
            "int64" => FieldType::Int64,
            "float32" => FieldType::Float32,
            "float64" => FieldType::Float64,
            "date" => FieldType::Date,
            "timestamp" => FieldType::Timestamp,
            "decimal" => {
                self.expect('(')?;
                let precision = self.number()?;
                self.expect(',')?;
                let scale = self.number()?;
                self.expect(')')?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(format!("decimal({precision},{scale}) needs 1 ≤ precision ≤ 38 and scale ≤ precision"));
                }
                FieldType::Decimal { precision: precision as u8, scale: scale as i8 }
            }
            "list" => {
                self.expect('<')?;
                let item = self.parse_type()?;
                self.expect('>')?;
                FieldType::List(Box::new(item))
            }
            "struct" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                loop {
                    let field = self.ident().to_string();
                    if field.is_empty() {
                        return Err(format!("expected a field name in `{}`", self.text));
                    }
                    self.expect(':')?;
                    fields.push((field, self.parse_type()?));
                    self.skip_ws();
                    if self.text[self.pos..].starts_with(',') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect('>')?;
                FieldType::Struct(fields)
            }
            "" => return Err(format!("expected a type in `{}` (one of: {TYPE_NAMES})", self.text)),
            other => return Err(format!("unknown type `{other}` (expected one of: {TYPE_NAMES})")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_types_and_prints_them_back() {
        for text in [
            "decimal(12,2)",
            "list<string>",
            "struct<lat: float64, lon: float64>",
            "list<struct<a: int64, b: list<date>>>",
        ] {
            assert_eq!(FieldType::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_unknown_and_malformed_types() {
        assert!(FieldType::parse("int63").unwrap_err().contains("unknown type `int63`"));
        assert!(FieldType::parse("decimal(40,2)").is_err());
        assert!(FieldType::parse("list<string").unwrap_err().contains("expected `>`"));
        assert!(FieldType::parse("string x").is_err());
    }

    #[test]
    fn timestamps_map_to_utc_micros() {
        assert_eq!(FieldType::Timestamp.to_arrow(), DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())));
    }
}
