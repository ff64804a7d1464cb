//! "Did you mean": the one rule for suggesting a known name for a misspelt one, used by the
//! config loader (unknown keys and variants) and the partition template (unknown fields).

/// The known name closest to `typo`, if it is close enough to be a likely misspelling.
///
/// Distance is `strsim::osa_distance` (Levenshtein plus adjacent transpositions, so `gruop`
/// is one edit from `group`) on lower-cased names, so a wrong case alone always matches.
/// Close enough means at most a third of the typo's length, and at least one edit (rustc's
/// rule for its own suggestions): `groupp` → `group`, `alt` → `lat`, but `zzz` → nothing.
/// Ties go to the name listed first.
pub fn closest<'a>(typo: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typo_lower = typo.to_lowercase();
    let limit = typo.chars().count().max(3) / 3;
    let mut best: Option<(usize, &'a str)> = None;
    for name in names {
        let distance = strsim::osa_distance(&typo_lower, &name.to_lowercase());
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, name));
        }
    }
    best.map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn small_typos_case_and_transpositions_match() {
        let kafka = ["brokers", "topics", "group", "start", "session_timeout", "options"];
        assert_eq!(closest("groupp", kafka), Some("group"));
        assert_eq!(closest("gruop", kafka), Some("group"));
        assert_eq!(closest("sesion_timeout", kafka), Some("session_timeout"));
        assert_eq!(closest("Group", kafka), Some("group"));
        assert_eq!(closest("alt", ["city", "lat"]), Some("lat"));
        assert_eq!(closest("compresion", ["compression", "compression_level"]), Some("compression"));
    }

    #[test]
    fn far_names_and_empty_lists_give_nothing() {
        assert_eq!(closest("zzz", ["brokers", "group"]), None);
        assert_eq!(closest("altitude", ["city", "lat"]), None);
        assert_eq!(closest("id", ["ts"]), None, "two edits in a two-letter name is not a typo");
        assert_eq!(closest("x", []), None);
    }

    #[test]
    fn the_nearest_wins_and_ties_go_to_the_first() {
        assert_eq!(closest("grup", ["groups", "group"]), Some("group"));
        assert_eq!(closest("ab", ["ac", "ad"]), Some("ac"));
    }
}
