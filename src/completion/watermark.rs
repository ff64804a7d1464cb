//! The table's event-time watermark as a pure function of what one pass learned about each
//! source partition (docs/design/partition-completion.md, decision 4 and section 4).

/// One source partition as a completion pass sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// `topic[partition]`, for logs and the status.
    pub source: String,
    /// The greatest clock value (µs) the partition has *published*; `None` while unknown (no
    /// published manifest with `event_time` yet).
    pub reached: Option<i64>,
    /// How long (ms, on the store's clock) the partition has not committed: since its newest
    /// manifest, or, for a log that never committed, since the completer first saw it empty.
    pub quiet_ms: u64,
    /// Whether nothing is left to land (the source's end equals the committed position);
    /// `None` when not asked (the partition has not been quiet long enough) or unanswered.
    pub caught_up: Option<bool>,
}

/// What the watermark is and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watermark {
    /// `W` (µs): every non-idle partition has published rows up to `W + allowed_lateness`;
    /// `None` while some partition's event time is unknown, or there is no partition at all.
    pub at: Option<i64>,
    /// The partition holding `W` where it is (or holding it unknown).
    pub held_by: Option<String>,
    /// Partitions counted idle: quiet for `idle_timeout` with nothing left to land. They no
    /// longer hold `W` back: they count at the store's now.
    pub idle: Vec<String>,
}

/// `W = min over p of wm_p`, with `wm_p = reached_p − lateness` and, for an idle `p`,
/// `wm_p = max(reached_p, now) − lateness`. A partition without `reached` that is not idle
/// makes `W` unknown: a partition whose event time is not known yet may still publish rows of
/// any age.
pub fn watermark(parts: &[Progress], now_us: i64, lateness_us: i64, idle_timeout_ms: u64) -> Watermark {
    let mut out = Watermark::default();
    let mut lowest: Option<(i64, &str)> = None;
    for p in parts {
        let idle = p.quiet_ms >= idle_timeout_ms && p.caught_up == Some(true);
        let mark = if idle {
            out.idle.push(p.source.clone());
            Some(p.reached.map_or(now_us, |r| r.max(now_us)))
        } else {
            p.reached
        };
        match mark {
            None => {
                return Watermark { at: None, held_by: Some(p.source.clone()), idle: out.idle };
            }
            Some(m) => {
                if lowest.is_none_or(|(l, _)| m < l) {
                    lowest = Some((m, &p.source));
                }
            }
        }
    }
    if let Some((m, source)) = lowest {
        out.at = Some(m.saturating_sub(lateness_us));
        out.held_by = Some(source.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;
    const IDLE_MS: u64 = 300_000;

    fn p(source: &str, reached: Option<i64>, quiet_ms: u64, caught_up: Option<bool>) -> Progress {
        Progress { source: source.into(), reached, quiet_ms, caught_up }
    }

    fn w(parts: &[Progress]) -> Watermark {
        watermark(parts, 1000 * MIN, 10 * MIN, IDLE_MS)
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark_minus_the_lateness() {
        let got = w(&[p("t[0]", Some(500 * MIN), 0, None), p("t[1]", Some(400 * MIN), 0, None)]);
        assert_eq!((got.at, got.held_by.as_deref()), (Some(390 * MIN), Some("t[1]")));
        assert!(got.idle.is_empty());
    }

    #[test]
    fn an_unknown_partition_holds_it_unknown_until_it_is_idle() {
        let got = w(&[p("t[0]", Some(500 * MIN), 0, None), p("t[1]", None, 0, None)]);
        assert_eq!((got.at, got.held_by.as_deref()), (None, Some("t[1]")));
        let idle_empty = w(&[p("t[0]", Some(500 * MIN), 0, None), p("t[1]", None, IDLE_MS, Some(true))]);
        assert_eq!(idle_empty.at, Some(490 * MIN), "an idle empty partition counts at the store's now");
        assert_eq!(idle_empty.idle, ["t[1]"]);
    }

    #[test]
    fn quiet_is_not_idle_while_something_is_left_to_land() {
        let behind = w(&[p("t[0]", Some(500 * MIN), IDLE_MS * 10, Some(false))]);
        assert_eq!(behind.at, Some(490 * MIN), "held at what it published");
        assert!(behind.idle.is_empty());
        let unasked = w(&[p("t[0]", Some(500 * MIN), IDLE_MS * 10, None)]);
        assert!(unasked.idle.is_empty(), "an unanswered end is not idle");
        let recent = w(&[p("t[0]", Some(500 * MIN), IDLE_MS - 1, Some(true))]);
        assert!(recent.idle.is_empty(), "not quiet for long enough");
    }

    #[test]
    fn idle_partitions_count_at_now_or_at_what_they_reached_if_later() {
        let all_idle = w(&[p("t[0]", Some(500 * MIN), IDLE_MS, Some(true)), p("t[1]", None, IDLE_MS, Some(true))]);
        assert_eq!(all_idle.at, Some(990 * MIN));
        assert_eq!(all_idle.idle.len(), 2);
        let ahead_of_the_store = w(&[p("t[0]", Some(2000 * MIN), IDLE_MS, Some(true))]);
        assert_eq!(ahead_of_the_store.at, Some(1990 * MIN), "a store clock behind the events does not lower it");
    }

    #[test]
    fn no_partitions_no_watermark() {
        assert_eq!(w(&[]), Watermark::default());
    }
}
