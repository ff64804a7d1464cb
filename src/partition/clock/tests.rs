use chrono::DateTime;
use chrono_tz::Tz;

use super::*;
use crate::decode::RowParser;
use crate::schema::{FieldSpec, FieldType};

fn field(name: &str, t: &str) -> FieldSpec {
    FieldSpec { name: name.into(), field_type: FieldType::parse(t).unwrap(), required: false }
}

fn schema() -> Vec<FieldSpec> {
    vec![field("ts", "timestamp"), field("created", "timestamp"), field("country", "string"), field("day", "date")]
}

fn berlin() -> Tz {
    "Europe/Berlin".parse().unwrap()
}

fn resolve(template: &str, tz: Tz) -> Result<Clock, Vec<String>> {
    Clock::resolve(&PartitionTemplate::parse(template, &schema()).unwrap(), tz)
}

fn clock_of(template: &str, tz: Tz) -> Clock {
    resolve(template, tz).unwrap_or_else(|p| panic!("{template}: {p:?}"))
}

/// The one problem `template` has for completion in `tz`.
fn refusal(template: &str, tz: Tz) -> String {
    let problems = resolve(template, tz).expect_err(template);
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems[0].clone()
}

fn micros(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_micros()
}

fn bucket(start: &str, end: &str) -> Bucket {
    Bucket { start: micros(start), end: micros(end) }
}

#[test]
fn the_unit_is_the_finest_any_clock_format_prints() {
    for (template, unit) in [
        ("y={ts:%Y}", Unit::Year),
        ("m={ts:%Y-%m}", Unit::Month),
        ("m={ts:%Y-%b}", Unit::Month),
        ("m={ts:%Y}/mon={ts:%B}", Unit::Month),
        ("dt={ts:%Y-%m-%d}", Unit::Day),
        ("dt={ts:%Y%m%d}", Unit::Day),
        ("dt={ts:%Y-%j}", Unit::Day),
        ("dt={ts:%Y-%m-%e}", Unit::Day),
        ("dt={ts:%Y-%m-%d}/hour={ts:%H}", Unit::Hour),
        ("dt={ts:%Y-%m-%d}/hour={ts:%I%p}", Unit::Hour),
        ("t={ts:%Y%m%d%H%M}", Unit::Minute),
        ("t={ts:%Y-%m-%dT%H:%M}", Unit::Minute),
        ("dt={day}", Unit::Day),
        ("m={day:%Y-%m}", Unit::Month),
        ("dt={_ingest:%Y-%m-%d}/hour={_ingest:%H}", Unit::Hour),
        ("dt={ts:%Y-%m-%d}/country={country}", Unit::Day),
    ] {
        let clock = clock_of(template, berlin());
        assert_eq!(clock.unit(), unit, "{template}");
    }
    let clock = clock_of("dt={ts:%Y-%m-%d}/country={country}", Tz::UTC);
    assert_eq!((clock.field(), clock.is_date(), clock.segment_count()), ("ts", false, 2));
    assert!(clock_of("dt={day}", Tz::UTC).is_date());
    assert_eq!(clock_of("dt={_ingest:%Y-%m-%d}", Tz::UTC).field(), "_ingest");
}

#[test]
fn formats_that_do_not_name_one_interval_are_refused_by_the_round_trip() {
    for (template, unit) in [
        ("hour={ts:%H}", "hour"),                   // every day's 17:00 in one directory
        ("m={ts:%m}", "month"),                     // no year
        ("y={ts:%y}/m={ts:%m}", "month"),           // 2099 reads back as 1999
        ("y={ts:%Y}/wd={ts:%a}", "day"),            // a weekday is not a date
        ("dt={ts:%Y-%m-%d}/hour={ts:%I}", "hour"),  // 17:00 and 05:00 alike
        ("dt={ts:%Y-%m-%d}/min={ts:%M}", "minute"), // no hour
        ("dt={ts:%Y-%m-%d}/half={ts:%p}", "day"),   // a half day is no unit
    ] {
        let problem = refusal(template, berlin());
        assert!(problem.contains(&format!("does not name one {unit} per directory")), "{template}: {problem}");
        assert!(problem.starts_with(&format!("`{template}`")), "{problem}");
    }
    let problem = refusal("y={ts:%y}/m={ts:%m}", Tz::UTC);
    assert!(problem.contains("lands in `y=99/m=12`"), "{problem}");
    assert!(problem.contains("reads back as the month 1999-12-01T00:00:00Z–2000-01-01T00:00:00Z"), "{problem}");
}

