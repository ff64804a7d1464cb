use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::*;
use crate::decode::RowParser;
use crate::schema::{FieldSpec, FieldType};

fn field(name: &str, t: &str) -> FieldSpec {
    FieldSpec { name: name.into(), field_type: FieldType::parse(t).unwrap(), required: false }
}

fn schema() -> Vec<FieldSpec> {
    vec![
        field("ts", "timestamp"),
        field("country", "string"),
        field("n", "int64"),
        field("amount", "decimal(12,2)"),
        field("ok", "bool"),
        field("day", "date"),
        field("tags", "list<string>"),
        field("geo", "struct<city: string, lat: float64>"),
    ]
}

fn micros(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_micros()
}

/// Renders `template` for the row decoded from `json`.
fn render_with(template: &str, json: &str, ingest: i64, tz: Tz) -> Result<String, PartitionError> {
    let schema = schema();
    let template = PartitionTemplate::parse(template, &schema).unwrap();
    let mut parser = RowParser::new(&schema, false);
    let row = parser.parse(json.as_bytes()).unwrap();
    let mut out = String::from("root/");
    let result = template.render(row, ingest, tz, &mut out);
    match result {
        Ok(()) => Ok(out["root/".len()..].to_string()),
        Err(e) => {
            assert_eq!(out, "root/", "a failed render leaves the buffer as it was");
            Err(e)
        }
    }
}

fn render(template: &str, json: &str) -> Result<String, PartitionError> {
    render_with(template, json, 0, Tz::UTC)
}

#[test]
fn renders_hive_paths_from_event_time() {
    let json = r#"{"ts":"2026-11-25T17:03:12.345Z","country":"NL"}"#;
    assert_eq!(render("dt={ts:%Y-%m-%d}/hour={ts:%H}", json).unwrap(), "dt=2026-11-25/hour=17");
    assert_eq!(render("country={country}/dt={ts:%Y%m%d}", json).unwrap(), "country=NL/dt=20261125");
    assert_eq!(render("events/min={ts:%H%M}", json).unwrap(), "events/min=1703");
}

#[test]
fn timestamps_are_rendered_in_the_pipeline_timezone() {
    let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
    let template = "dt={ts:%Y-%m-%d}/hour={ts:%H}";
    // Winter (CET, +01:00).
    let winter = r#"{"ts":"2026-11-25T17:03:12Z"}"#;
    assert_eq!(render_with(template, winter, 0, amsterdam).unwrap(), "dt=2026-11-25/hour=18");
    // Summer (CEST, +02:00) crosses midnight.
    let summer = r#"{"ts":"2026-07-01T22:30:00Z"}"#;
    assert_eq!(render_with(template, summer, 0, amsterdam).unwrap(), "dt=2026-07-02/hour=00");
    assert_eq!(render_with(template, summer, 0, Tz::UTC).unwrap(), "dt=2026-07-01/hour=22");
    // Offsets are escaped like any other `:`.
    assert_eq!(render_with("z={ts:%Z%:z}", winter, 0, amsterdam).unwrap(), "z=CET+01%3A00");
}

