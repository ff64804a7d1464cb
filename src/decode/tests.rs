//! End-to-end tests of the decode path: JSON bytes → RowParser → BatchBuilder → RecordBatch.

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array,
    ListArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};

use super::*;
use crate::schema::{FieldSpec, FieldType};

/// 2026-11-25T17:03:12Z in microseconds.
const TS: i64 = 1_795_626_192_000_000;

fn field(name: &str, t: &str, required: bool) -> FieldSpec {
    FieldSpec { name: name.into(), field_type: FieldType::parse(t).unwrap(), required }
}

fn event_schema() -> Vec<FieldSpec> {
    vec![
        field("id", "string", true),
        field("user_id", "int64", false),
        field("amount", "decimal(12,2)", false),
        field("ts", "timestamp", true),
        field("tags", "list<string>", false),
        field("geo", "struct<lat: float64, lon: float64>", false),
        field("country", "string", false),
        field("ok", "bool", false),
        field("score", "float32", false),
        field("n", "int32", false),
        field("day", "date", false),
    ]
}

const EVENT: &str = r#"{"id":"evt-000001","user_id":123456,"amount":"12.34","ts":"2026-11-25T17:03:12.345Z","tags":["a","b"],"geo":{"lat":52.1,"lon":4.3},"country":"NL","ok":true,"score":0.42,"n":7,"day":"2026-11-25"}"#;

fn decode_err(schema: &[FieldSpec], strict: bool, json: &[u8]) -> DecodeError {
    RowParser::new(schema, strict).parse(json).map(|_| ()).unwrap_err()
}

#[test]
fn decodes_every_type_of_the_reference_event() {
    let schema = event_schema();
    let mut parser = RowParser::new(&schema, false);
    let mut builder = BatchBuilder::new(&schema);
    builder.append(parser.parse(EVENT.as_bytes()).unwrap());
    let batch = builder.finish();
    assert_eq!(batch.num_rows(), 1);
    let col = |name: &str| batch.column_by_name(name).unwrap().clone();
    assert_eq!(col("id").as_any().downcast_ref::<StringArray>().unwrap().value(0), "evt-000001");
    assert_eq!(col("user_id").as_any().downcast_ref::<Int64Array>().unwrap().value(0), 123_456);
    let amount = col("amount");
    let amount = amount.as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!((amount.value(0), amount.precision(), amount.scale()), (1234, 12, 2));
    let ts = col("ts");
    let ts = ts.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
    assert_eq!(ts.value(0), TS + 345_000);
    assert_eq!(ts.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())));
    let tags = col("tags");
    let tags = tags.as_any().downcast_ref::<ListArray>().unwrap();
    let items = tags.value(0);
    let items = items.as_string::<i32>();
    assert_eq!((items.value(0), items.value(1), items.len()), ("a", "b", 2));
    let geo = col("geo");
    let geo = geo.as_any().downcast_ref::<StructArray>().unwrap();
    let lat = geo.column_by_name("lat").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    let lon = geo.column_by_name("lon").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    assert_eq!((lat, lon), (52.1, 4.3));
    assert_eq!(col("country").as_any().downcast_ref::<StringArray>().unwrap().value(0), "NL");
    assert!(col("ok").as_any().downcast_ref::<BooleanArray>().unwrap().value(0));
    assert_eq!(col("score").as_any().downcast_ref::<Float32Array>().unwrap().value(0), 0.42f32);
    assert_eq!(col("n").as_any().downcast_ref::<Int32Array>().unwrap().value(0), 7);
    assert_eq!(col("day").as_any().downcast_ref::<Date32Array>().unwrap().value(0), 20_782);
    assert_eq!(batch.schema().as_ref(), &crate::schema::arrow_schema(&schema));
}

