//! Exact text → value conversions for the scalar types that JSON has no native form for:
//! decimals (never through `f64`), RFC 3339 timestamps, dates. Hand-written because they run
//! once per field per message and chrono's general parsers are several times slower.

/// Microseconds of 0001-01-01T00:00:00Z, the earliest instant Landfall stores.
pub(crate) const MIN_MICROS: i64 = -62_135_596_800_000_000;
/// Microseconds of 9999-12-31T23:59:59.999999Z, the latest instant Landfall stores.
pub(crate) const MAX_MICROS: i64 = 253_402_300_799_999_999;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Why a decimal literal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not `-?digits(.digits)?([eE][+-]?digits)?`.
    Malformed,
    /// Non-zero digits beyond the declared scale: rounding would silently change the amount.
    TooManyFractionDigits,
    /// More integer digits than `precision - scale` allows.
    Overflow,
}

/// Parses decimal text exactly into the unscaled `i128` of `decimal(precision, scale)`.
///
/// Trailing zeros beyond the scale are fine (`"1.500"` fits `decimal(5,2)`); any non-zero digit
/// beyond it is refused rather than rounded, and so is a value needing more than `precision`
/// digits. Exponents are honoured exactly (`"1.5e2"` = 150).
pub(crate) fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, DecimalError> {
    let b = text.as_bytes();
    let mut pos = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        pos += 1;
    }
    let int_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_digits = &b[int_start..pos];
    if int_digits.is_empty() {
        return Err(DecimalError::Malformed);
    }
    let mut frac_digits: &[u8] = &[];
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_digits = &b[frac_start..pos];
        if frac_digits.is_empty() {
            return Err(DecimalError::Malformed);
        }
    }
    let mut exponent: i64 = 0;
    if pos < b.len() && (b[pos] == b'e' || b[pos] == b'E') {
        pos += 1;
        let exp_negative = match b.get(pos) {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            _ => false,
        };
        let exp_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            // Saturate: a billion-digit exponent is either zero or out of range anyway.
            exponent = exponent.saturating_mul(10).saturating_add(i64::from(b[pos] - b'0'));
            pos += 1;
        }
        if pos == exp_start {
            return Err(DecimalError::Malformed);
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if pos != b.len() {
        return Err(DecimalError::Malformed);
    }

    // value = digits × 10^(exponent − frac_len); unscaled = digits × 10^(that + scale).
    let digits = int_digits.iter().chain(frac_digits.iter()).copied();
    let total = int_digits.len() + frac_digits.len();
    let leading_zeros = digits.clone().take_while(|&d| d == b'0').count();
    if leading_zeros == total {
        return Ok(0);
    }
    let significant = total - leading_zeros;
    let mut shift = exponent.saturating_sub(frac_digits.len() as i64).saturating_add(i64::from(scale));
    let mut keep = significant;
    if shift < 0 {
        let dropped = shift.unsigned_abs().min(significant as u64) as usize;
        if shift.unsigned_abs() > significant as u64 || digits.clone().skip(total - dropped).any(|d| d != b'0') {
            return Err(DecimalError::TooManyFractionDigits);
        }
        keep = significant - dropped;
        shift = 0;
    }
    if keep as i64 + shift > i64::from(precision) {
        return Err(DecimalError::Overflow);
    }
    // ≤ 38 digits always fit i128 (max ≈ 1.7 × 10^38).
    let mut value: i128 = 0;
    for d in digits.skip(leading_zeros).take(keep) {
        value = value * 10 + i128::from(d - b'0');
    }
    for _ in 0..shift {
        value *= 10;
    }
    Ok(if negative { -value } else { value })
}

/// Why a timestamp or date was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeError {
    Malformed(&'static str),
    /// Outside 0001-01-01 … 9999-12-31 (UTC).
    OutOfRange,
}