#[test]
fn the_cache_never_changes_what_is_rendered() {
    // Sweep across DST switches in zones with whole, half-hour and 30-minute-DST offsets,
    // rendering with one (cached) template and comparing with chrono directly.
    let zones = ["Europe/Amsterdam", "Asia/Kolkata", "Australia/Lord_Howe", "America/St_Johns", "UTC"];
    let formats = ["%Y-%m-%d-%H", "%H%M", "%d %Z", "%S"];
    let schema = schema();
    let mut parser = RowParser::new(&schema, false);
    for zone in zones {
        let tz: Tz = zone.parse().unwrap();
        for format in formats {
            let template = PartitionTemplate::parse(&format!("x={{ts:{format}}}"), &schema).unwrap();
            for (start, end) in [
                ("2026-03-28T12:00:00Z", "2026-03-30T00:00:00Z"),
                ("2026-10-03T12:00:00Z", "2026-10-05T00:00:00Z"),
                ("2026-10-24T12:00:00Z", "2026-10-26T00:00:00Z"),
                ("2026-04-04T12:00:00Z", "2026-04-06T00:00:00Z"),
            ] {
                let mut t = micros(start);
                while t < micros(end) {
                    let millis = t / 1000;
                    let row = parser.parse(format!(r#"{{"ts":{millis}}}"#).as_bytes()).unwrap();
                    let mut out = String::new();
                    template.render(row, 0, tz, &mut out).unwrap();
                    let expected = DateTime::<Utc>::from_timestamp_micros(t)
                        .unwrap()
                        .with_timezone(&tz)
                        .format(format)
                        .to_string();
                    let mut escaped = String::from("x=");
                    escape_into(&expected, &mut escaped);
                    assert_eq!(out, escaped, "{zone} {format} at {t}");
                    t += 7 * 60 * 1_000_000 + 13_000_000;
                }
            }
        }
    }
}

#[test]
fn values_are_escaped_hive_style() {
    let cases = [
        ("a/b", "c=a%2Fb"),
        ("k=v", "c=k%3Dv"),
        ("50%", "c=50%25"),
        ("x:y?z#", "c=x%3Ay%3Fz%23"),
        ("q\"'*\\{[]}^", "c=q%22%27%2A%5C%7B%5B%5D}%5E"),
        ("a/../b", "c=a%2F..%2Fb"),
        ("Zürich 1", "c=Zürich 1"),
        ("a.", "c=a."),
    ];
    for (value, expected) in cases {
        let json = serde_json::json!({ "country": value }).to_string();
        assert_eq!(render("c={country}", &json).unwrap(), expected, "{value:?}");
    }
}

#[test]
fn unsafe_values_are_refused_not_escaped() {
    for (value, why) in [
        ("", "empty"),
        (".", "starts with `.` (hidden or `..` directory)"),
        ("..", "starts with `.` (hidden or `..` directory)"),
        (".hidden", "starts with `.` (hidden or `..` directory)"),
        ("a\nb", "contains a control character"),
        ("a\u{0}b", "contains a control character"),
        ("del\u{7f}", "contains a control character"),
        ("next\u{85}line", "contains a control character"),
        ("csi\u{9b}", "contains a control character"),
    ] {
        let json = serde_json::json!({ "country": value }).to_string();
        let e = render("c={country}", &json).unwrap_err();
        assert_eq!(e, PartitionError::UnsafeValue { field: "country".into(), value: value.into(), why }, "{value:?}");
        assert_eq!(e.reason(), "unsafe_partition_value");
    }
    // A bare `{country}` segment starting with `_` would be hidden from Spark.
    let e = render("{country}", r#"{"country":"_tmp"}"#).unwrap_err();
    assert_eq!(
        e,
        PartitionError::UnsafeSegment {
            segment: "_tmp".into(),
            why: "starts with `_`; Spark would ignore the directory"
        }
    );
    assert_eq!(render("c={country}", r#"{"country":"_tmp"}"#).unwrap(), "c=_tmp");
    let long = "x".repeat(300);
    let e = render("c={country}", &format!(r#"{{"country":"{long}"}}"#)).unwrap_err();
    assert_eq!(e.reason(), "unsafe_partition_value");
}

/// Routing and publishing share one rule: any value routing accepts makes a path that the
/// commit step accepts (a value that failed only at publish would crash-loop the pipeline).
#[test]
fn whatever_routing_accepts_publishing_accepts() {
    let mut values: Vec<String> = (0u32..0x250).filter_map(char::from_u32).map(|c| format!("a{c}b")).collect();
    values.extend((0u32..0x250).filter_map(char::from_u32).map(|c| c.to_string()));
    values.extend(
        ["", " ", "  x  ", "..", "../..", "=", "%", "%2F", "_x", ".x", "\u{2028}", "日本語", "é".repeat(120).as_str()]
            .map(String::from),
    );
    values.push("x".repeat(300));
    for template in ["c={country}", "{country}", "c={country}/d={country}"] {
        for value in &values {
            let json = serde_json::json!({ "country": value }).to_string();
            if let Ok(path) = render(template, &json) {
                crate::commit::paths::final_path("/t", &path, "part-0.parquet")
                    .unwrap_or_else(|e| panic!("{value:?} routed to {path:?} but publishing refuses it: {e}"));
            }
        }
    }
}

#[test]
fn null_or_missing_values_are_missing() {
    for json in [r#"{"country":null}"#, r#"{}"#] {
        let e = render("c={country}/dt={ts:%Y}", json).unwrap_err();
        assert_eq!(e, PartitionError::Missing { field: "country".into() });
        assert_eq!(e.reason(), "missing_partition_value");
    }
    let e = render("dt={ts:%Y}", r#"{"country":"NL"}"#).unwrap_err();
    assert_eq!(e.to_string(), "partition field `ts` is null or missing; the row cannot be placed in a partition");
    let e = render("city={geo.city}", r#"{"geo":null}"#).unwrap_err();
    assert_eq!(e, PartitionError::Missing { field: "geo.city".into() });
}

#[test]
fn scalar_types_render_exactly() {
    let json = r#"{"n":-42,"amount":"-0.05","ok":false,"day":"2026-11-25","geo":{"city":"Den Haag"}}"#;
    assert_eq!(
        render("n={n}/a={amount}/ok={ok}/d={day}/m={day:%Y%m}/c={geo.city}", json).unwrap(),
        "n=-42/a=-0.05/ok=false/d=2026-11-25/m=202611/c=Den Haag"
    );
    assert_eq!(render("a={amount}", r#"{"amount":1234567.8}"#).unwrap(), "a=1234567.80");
}

#[test]
fn ingest_time_is_the_arrival_time() {
    let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
    let ingest = micros("2026-11-25T23:30:00Z");
    assert_eq!(render_with("ingest={_ingest:%Y-%m-%d}", "{}", ingest, amsterdam).unwrap(), "ingest=2026-11-26");
    let template = PartitionTemplate::parse("dt={_ingest:%Y}/c={country}", &schema()).unwrap();
    assert!(template.uses_ingest_time());
    assert_eq!(template.fields().collect::<Vec<_>>(), vec!["country"]);
    assert_eq!(template.as_str(), "dt={_ingest:%Y}/c={country}");
}

#[test]
fn template_problems_are_reported_together() {
    let problems = PartitionTemplate::parse(
        "dt={tss:%Y}/x={country:%Y}/y={ts:%Q}/{tags}/../z={geo.lat.x}/w={ts}/v={day:%H}/u={geo.alt}",
        &schema(),
    )
    .unwrap_err();
    assert_eq!(
        problems,
        vec![
            "unknown field `tss` in partition template; did you mean `ts`?".to_string(),
            "`{country:%Y}`: a strftime format only applies to timestamp and date fields, but `country` is string; write `{country}`".to_string(),
            "`{ts:%Q}`: invalid strftime format `%Q`: a `%` sequence is unknown to chrono (see chrono's strftime docs; write `%%` for a literal `%`)".to_string(),
            "`{tags}`: field `tags` is a list<string>; partition values must be scalar fields".to_string(),
            "`geo.lat.x`: `geo.lat` is a float64, not a struct; only struct members can be reached with `.`".to_string(),
            "`{ts}` is a timestamp and needs a strftime format, e.g. `{ts:%Y-%m-%d}`".to_string(),
            "`{day:%H}`: format `%H` uses time-of-day or timezone specifiers, but `day` is a date".to_string(),
            "unknown field `alt` in struct `geo`; did you mean `lat`?".to_string(),
            "`dt={tss:%Y}/x={country:%Y}/y={ts:%Q}/{tags}/../z={geo.lat.x}/w={ts}/v={day:%H}/u={geo.alt}` has a `..` segment; partitions must stay under the table root".to_string(),
        ]
    );
}

#[test]
fn template_shape_problems() {
    let s = schema();
    let err = |t: &str| PartitionTemplate::parse(t, &s).unwrap_err();
    assert_eq!(err(""), vec!["partition template is empty; use e.g. `dt={ts:%Y-%m-%d}`"]);
    assert_eq!(
        err("/dt={ts:%Y}"),
        vec!["`/dt={ts:%Y}` is absolute; partition templates are relative to the table root"]
    );
    assert_eq!(err("a//b={n}"), vec!["`a//b={n}` has an empty path segment (`//` or a trailing `/`)"]);
    assert_eq!(err("b={n}/"), vec!["`b={n}/` has an empty path segment (`//` or a trailing `/`)"]);
    assert_eq!(err("./b={n}"), vec!["`./b={n}` has a `.` segment; partitions must stay under the table root"]);
    assert_eq!(
        err("_tmp/b={n}"),
        vec!["segment `_tmp` of `_tmp/b={n}` starts with `_`; Spark ignores such directories, so the data would be invisible"]
    );
    assert_eq!(
        err("b:{n}"),
        vec!["literal ':' in `b:{n}` would have to be escaped in a path; use letters, digits, `-`, `_`, `.` or `=`"]
    );
    assert_eq!(err("b={n"), vec!["unclosed `{` at position 3 of `b={n`"]);
    assert_eq!(err("b=n}"), vec!["unmatched `}` at position 4 of `b=n}`"]);
    assert_eq!(err("b={}"), vec!["empty field name in `{}`"]);
    assert_eq!(err("b={ts:}"), vec!["`{ts:}`: empty strftime format after `:`"]);
    assert_eq!(
        err("b={ts:%Y/%m}"),
        vec!["`{ts:%Y/%m}`: format `%Y/%m` contains `/`; use one placeholder per path segment, e.g. `{ts:%Y}/{ts:%m}`"]
    );
    assert_eq!(err("b={_ingest}"), vec!["`{_ingest}` needs a strftime format, e.g. `{_ingest:%Y-%m-%d}`"]);
    assert_eq!(err("b={geo.altitude}"), vec!["unknown field `altitude` in struct `geo`; fields are `city`, `lat`"]);
    assert_eq!(err("b={Country}"), vec!["unknown field `Country` in partition template; did you mean `country`?"]);
    assert!(PartitionTemplate::parse("_dt={ts:%Y}/tables/b={n}", &s).is_ok(), "`_` with `=` is visible to Spark");
}

#[test]
fn templates_are_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<PartitionTemplate>();
}

#[test]
fn hive_keys_come_from_key_value_directories_in_path_order() {
    assert_eq!(hive_keys("dt={ts:%Y-%m-%d}/hour={ts:%H}").unwrap(), ["dt", "hour"]);
    assert_eq!(hive_keys("country={country}/v2").unwrap_err().len(), 1, "a directory without `=`");
    let problems = hive_keys("{country}=x/Dt={ts:%Y}/dt={ts:%Y}/dt={n}").unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("segment `{country}=x` is not `key=value`"), "{}", problems[0]);
    assert!(problems[1].contains("partition key `Dt`") && problems[1].contains("lower-case"), "{}", problems[1]);
    assert!(problems[2].contains("partition key `dt` appears twice"), "{}", problems[2]);
}

#[test]
fn hive_values_unescape_what_rendering_escaped() {
    let keys = vec!["dt".to_string(), "country".to_string()];
    // Rendering escapes `/`, `=`, `%`, `:` …; reading the directory name gives the value back.
    let value = "a/b=c%d:e";
    let mut dir = String::from("dt=2026-11-25/country=");
    escape_into(value, &mut dir);
    assert_eq!(dir, "dt=2026-11-25/country=a%2Fb%3Dc%25d%3Ae");
    assert_eq!(hive_values(&dir, &keys).unwrap(), ["2026-11-25", value]);
    assert_eq!(hive_values("dt=2026-11-25/country=Zürich", &keys).unwrap()[1], "Zürich", "non-ASCII passes");
    assert_eq!(hive_values("dt=2026-11-25", &keys), None, "too few directories");
    assert_eq!(hive_values("dt=2026-11-25/region=eu", &keys), None, "another key");
    assert_eq!(hive_values("dt=x/country=", &keys).unwrap()[1], "");
    assert_eq!(unescape("100%"), "100%", "a lone `%` stays");
    assert_eq!(unescape("%zz%4"), "%zz%4");
    assert_eq!(unescape("%+F"), "%+F", "only hex digits");
}
