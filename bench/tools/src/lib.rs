//! Shared pieces of the benchmark tools: the deterministic event generator.
//!
//! Every run with the same seed and count yields byte-identical events, so the Kafka topic and
//! both RabbitMQ queues carry exactly the same data and contenders compare like with like.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// First event's timestamp: 2026-11-24T00:00:00Z in Unix seconds. Events spread over two days,
/// so `dt=…/country=…` yields 2 × [`COUNTRIES`] partitions.
pub const BASE_EPOCH_SECS: i64 = 1_795_478_400;
/// Span of event timestamps, in microseconds (two days).
pub const SPAN_MICROS: i64 = 2 * 86_400 * 1_000_000;
/// Distinct `shard` values of the many-partitions variant.
pub const SHARDS: u32 = 200;

pub const COUNTRIES: [(&str, &str); 8] = [
    ("US", "us-east"),
    ("DE", "eu-central"),
    ("FR", "eu-west"),
    ("GB", "eu-west"),
    ("JP", "ap-northeast"),
    ("BR", "sa-east"),
    ("IN", "ap-south"),
    ("CA", "us-east"),
];
const TAGS: [&str; 6] = ["web", "promo", "beta", "returning", "newsletter", "vip"];
const OSES: [&str; 4] = ["android", "ios", "windows", "linux"];

/// Produces the `i`-th event of `n` as JSON, reusing one buffer (no per-event allocation).
pub struct EventGen {
    rng: StdRng,
    next: u64,
    total: u64,
    shard: bool,
    buf: String,
}

impl EventGen {
    /// `shard = true` replaces the `region` string with an int `shard` in 0..200.
    pub fn new(seed: u64, total: u64, shard: bool) -> EventGen {
        EventGen { rng: StdRng::seed_from_u64(seed), next: 0, total, shard, buf: String::with_capacity(512) }
    }

    /// The next event's `(event_id offset in buf, JSON)`, or `None` after `total` events.
    /// The event id is `json[id.0..id.1]`.
    pub fn next_event(&mut self) -> Option<(std::ops::Range<usize>, &str)> {
        if self.next >= self.total {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let r = &mut self.rng;
        let b = &mut self.buf;
        b.clear();
        b.push_str("{\"event_id\":\"");
        let id_start = b.len();
        let hi: u64 = r.random();
        // Random prefix, sequence number suffix: looks like a UUID, unique by construction.
        let _ = write!(
            b,
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            (hi >> 32) as u32,
            (hi >> 16) as u16,
            (hi & 0xfff) as u16,
            0x8000 | (r.random::<u16>() & 0x3fff),
            i
        );
        let id_end = b.len();
        let user_id: i64 = r.random_range(1..10_000_000);
        let cents: u32 = r.random_range(0..10_000_000);
        let micros = i as i64 * SPAN_MICROS / self.total.max(1) as i64 + r.random_range(0..1_000_000);
        let (country, region) = COUNTRIES[r.random_range(0..COUNTRIES.len())];
        let _ = write!(b, "\",\"user_id\":{user_id},\"amount\":{}.{:02},\"ts\":\"", cents / 100, cents % 100);
        write_rfc3339_micros(b, BASE_EPOCH_SECS * 1_000_000 + micros);
        let _ = write!(b, "\",\"country\":\"{country}\",");
        if self.shard {
            let _ = write!(b, "\"shard\":{}", r.random_range(0..SHARDS));
        } else {
            let _ = write!(b, "\"region\":\"{region}\"");
        }
        let mobile: bool = r.random_bool(0.6);
        let score: f64 = r.random::<f64>() * 100.0;
        let _ = write!(b, ",\"is_mobile\":{mobile},\"score\":{score:.4},\"tags\":[");
        let ntags = r.random_range(1..=3);
        for t in 0..ntags {
            if t > 0 {
                b.push(',');
            }
            let _ = write!(b, "\"{}\"", TAGS[r.random_range(0..TAGS.len())]);
        }
        let os = OSES[r.random_range(0..OSES.len())];
        let _ = write!(
            b,
            "],\"device\":{{\"os\":\"{os}\",\"version\":\"{}.{}.{}\"}}}}",
            r.random_range(8..18),
            r.random_range(0..10),
            r.random_range(0..30)
        );
        Some((id_start..id_end, b.as_str()))
    }
}

/// Writes `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn write_rfc3339_micros(out: &mut String, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", sod / 3600, sod % 3600 / 60, sod % 60);
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_exactly() {
        let mut s = String::new();
        write_rfc3339_micros(&mut s, BASE_EPOCH_SECS * 1_000_000 + 3_723_000_042);
        assert_eq!(s, "2026-11-24T01:02:03.000042Z");
        s.clear();
        write_rfc3339_micros(&mut s, 951_782_400 * 1_000_000);
        assert_eq!(s, "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn events_are_deterministic_valid_and_unique() {
        let mut a = EventGen::new(7, 1000, false);
        let mut b = EventGen::new(7, 1000, false);
        let mut ids = std::collections::HashSet::new();
        let mut count = 0;
        while let Some((id, json)) = a.next_event() {
            let (_, other) = b.next_event().unwrap();
            assert_eq!(json, other);
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 10);
            assert_eq!(v["event_id"].as_str().unwrap(), &json[id.clone()]);
            assert!(ids.insert(json[id].to_string()));
            assert!(json.len() > 200 && json.len() < 300, "{} bytes: {json}", json.len());
            count += 1;
        }
        assert_eq!(count, 1000);
        assert!(b.next_event().is_none());
    }

    #[test]
    fn shard_variant_has_shard_instead_of_region() {
        let mut g = EventGen::new(1, 10, true);
        let (_, json) = g.next_event().unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(v.get("region").is_none());
        assert!(v["shard"].as_u64().unwrap() < 200);
    }
}