#[test]
fn seconds_weeks_and_templates_without_one_clock_are_refused() {
    let problem = refusal("t={ts:%Y%m%d%H%M%S}", Tz::UTC);
    assert!(problem.starts_with("`t={ts:%Y%m%d%H%M%S}` prints seconds or finer"), "{problem}");
    assert!(refusal("t={ts:%s}", Tz::UTC).contains("prints seconds"));
    assert!(refusal("t={ts:%p}", Tz::UTC).contains("prints no date or time of `ts`"));
    assert!(refusal("w={ts:%G-%V}", Tz::UTC).contains("week"));
    assert!(refusal("w={ts:%Y-%U}", Tz::UTC).contains("week"));
    let problem = refusal("country={country}", Tz::UTC);
    assert!(problem.starts_with("completion needs a time field in partition.path, e.g. `dt={ts:%Y-%m-%d}`"));
    let problem = refusal("dt={ts:%Y-%m-%d}/hour={created:%H}", Tz::UTC);
    assert!(problem.contains("formats both `ts` and `created`"), "{problem}");
    assert!(refusal("dt={ts:%Y-%m-%d}/hour={_ingest:%H}", Tz::UTC).contains("both `ts` and `_ingest`"));
    assert!(refusal("dt={day}/hour={ts:%H}", Tz::UTC).contains("both `day` and `ts`"));
    let problem = refusal("dt={country}-{ts:%Y-%m-%d}", Tz::UTC);
    assert!(problem.starts_with("segment `dt={country}-{ts:%Y-%m-%d}` mixes the time field `ts`"), "{problem}");
}