#[test]
fn partition_values_of_a_parsed_row() {
    let schema = event_schema();
    let mut parser = RowParser::new(&schema, false);
    let row = parser.parse(EVENT.as_bytes()).unwrap();
    assert_eq!(row.len(), 11);
    assert_eq!(row.value(0), Some(PartitionValue::Str("evt-000001")));
    assert_eq!(row.value(1), Some(PartitionValue::Int(123_456)));
    assert_eq!(row.value(2), Some(PartitionValue::Decimal(1234, 2)));
    assert_eq!(row.value(3), Some(PartitionValue::TimestampMicros(TS + 345_000)));
    assert_eq!(row.value(4), None, "lists are not partition values");
    assert_eq!(row.value(5), None, "structs are not partition values");
    assert_eq!(row.value_at(&[5, 1]), Some(PartitionValue::Float(4.3)));
    assert_eq!(row.value(7), Some(PartitionValue::Bool(true)));
    assert_eq!(row.value(10), Some(PartitionValue::Date(20_782)));
    assert_eq!(row.value(11), None);
}

#[test]
fn decimals_are_exact_and_signed() {
    let schema = vec![field("d", "decimal(38,18)", false), field("m", "decimal(10,2)", false)];
    let mut parser = RowParser::new(&schema, false);
    let mut builder = BatchBuilder::new(&schema);
    for json in [
        r#"{"d":"12.345678901234567890","m":-12.34}"#,
        r#"{"d":-0.000000000000000001,"m":"-0.05"}"#,
        r#"{"d":"99999999999999999999.999999999999999999","m":1E2}"#,
    ] {
        builder.append(parser.parse(json.as_bytes()).unwrap());
    }
    let batch = builder.finish();
    let d = batch.column(0).as_any().downcast_ref::<Decimal128Array>().unwrap();
    let m = batch.column(1).as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!(d.value(0), 12_345_678_901_234_567_890);
    assert_eq!(d.value_as_string(0), "12.345678901234567890");
    assert_eq!(d.value(1), -1);
    assert_eq!(d.value(2), 99_999_999_999_999_999_999_999_999_999_999_999_999);
    assert_eq!((m.value(0), m.value(1), m.value(2)), (-1234, -5, 10_000));
}

#[test]
fn timestamps_accept_offsets_and_epoch_millis() {
    let schema = vec![field("ts", "timestamp", false)];
    let mut parser = RowParser::new(&schema, false);
    let mut builder = BatchBuilder::new(&schema);
    for json in [
        r#"{"ts":"2026-11-25T18:03:12+01:00"}"#,
        r#"{"ts":"2026-11-25T17:03:12Z"}"#,
        r#"{"ts":1795626192345}"#,
        r#"{"ts":-1}"#,
        r#"{"ts":null}"#,
        r#"{}"#,
    ] {
        builder.append(parser.parse(json.as_bytes()).unwrap());
    }
    let batch = builder.finish();
    let ts = batch.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
    assert_eq!(ts.value(0), TS);
    assert_eq!(ts.value(1), TS);
    assert_eq!(ts.value(2), TS + 345_000);
    assert_eq!(ts.value(3), -1000);
    assert_eq!((ts.is_null(4), ts.is_null(5), ts.null_count()), (true, true, 2));
}

