//! Throughput of the decode hot path: parse → partition render → append → finish.
//!
//! Run: `cargo run --release --example decode_bench [rows]` (default 1,000,000 rows).
//! Generates ~250-byte events in memory first, then times each stage on one thread and prints
//! rows/s and MB/s. Prints figures only; asserts nothing.

use std::hint::black_box;
use std::time::Instant;

use chrono_tz::Tz;
use landfall::decode::{BatchBuilder, RowParser};
use landfall::partition::PartitionTemplate;
use landfall::schema::{FieldSpec, FieldType};

const BATCH_ROWS: usize = 65_536;
const COUNTRIES: [&str; 6] = ["NL", "DE", "FR", "BE", "US", "JP"];

fn schema() -> Vec<FieldSpec> {
    let f = |name: &str, t: &str, required: bool| FieldSpec {
        name: name.into(),
        field_type: FieldType::parse(t).expect("valid type"),
        required,
    };
    vec![
        f("id", "string", true),
        f("user_id", "int64", false),
        f("amount", "decimal(12,2)", false),
        f("ts", "timestamp", true),
        f("tags", "list<string>", false),
        f("geo", "struct<lat: float64, lon: float64>", false),
        f("country", "string", false),
        f("ok", "bool", false),
        f("score", "float64", false),
        f("n", "int32", false),
        f("page", "string", false),
    ]
}

/// The brief's reference event plus a `page` string (to reach ~250 bytes), one to a few
/// milliseconds apart: a realistic stream crosses an hour now and then.
fn events(rows: usize) -> Vec<Vec<u8>> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-25T17:03:12.345Z").expect("valid");
    (0..rows)
        .map(|i| {
            let ts = start + chrono::Duration::milliseconds(i as i64 * 3 + (i as i64 % 7));
            format!(
                r#"{{"id":"evt-{i:06}","user_id":{},"amount":"{}.{:02}","ts":"{}","tags":["a","b"],"geo":{{"lat":52.{},"lon":4.{}}},"country":"{}","ok":{},"score":0.{},"n":{},"page":"/shop/category-{}/item-{:06}?ref=newsletter-2026-11"}}"#,
                100_000 + i * 7 % 900_000,
                i % 1000,
                i % 100,
                ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                i % 10,
                i % 9,
                COUNTRIES[i % COUNTRIES.len()],
                i % 3 != 0,
                i % 97,
                i % 50,
                i % 40,
                i % 100_000
            )
            .into_bytes()
        })
        .collect()
}

fn report(stage: &str, rows: usize, bytes: usize, seconds: f64) {
    println!(
        "{stage:<44} {:>10.0} rows/s  {:>7.1} MB/s  ({rows} rows in {seconds:.3} s)",
        rows as f64 / seconds,
        bytes as f64 / seconds / 1e6
    );
}

fn main() {
    let rows: usize = std::env::args().nth(1).map(|s| s.parse().expect("row count")).unwrap_or(1_000_000);
    let schema = schema();
    let payloads = events(rows);
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!("{rows} events, {:.1} bytes on average", bytes as f64 / rows as f64);

    let mut parser = RowParser::new(&schema, false);
    let t = Instant::now();
    for p in &payloads {
        black_box(parser.parse(p).expect("valid event"));
    }
    report("parse", rows, bytes, t.elapsed().as_secs_f64());

    let template =
        PartitionTemplate::parse("dt={ts:%Y-%m-%d}/hour={ts:%H}/country={country}", &schema).expect("valid template");
    let amsterdam: Tz = "Europe/Amsterdam".parse().expect("known zone");
    let mut path = String::new();
    for (name, tz) in [("UTC", Tz::UTC), ("Europe/Amsterdam", amsterdam)] {
        let t = Instant::now();
        for p in &payloads {
            let row = parser.parse(p).expect("valid event");
            path.clear();
            template.render(row, 0, tz, &mut path).expect("renderable");
            black_box(&path);
        }
        report(&format!("parse + render ({name})"), rows, bytes, t.elapsed().as_secs_f64());
    }

    // For comparison: a sub-second format defeats the render cache (chrono on every row).
    let uncached =
        PartitionTemplate::parse("t={ts:%Y%m%dT%H%M%S%.3f}/country={country}", &schema).expect("valid template");
    let t = Instant::now();
    for p in &payloads {
        let row = parser.parse(p).expect("valid event");
        path.clear();
        uncached.render(row, 0, amsterdam, &mut path).expect("renderable");
        black_box(&path);
    }
    report("parse + render (uncacheable format)", rows, bytes, t.elapsed().as_secs_f64());

    let mut builder = BatchBuilder::new(&schema);
    let t = Instant::now();
    let mut batches = 0;
    for p in &payloads {
        let row = parser.parse(p).expect("valid event");
        path.clear();
        template.render(row, 0, Tz::UTC, &mut path).expect("renderable");
        builder.append(row);
        if builder.len() == BATCH_ROWS {
            black_box(builder.finish());
            batches += 1;
        }
    }
    black_box(builder.finish());
    report("parse + render + append + finish (UTC)", rows, bytes, t.elapsed().as_secs_f64());
    println!("({} batches of up to {BATCH_ROWS} rows)", batches + 1);
}