/// The design's table (section 1): Europe/Berlin, `dt={ts:%Y-%m-%d}/hour={ts:%H}` and a day.
#[test]
fn buckets_follow_local_labels_across_dst_switches() {
    let hours = clock_of("dt={ts:%Y-%m-%d}/hour={ts:%H}", berlin());
    let days = clock_of("dt={ts:%Y-%m-%d}", berlin());
    for (clock, dir, expected, inside) in [
        (
            &hours,
            "dt=2026-11-25/hour=17",
            bucket("2026-11-25T16:00:00Z", "2026-11-25T17:00:00Z"),
            "2026-11-25T16:59:59Z",
        ),
        // Fall-back: local 02 happens twice; one directory holds both.
        (
            &hours,
            "dt=2026-10-25/hour=02",
            bucket("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
            "2026-10-25T01:30:00Z",
        ),
        // Spring-forward: local 02:00 does not exist; the hour before ends at the switch.
        (
            &hours,
            "dt=2026-03-29/hour=01",
            bucket("2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"),
            "2026-03-29T00:59:59Z",
        ),
        (&days, "dt=2026-11-25", bucket("2026-11-24T23:00:00Z", "2026-11-25T23:00:00Z"), "2026-11-25T12:00:00Z"),
    ] {
        assert_eq!(clock.bucket_of_dir(dir), Some(expected), "{dir}");
        assert_eq!(clock.bucket_at(micros(inside)), Some(expected), "{dir}");
        assert_eq!(clock.bucket_at(expected.start), Some(expected), "{dir}");
        assert_eq!(clock.bucket_at(expected.end - 1), Some(expected), "{dir}");
    }
    // Around the switches buckets follow each other without gap or overlap.
    let before = hours.bucket_of_dir("dt=2026-10-25/hour=01").unwrap();
    let after = hours.bucket_of_dir("dt=2026-10-25/hour=03").unwrap();
    assert_eq!((before.end, after.start), (micros("2026-10-25T00:00:00Z"), micros("2026-10-25T02:00:00Z")));
    assert_eq!(hours.bucket_of_dir("dt=2026-03-29/hour=02"), None, "no instant renders it");
    let after = hours.bucket_of_dir("dt=2026-03-29/hour=03").unwrap();
    assert_eq!(after, bucket("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"));
    // The fall-back day is 25 hours long, the spring-forward day 23.
    let long = days.bucket_of_dir("dt=2026-10-25").unwrap();
    assert_eq!(long.end - long.start, 25 * 3_600_000_000);
    let short = days.bucket_of_dir("dt=2026-03-29").unwrap();
    assert_eq!(short.end - short.start, 23 * 3_600_000_000);
}

#[test]
fn month_and_year_buckets_are_calendar_units() {
    let months = clock_of("month={ts:%Y-%m}", berlin());
    let december = bucket("2026-11-30T23:00:00Z", "2026-12-31T23:00:00Z");
    assert_eq!(months.bucket_of_dir("month=2026-12"), Some(december));
    assert_eq!(months.bucket_at(micros("2026-12-31T22:59:59Z")), Some(december));
    assert_eq!(months.time_segment(december, 0).as_deref(), Some("month=2026-12"));
    let february = months.bucket_of_dir("month=2028-02").unwrap();
    assert_eq!(february.end - february.start, 29 * 24 * 3_600_000_000);
    let years = clock_of("year={ts:%Y}/month={ts:%b}", Tz::UTC);
    assert_eq!(years.unit(), Unit::Month);
    assert_eq!(
        years.bucket_of_dir("year=2026/month=Feb"),
        Some(bucket("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"))
    );
    assert_eq!(years.bucket_of_dir("year=2026/month=Foo"), None);
    let years = clock_of("y={ts:%Y}", Tz::UTC);
    assert_eq!(years.bucket_of_dir("y=2026"), Some(bucket("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")));
}

fn row_micros(clock: &Clock, json: &str, ingest: i64) -> Option<i64> {
    let schema = schema();
    let mut parser = RowParser::new(&schema, false);
    let row = parser.parse(json.as_bytes()).unwrap();
    clock.micros(row, ingest)
}

#[test]
fn a_date_field_is_a_day_clock_starting_at_local_midnight() {
    for template in ["dt={day}", "dt={day:%Y-%m-%d}"] {
        let clock = clock_of(template, berlin());
        let day = bucket("2026-11-24T23:00:00Z", "2026-11-25T23:00:00Z");
        let value = row_micros(&clock, r#"{"day":"2026-11-25"}"#, 0);
        assert_eq!(value, Some(day.start), "{template}");
        assert_eq!(clock.bucket_at(day.start), Some(day));
        assert_eq!(clock.bucket_of_dir("dt=2026-11-25"), Some(day));
        assert_eq!(clock.time_segment(day, 0).as_deref(), Some("dt=2026-11-25"));
        assert_eq!(row_micros(&clock, r#"{"ts":"2026-11-25T10:00:00Z"}"#, 0), None, "a null date has no clock");
    }
}

#[test]
fn the_clock_value_is_the_timestamp_field_or_the_arrival_time() {
    let clock = clock_of("dt={ts:%Y-%m-%d}/hour={ts:%H}", Tz::UTC);
    let t = micros("2026-11-25T17:03:12.345Z");
    assert_eq!(row_micros(&clock, r#"{"ts":"2026-11-25T17:03:12.345Z"}"#, 7), Some(t));
    assert_eq!(row_micros(&clock, r#"{"created":"2026-11-25T17:03:12.345Z"}"#, 7), None);
    let ingest = clock_of_ingest();
    assert_eq!(row_micros(&ingest, r#"{"ts":"2000-01-01T00:00:00Z"}"#, t), Some(t));
    let hour = ingest.bucket_at(t).unwrap();
    assert_eq!(hour, bucket("2026-11-25T17:00:00Z", "2026-11-25T18:00:00Z"));
    assert_eq!(ingest.bucket_of_dir("at=2026-11-25/hour=18"), Some(hour));
}

fn clock_of_ingest() -> Clock {
    clock_of("at={_ingest:%Y-%m-%d}/hour={_ingest:%H}", berlin())
}

#[test]
fn time_segments_render_as_the_template_does() {
    let template = "dt={ts:%Y-%m-%d}/country={country}/t={ts:%H:%M}";
    let clock = clock_of(template, berlin());
    let parsed = PartitionTemplate::parse(template, &schema()).unwrap();
    let mut parser = RowParser::new(&schema(), false);
    let row = parser.parse(br#"{"ts":"2026-11-25T16:03:00Z","country":"NL"}"#).unwrap();
    let mut rendered = String::new();
    parsed.render(row, 0, berlin(), &mut rendered).unwrap();
    assert_eq!(rendered, "dt=2026-11-25/country=NL/t=17%3A03");
    let minute = clock.bucket_at(micros("2026-11-25T16:03:00Z")).unwrap();
    assert_eq!(minute, bucket("2026-11-25T16:03:00Z", "2026-11-25T16:04:00Z"));
    assert_eq!(clock.bucket_of_dir(&rendered), Some(minute));
    assert_eq!(clock.time_segment(minute, 0).as_deref(), Some("dt=2026-11-25"));
    assert_eq!(clock.time_segment(minute, 1), None, "a field segment");
    assert_eq!(clock.time_segment(minute, 2).as_deref(), Some("t=17%3A03"));
    assert_eq!(clock.time_segment(minute, 3), None);
    // Only names rendering produces: escaped, zero-padded, and no label of a DST gap.
    assert_eq!(clock.bucket_of_dir("dt=2026-11-25/country=NL/t=17:03"), None);
    assert_eq!(clock.bucket_of_dir("dt=2026-11-25/country=NL/t=7%3A03"), None);
    assert_eq!(clock.bucket_of_dir("dt=2026-11-25/country=N%2FL/t=17%3A03"), Some(minute));
}

#[test]
fn rejected_hidden_and_foreign_directories_have_no_bucket() {
    let clock = clock_of("dt={ts:%Y-%m-%d}/hour={ts:%H}", Tz::UTC);
    for dir in [
        "_rejected/dt=2026-11-25",
        "_rejected/dt=2026-11-25/hour=17",
        "_landfall/staging",
        ".hive-staging/hour=17",
        "dt=2026-11-25",
        "dt=2026-11-25/hour=17/extra=1",
        "dt=2026-11-25/hour=24",
        "dt=2026-11-25/hour=7x",
        "dt=yesterday/hour=17",
        "day=2026-11-25/hour=17",
        "dt=2026-11-25/hour=17 ",
        "dt=2026-11-25/hour=7",
        "",
    ] {
        assert_eq!(clock.bucket_of_dir(dir), None, "{dir:?}");
    }
    let fields = clock_of("country={country}/dt={ts:%Y-%m-%d}", Tz::UTC);
    assert!(fields.bucket_of_dir("country=NL/dt=2026-11-25").is_some());
    assert_eq!(fields.bucket_of_dir("region=NL/dt=2026-11-25"), None);
    assert_eq!(fields.bucket_of_dir("country=/dt=2026-11-25"), None);
    // A bare value segment matches any visible name, but never a hidden one.
    let bare = clock_of("{country}/dt={ts:%Y-%m-%d}", Tz::UTC);
    assert!(bare.bucket_of_dir("NL/dt=2026-11-25").is_some());
    assert_eq!(bare.bucket_of_dir("_rejected/dt=2026-11-25"), None);
    assert_eq!(bare.bucket_of_dir(".tmp/dt=2026-11-25"), None);
}

#[test]
fn samples_include_both_dst_switches_of_the_zone() {
    let berlin = samples(berlin());
    for switch in ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"] {
        assert!(berlin.contains(&micros(switch)), "{switch}");
        assert!(berlin.contains(&(micros(switch) - 1)), "{switch}");
    }
    assert_eq!(samples(Tz::UTC).len(), 3);
}