/// Parses RFC 3339 (`2026-11-25T18:03:12.345+01:00`, `…Z`; `t`/space separators and `z` are
/// accepted as RFC 3339 allows) into UTC microseconds. An offset is required: a naive local
/// time is ambiguous. Digits beyond microseconds are truncated (the column stores micros).
pub(crate) fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    use TimeError::Malformed;
    let b = text.as_bytes();
    if b.len() < 19 {
        return Err(Malformed("too short"));
    }
    let days = parse_date_prefix(b)?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(Malformed("expected `T` between date and time"));
    }
    let hour = two_digits(b, 11).ok_or(Malformed("bad hour"))?;
    let minute = two_digits(b, 14).ok_or(Malformed("bad minute"))?;
    let second = two_digits(b, 17).ok_or(Malformed("bad second"))?;
    if b[13] != b':' || b[16] != b':' {
        return Err(Malformed("expected `hh:mm:ss`"));
    }
    if hour > 23 || minute > 59 {
        return Err(Malformed("time of day out of range"));
    }
    if second > 59 {
        return Err(Malformed("leap seconds are not representable"));
    }
    let mut pos = 19;
    let mut micros: i64 = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let n = pos - start;
        if n == 0 {
            return Err(Malformed("empty fraction of a second"));
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_seconds: i64 = match b.get(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = two_digits(b, pos + 1).ok_or(Malformed("bad offset"))?;
            let om = two_digits(b, pos + 4).ok_or(Malformed("bad offset"))?;
            if b.get(pos + 3) != Some(&b':') || oh > 23 || om > 59 {
                return Err(Malformed("offset must be ±hh:mm"));
            }
            pos += 6;
            let s = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return Err(Malformed("missing offset (`Z` or ±hh:mm)")),
    };
    if pos != b.len() {
        return Err(Malformed("unexpected text after the offset"));
    }
    let seconds = days * SECONDS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    let total = seconds * MICROS_PER_SECOND + micros;
    if !(MIN_MICROS..=MAX_MICROS).contains(&total) {
        return Err(TimeError::OutOfRange);
    }
    Ok(total)
}

/// Epoch milliseconds → microseconds, within the supported year range.
pub(crate) fn epoch_millis_to_micros(millis: i64) -> Result<i64, TimeError> {
    millis.checked_mul(1000).filter(|m| (MIN_MICROS..=MAX_MICROS).contains(m)).ok_or(TimeError::OutOfRange)
}

/// Parses exactly `YYYY-MM-DD` into days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Result<i32, TimeError> {
    let b = text.as_bytes();
    if b.len() != 10 {
        return Err(TimeError::Malformed("expected exactly YYYY-MM-DD"));
    }
    // Years 1..=9999 keep the day number well inside i32.
    Ok(parse_date_prefix(b)? as i32)
}

