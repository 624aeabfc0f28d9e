//! Durations written as text: ISO 8601 (`PT1H30M`, for `yawl:duration`) and the short form of
//! the legacy vocabulary (`30s`, `500ms`, `5m`, `2h`, `1d`).

/// Returns the milliseconds of an ISO 8601 duration of days, hours, minutes and seconds
/// (`P1DT2H`, `PT0.5S`); years and months have no fixed length and are refused.
pub(crate) fn iso8601_ms(text: &str) -> Option<u64> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: f64 = 0.0;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800_000.0), ('D', 86_400_000.0)][..]),
        (
            time.unwrap_or(""),
            &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)][..],
        ),
    ] {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let index = units.iter().position(|(u, _)| *u == c)?;
            if index < next_unit || number.is_empty() {
                return None;
            }
            next_unit = index + 1;
            let n: f64 = number.parse().ok()?;
            total += n * units[index].1;
            number.clear();
            any = true;
        }
        if !number.is_empty() {
            return None;
        }
    }
    if time == Some("") || !any || !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(total.round() as u64)
}

/// Returns the milliseconds of a short duration: a whole number followed by `ms`, `s`, `m`,
/// `h` or `d` (a bare number is seconds).
pub(crate) fn short_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iso8601_durations() {
        assert_eq!(iso8601_ms("PT1H30M"), Some(5_400_000));
        assert_eq!(iso8601_ms("P1D"), Some(86_400_000));
        assert_eq!(iso8601_ms("PT0.5S"), Some(500));
        assert_eq!(iso8601_ms("P1Y"), None);
        assert_eq!(iso8601_ms("PT"), None);
        assert_eq!(iso8601_ms("P"), None);
        assert_eq!(iso8601_ms("PT1S1H"), None);
    }

    #[test]
    fn reads_short_durations() {
        assert_eq!(short_ms("30s"), Some(30_000));
        assert_eq!(short_ms("500ms"), Some(500));
        assert_eq!(short_ms("2h"), Some(7_200_000));
        assert_eq!(short_ms("s"), None);
        assert_eq!(short_ms("3 weeks"), None);
    }
}