#[test]
fn integers_accept_integer_strings_but_not_fractions() {
    let schema = vec![field("a", "int64", false), field("b", "int32", false)];
    let mut parser = RowParser::new(&schema, false);
    let row = parser.parse(br#"{"a":"-9223372036854775808","b":"2147483647"}"#).unwrap();
    assert_eq!(row.value(0), Some(PartitionValue::Int(i64::MIN)));
    assert_eq!(row.value(1), Some(PartitionValue::Int(i32::MAX as i64)));
    let e = decode_err(&schema, false, br#"{"a":1.5}"#);
    assert_eq!(e.reason(), "wrong_type");
    assert_eq!(e.to_string(), "field `a`: expected int64, found 1.5");
    assert_eq!(decode_err(&schema, false, br#"{"a":1e3}"#).reason(), "wrong_type");
    assert_eq!(decode_err(&schema, false, br#"{"a":" 1"}"#).reason(), "wrong_type");
}

#[test]
fn every_error_class_has_its_reason_code() {
    let schema = event_schema();
    let ok_head = r#"{"id":"x","ts":"2026-11-25T17:03:12Z""#;
    let with = |rest: &str| format!("{ok_head},{rest}}}");
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{\"id\":\"caf\xc3\x28\"}".to_vec(), "invalid_utf8", ""),
        (br#"{"id":"x","#.to_vec(), "invalid_json", ""),
        (br#"{"id":"x"} trailing"#.to_vec(), "invalid_json", ""),
        (b"".to_vec(), "invalid_json", ""),
        (br#"{"id":"a\qb"}"#.to_vec(), "invalid_json", ""),
        (b"{\"id\":\"a\nb\"}".to_vec(), "invalid_json", ""),
        (br#"{"id":"\ud800"}"#.to_vec(), "invalid_json", ""),
        (br#"{"id":01}"#.to_vec(), "invalid_json", ""),
        // Truncated after a mistyped value: the syntax error wins.
        (br#"{"id":5,"ts":"2026-11"#.to_vec(), "invalid_json", ""),
        (br#"[1,2]"#.to_vec(), "not_an_object", ""),
        (br#""just a string""#.to_vec(), "not_an_object", ""),
        (with(r#""user_id":"abc""#).into_bytes(), "wrong_type", "user_id"),
        (with(r#""country":5"#).into_bytes(), "wrong_type", "country"),
        (with(r#""geo":{"lat":"north"}"#).into_bytes(), "wrong_type", "geo.lat"),
        (with(r#""tags":["a",{"b":1}]"#).into_bytes(), "wrong_type", "tags[1]"),
        (with(r#""n":3000000000"#).into_bytes(), "out_of_range", "n"),
        (with(r#""user_id":9223372036854775808"#).into_bytes(), "out_of_range", "user_id"),
        (with(r#""geo":{"lat":1e400}"#).into_bytes(), "out_of_range", "geo.lat"),
        (with(r#""amount":"12345678901.00""#).into_bytes(), "out_of_range", "amount"),
        (br#"{"ts":"2026-11-25T17:03:12Z"}"#.to_vec(), "missing_required", "id"),
        (br#"{"id":null,"ts":"2026-11-25T17:03:12Z"}"#.to_vec(), "null_required", "id"),
        (br#"{"id":"x","ts":"yesterday"}"#.to_vec(), "bad_timestamp", "ts"),
        (br#"{"id":"x","ts":"2026-11-25T17:03:12"}"#.to_vec(), "bad_timestamp", "ts"),
        (br#"{"id":"x","ts":1.5}"#.to_vec(), "bad_timestamp", "ts"),
        (br#"{"id":"x","ts":"10000-01-01T00:00:00Z"}"#.to_vec(), "bad_timestamp", "ts"),
        (br#"{"id":"x","ts":253402300800000}"#.to_vec(), "out_of_range", "ts"),
        (with(r#""day":"2026-13-01""#).into_bytes(), "bad_date", "day"),
        (with(r#""amount":"12.345""#).into_bytes(), "bad_decimal", "amount"),
        (with(r#""amount":"12,34""#).into_bytes(), "bad_decimal", "amount"),
        (with(r#""id":"y""#).into_bytes(), "duplicate_field", "id"),
        (with(r#""extra":[[[[[[[[[[1]]]]]]]]]]"#).into_bytes(), "ok", ""),
    ];
    for (json, reason, path) in cases {
        let result = RowParser::new(&schema, false).parse(&json).map(|_| ());
        let shown = String::from_utf8_lossy(&json).into_owned();
        match result {
            Ok(()) => assert_eq!(reason, "ok", "{shown} decoded"),
            Err(e) => {
                assert_eq!((e.reason(), e.path()), (reason, path), "{shown}: {e}");
            }
        }
    }
}

#[test]
fn limits_and_strict_mode() {
    let schema = event_schema();
    let deep = format!(r#"{{"id":"x","ts":0,"extra":{}1{}}}"#, "[".repeat(70), "]".repeat(70));
    let e = decode_err(&schema, false, deep.as_bytes());
    assert_eq!(e.reason(), "too_deep");
    let mut small = RowParser::new(&schema, false).with_limits(16, 64);
    let e = small.parse(EVENT.as_bytes()).map(|_| ()).unwrap_err();
    assert_eq!(e.reason(), "too_large");
    assert!(e.to_string().starts_with(&format!("payload is {} bytes, over the 16-byte limit", EVENT.len())));

    let unknown = br#"{"id":"x","ts":0,"extra":{"nested":[1,"two",null]},"geo":{"lat":1,"alt":2}}"#;
    let mut lenient = RowParser::new(&schema, false);
    assert_eq!(lenient.parse(unknown).unwrap().value_at(&[5, 0]), Some(PartitionValue::Float(1.0)));
    let e = decode_err(&schema, true, unknown);
    assert_eq!((e.reason(), e.path()), ("unknown_field", "extra"));
    let e = decode_err(&schema, true, br#"{"id":"x","ts":0,"geo":{"lat":1,"alt":2}}"#);
    assert_eq!((e.reason(), e.path()), ("unknown_field", "geo.alt"));
    // Skipped values are still validated.
    let e = decode_err(&schema, false, br#"{"id":"x","ts":0,"extra":[1,}"#);
    assert_eq!(e.reason(), "invalid_json");
}

#[test]
fn error_messages_name_the_field_and_the_value() {
    let schema = event_schema();
    let long = "9".repeat(100);
    let json = format!(r#"{{"id":"x","ts":0,"country":{long}}}"#);
    let e = decode_err(&schema, false, json.as_bytes());
    assert_eq!(e.to_string(), format!("field `country`: expected string, found {}…", "9".repeat(64)));
    let e = decode_err(&schema, false, br#"{"id":"x","ts":"2026-11-25T17:03:12"}"#);
    assert_eq!(
        e.to_string(),
        "field `ts`: \"2026-11-25T17:03:12\" is not a timestamp (missing offset (`Z` or ±hh:mm)); expected RFC 3339 with an offset, e.g. \"2026-11-25T17:03:12.345Z\", or integer epoch milliseconds"
    );
    let e = decode_err(&schema, false, b"{\"id\":\"x\xff\"}");
    assert_eq!(e.to_string(), "payload is not valid UTF-8 (first bad byte at offset 8); check the producer's encoding");
    let e = decode_err(&schema, false, br#"{"id":"x" "ts":0}"#);
    assert_eq!(e.to_string(), "invalid JSON at byte 10: expected `,` or `}` after a value");
}

#[test]
fn a_bad_message_in_the_middle_leaves_its_neighbours_intact() {
    let schema = event_schema();
    let mut parser = RowParser::new(&schema, false);
    let mut builder = BatchBuilder::new(&schema);
    let payloads: [&[u8]; 5] = [
        br#"{"id":"a","ts":0,"tags":["x","y"],"geo":{"lat":1,"lon":2}}"#,
        // Fails deep inside, after its list and struct were partly decoded.
        br#"{"id":"b","ts":0,"tags":["p","q","r"],"geo":{"lat":3,"lon":"oops"}}"#,
        b"{\"id\":\"\xff\"}",
        br#"{"id":"c","ts":1000,"tags":["z"],"geo":null}"#,
        br#"{"id":"d","ts":2000}"#,
    ];
    let mut quarantined = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        match parser.parse(p) {
            Ok(row) => builder.append(row),
            Err(e) => quarantined.push((i, e.reason())),
        }
    }
    assert_eq!(quarantined, vec![(1, "wrong_type"), (2, "invalid_utf8")]);
    let batch = builder.finish();
    assert_eq!(batch.num_rows(), 3);
    let ids = batch.column(0).as_string::<i32>();
    assert_eq!((ids.value(0), ids.value(1), ids.value(2)), ("a", "c", "d"));
    let tags = batch.column(4).as_list::<i32>();
    assert_eq!(tags.value_offsets(), &[0, 2, 3, 3]);
    assert!(tags.is_null(2));
    let flat = tags.values().as_string::<i32>();
    assert_eq!((flat.value(0), flat.value(1), flat.value(2)), ("x", "y", "z"));
    let geo = batch.column(5).as_struct();
    assert_eq!((geo.is_null(0), geo.is_null(1), geo.is_null(2)), (false, true, true));
    let lat = geo.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!((lat.value(0), lat.len()), (1.0, 3));
    // The builder is reusable after finish.
    builder.append(parser.parse(payloads[4]).unwrap());
    assert_eq!((builder.len(), builder.finish().num_rows()), (1, 1));
    assert!(builder.is_empty());
    assert_eq!(builder.estimated_bytes(), 0);
}

#[test]
fn nested_lists_and_structs_with_nulls() {
    let schema = vec![field("points", "list<struct<name: string, xs: list<int64>>>", false)];
    let mut parser = RowParser::new(&schema, false);
    let mut builder = BatchBuilder::new(&schema);
    for json in [
        r#"{"points":[{"name":"p","xs":[1,2]},null,{"xs":[]},{"name":"q","xs":[null,3]}]}"#,
        r#"{"points":[]}"#,
        r#"{"points":null}"#,
    ] {
        builder.append(parser.parse(json.as_bytes()).unwrap());
    }
    let batch = builder.finish();
    let points = batch.column(0).as_list::<i32>();
    assert_eq!(points.value_offsets(), &[0, 4, 4, 4]);
    assert!(points.is_null(2));
    let items = points.values().as_struct();
    assert_eq!(items.len(), 4);
    assert!(items.is_null(1));
    let names = items.column(0).as_string::<i32>();
    assert_eq!((names.value(0), names.is_null(2), names.value(3)), ("p", true, "q"));
    let xs = items.column(1).as_list::<i32>();
    assert_eq!(xs.value_offsets(), &[0, 2, 2, 2, 4]);
    let ints = xs.values().as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((ints.value(0), ints.value(1), ints.is_null(2), ints.value(3)), (1, 2, true, 3));
}

#[test]
fn strings_are_unescaped_keys_too() {
    let schema = vec![field("s", "string", false), field("k\u{e9}y", "string", false)];
    let mut parser = RowParser::new(&schema, true);
    let row = parser.parse(r#"{"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00 \u2028","k\u00e9y":"plain ü"}"#.as_bytes()).unwrap();
    assert_eq!(row.value(0), Some(PartitionValue::Str("a\"b\\c/d\né😀 \u{2028}")));
    assert_eq!(row.value(1), Some(PartitionValue::Str("plain ü")));
}

#[test]
fn whitespace_and_key_order_do_not_matter() {
    let schema = event_schema();
    let mut parser = RowParser::new(&schema, false);
    let row = parser.parse(b" \n{ \"n\" : 7 ,\t\"ts\":\"2026-11-25T17:03:12Z\" , \"id\" : \"x\" }\r\n").unwrap();
    assert_eq!(
        (row.value(0), row.value(9), row.value(1)),
        (Some(PartitionValue::Str("x")), Some(PartitionValue::Int(7)), None)
    );
}

#[test]
fn mangled_payloads_never_panic_and_never_poison_the_parser() {
    let schema = event_schema();
    let mut parser = RowParser::new(&schema, false);
    let mut builder = BatchBuilder::new(&schema);
    let original = EVENT.as_bytes();
    let mut accepted = 0;
    let mut payload = Vec::new();
    for i in 0..original.len() {
        // Every truncation, and every position overwritten with bytes that matter to JSON.
        let truncated = &original[..i];
        assert!(parser.parse(truncated).is_err(), "truncated at {i} accepted");
        for b in [b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'-', b'e', b'.', b'n', b' ', 0x01, 0xff] {
            payload.clear();
            payload.extend_from_slice(original);
            payload[i] = b;
            if let Ok(row) = parser.parse(&payload) {
                builder.append(row);
                accepted += 1;
            }
        }
    }
    // The parser still decodes a good message after thousands of bad ones.
    builder.append(parser.parse(original).unwrap());
    let batch = builder.finish();
    assert_eq!(batch.num_rows(), accepted + 1);
    assert!(accepted > 0, "some overwrites (e.g. inside string values) remain valid");
}