/// `YYYY-MM-DD` at the start of `b` (at least 10 bytes) → days since the epoch.
fn parse_date_prefix(b: &[u8]) -> Result<i64, TimeError> {
    use TimeError::Malformed;
    let year = match (two_digits(b, 0), two_digits(b, 2)) {
        (Some(hi), Some(lo)) => hi * 100 + lo,
        _ => return Err(Malformed("bad year")),
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err(Malformed("expected YYYY-MM-DD"));
    }
    let month = two_digits(b, 5).ok_or(Malformed("bad month"))?;
    let day = two_digits(b, 8).ok_or(Malformed("bad day"))?;
    if !(1..=12).contains(&month) {
        return Err(Malformed("month out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(Malformed("no such day in that month"));
    }
    if year == 0 {
        return Err(TimeError::OutOfRange);
    }
    Ok(days_from_civil(i64::from(year), month, day))
}

#[inline]
fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    match (b.get(at), b.get(at + 1)) {
        (Some(&h @ b'0'..=b'9'), Some(&l @ b'0'..=b'9')) => Some(u32::from(h - b'0') * 10 + u32::from(l - b'0')),
        _ => None,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `-?[0-9]+` text (a JSON integer or a numeric string) → i64; `None` if malformed.
/// Overflow is reported separately so it can be `out_of_range` rather than `wrong_type`.
pub(crate) fn parse_integer_text(text: &str) -> Option<Result<i64, ()>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i64>().map_err(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("12.345678901234567890", 38, 18), Ok(12_345_678_901_234_567_890));
        assert_eq!(parse_decimal("-12.34", 12, 2), Ok(-1234));
        assert_eq!(parse_decimal("12.3", 12, 2), Ok(1230));
        assert_eq!(parse_decimal("1.500", 5, 2), Ok(150));
        assert_eq!(parse_decimal("-0.00", 5, 2), Ok(0));
        assert_eq!(parse_decimal("1.5e2", 5, 2), Ok(15000));
        assert_eq!(parse_decimal("125E-2", 5, 2), Ok(125));
        assert_eq!(parse_decimal("0e999999999999999999999", 5, 2), Ok(0));
        assert_eq!(parse_decimal("007", 5, 0), Ok(7));
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999999", 38, 0),
            Ok(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
    }

    #[test]
    fn decimals_that_do_not_fit_are_refused() {
        assert_eq!(parse_decimal("1.234", 5, 2), Err(DecimalError::TooManyFractionDigits));
        assert_eq!(parse_decimal("1e-9", 5, 2), Err(DecimalError::TooManyFractionDigits));
        assert_eq!(parse_decimal("1000", 5, 2), Err(DecimalError::Overflow));
        assert_eq!(parse_decimal("999.99", 5, 2), Ok(99999));
        assert_eq!(parse_decimal("1e40", 38, 0), Err(DecimalError::Overflow));
        assert_eq!(parse_decimal("100000000000000000000000000000000000000", 38, 0), Err(DecimalError::Overflow));
        for bad in ["", "-", "1.", ".5", "1e", "1e+", "+1", "1,5", "12a", " 1"] {
            assert_eq!(parse_decimal(bad, 10, 2), Err(DecimalError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_with_offsets_become_utc_micros() {
        let utc = parse_rfc3339("2026-11-25T17:03:12Z").unwrap();
        assert_eq!(utc, 1_795_626_192_000_000);
        assert_eq!(parse_rfc3339("2026-11-25T18:03:12+01:00"), Ok(utc));
        assert_eq!(parse_rfc3339("2026-11-25T12:33:12-04:30"), Ok(utc));
        assert_eq!(parse_rfc3339("2026-11-25t17:03:12.345z"), Ok(utc + 345_000));
        assert_eq!(parse_rfc3339("2026-11-25 17:03:12.123456789Z"), Ok(utc + 123_456));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999999Z"), Ok(-1));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Ok(MIN_MICROS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999999Z"), Ok(MAX_MICROS));
    }

    #[test]
    fn bad_timestamps_say_why() {
        assert_eq!(parse_rfc3339("2026-11-25T17:03:12"), Err(TimeError::Malformed("missing offset (`Z` or ±hh:mm)")));
        assert_eq!(parse_rfc3339("2026-11-25T17:03"), Err(TimeError::Malformed("too short")));
        assert_eq!(parse_rfc3339("2026-11-25T17:03:12."), Err(TimeError::Malformed("empty fraction of a second")));
        assert_eq!(parse_rfc3339("2026-02-30T17:03:12Z"), Err(TimeError::Malformed("no such day in that month")));
        assert_eq!(parse_rfc3339("2026-11-25T24:00:00Z"), Err(TimeError::Malformed("time of day out of range")));
        assert_eq!(parse_rfc3339("2026-11-25T17:03:12.Z"), Err(TimeError::Malformed("empty fraction of a second")));
        assert_eq!(parse_rfc3339("2026-11-25T17:03:12+0100"), Err(TimeError::Malformed("bad offset")));
        assert_eq!(parse_rfc3339("0000-12-31T23:00:00Z"), Err(TimeError::OutOfRange));
        assert_eq!(parse_rfc3339("0001-01-01T00:30:00+01:00"), Err(TimeError::OutOfRange));
        assert_eq!(parse_rfc3339("9999-12-31T23:30:00-01:00"), Err(TimeError::OutOfRange));
    }

    #[test]
    fn dates_and_epoch_millis() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2026-11-25"), Ok(20_782));
        assert_eq!(parse_date("2024-02-29"), Ok(19_782));
        assert_eq!(parse_date("2023-02-29"), Err(TimeError::Malformed("no such day in that month")));
        assert_eq!(parse_date("2026-1-25"), Err(TimeError::Malformed("expected exactly YYYY-MM-DD")));
        assert_eq!(parse_date("0000-01-01"), Err(TimeError::OutOfRange));
        assert_eq!(epoch_millis_to_micros(1_795_626_192_345), Ok(1_795_626_192_345_000));
        assert_eq!(epoch_millis_to_micros(i64::MAX), Err(TimeError::OutOfRange));
        assert_eq!(epoch_millis_to_micros(253_402_300_800_000), Err(TimeError::OutOfRange));
    }

    #[test]
    fn integer_text() {
        assert_eq!(parse_integer_text("-42"), Some(Ok(-42)));
        assert_eq!(parse_integer_text("9223372036854775808"), Some(Err(())));
        assert_eq!(parse_integer_text("+1"), None);
        assert_eq!(parse_integer_text("1.0"), None);
        assert_eq!(parse_integer_text("-"), None);
    }
}
