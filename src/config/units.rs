//! Human-friendly sizes (`128MiB`, `512KB`, `1048576`) and durations (`60s`, `5m`, `250ms`).
//!
//! Written by hand rather than pulling in `humantime`/`bytesize`: the grammar is one number and
//! one unit, and owning it lets the error text list exactly what Landfall accepts.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A number of bytes. Plain integers are bytes; `KB`/`MB`/`GB`/`TB` are powers of 1000 and
/// `KiB`/`MiB`/`GiB`/`TiB` powers of 1024 (units are case-insensitive, a space is allowed).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A duration written as one integer and a unit: `ms`, `s`, `m`, `h` or `d`.
/// A bare number is refused: `60` could mean seconds or milliseconds, and guessing is how
/// timeouts end up 1000 times too short.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

/// Splits `"128 MiB"` into `(128, "mib")`; the number must be a non-negative integer.
fn split_number(text: &str) -> Option<(u64, String)> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    let number = text[..digits].replace('_', "").parse().ok()?;
    Some((number, text[digits..].trim().to_ascii_lowercase()))
}

impl ByteSize {
    /// Parses `128MiB`, `512 KB`, `4096`; the error names the accepted units.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let bad = || {
            format!("invalid size `{text}`: expected an integer number of bytes or one with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. `128MiB`")
        };
        let (number, unit) = split_number(text).ok_or_else(bad)?;
        let factor = if unit.is_empty() { 1 } else { SIZE_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?.1 };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` is too large (more than 2^64 bytes)"))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl HumanDuration {
    /// Parses `60s`, `5m`, `250ms`, `1h`; the error names the accepted units.
    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        let bad = || {
            format!(
                "invalid duration `{text}`: expected an integer with a unit (ms, s, m, h, d), e.g. `60s` or `250ms`"
            )
        };
        let (number, unit) = split_number(text).ok_or_else(bad)?;
        let factor = DURATION_UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?.1;
        number
            .checked_mul(factor)
            .map(|ms| HumanDuration(Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration `{text}` is too long"))
    }

    /// The duration as a std type.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Shorthand for whole seconds, used by the default functions.
    pub const fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ByteSize {
    /// Prints the largest binary unit that divides the size exactly, so `128MiB` round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= factor && self.0 % factor == 0 {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HumanDuration {
    /// Prints the largest unit that divides the duration exactly, so `5m` round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, factor) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms >= factor && ms % factor == 0 {
                return write!(f, "{}{unit}", ms / factor);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `128MiB`, `512KB` or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("size must not be negative, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `60s`, `5m` or `250ms`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!("duration `{v}` has no unit: write `{v}s` or `{v}ms`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!("duration `{v}` has no unit (and must not be negative)")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(ByteSize::parse("128MiB"), Ok(ByteSize(128 * 1024 * 1024)));
        assert_eq!(ByteSize::parse("512KB"), Ok(ByteSize(512_000)));
        assert_eq!(ByteSize::parse("512 kib"), Ok(ByteSize(512 * 1024)));
        assert_eq!(ByteSize::parse("1GB"), Ok(ByteSize(1_000_000_000)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert_eq!(ByteSize::parse("10B"), Ok(ByteSize(10)));
        assert_eq!(ByteSize::parse("1_000"), Ok(ByteSize(1000)));
    }

    #[test]
    fn sizes_reject_garbage_and_overflow() {
        assert!(ByteSize::parse("12XB").unwrap_err().contains("invalid size `12XB`"));
        assert!(ByteSize::parse("MiB").is_err());
        assert!(ByteSize::parse("1.5MiB").is_err());
        assert!(ByteSize::parse("-1").is_err());
        assert!(ByteSize::parse("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn durations_parse_each_unit() {
        assert_eq!(HumanDuration::parse("60s").unwrap().get(), Duration::from_secs(60));
        assert_eq!(HumanDuration::parse("5m").unwrap().get(), Duration::from_secs(300));
        assert_eq!(HumanDuration::parse("250ms").unwrap().get(), Duration::from_millis(250));
        assert_eq!(HumanDuration::parse("2h").unwrap().get(), Duration::from_secs(7200));
        assert_eq!(HumanDuration::parse("1d").unwrap().get(), Duration::from_secs(86_400));
        assert_eq!(HumanDuration::parse("0s").unwrap().get(), Duration::ZERO);
    }

    #[test]
    fn durations_need_a_known_unit() {
        assert!(HumanDuration::parse("60").unwrap_err().contains("expected an integer with a unit"));
        assert!(HumanDuration::parse("5 min").is_err());
        assert!(HumanDuration::parse("1.5s").is_err());
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(ByteSize(128 << 20).to_string(), "128MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
        assert_eq!(HumanDuration::from_secs(300).to_string(), "5m");
        assert_eq!(HumanDuration(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn deserialize_accepts_integers_for_sizes_but_not_durations() {
        let size: ByteSize = serde_norway::from_str("1048576").unwrap();
        assert_eq!(size, ByteSize(1 << 20));
        let size: ByteSize = serde_norway::from_str("128MiB").unwrap();
        assert_eq!(size, ByteSize(128 << 20));
        let err = serde_norway::from_str::<HumanDuration>("60").unwrap_err().to_string();
        assert!(err.contains("duration `60` has no unit"), "{err}");
    }
}
