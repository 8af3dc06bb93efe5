//! Human durations on the command line: `250ms`, `90`, `90s`, `1.5m`, `1h30m`.
//!
//! Hand-written because no well-kept crate accepts both a bare number of
//! seconds (flock's `-w 10`) and fractional compound forms.

use std::time::Duration;

/// Parses a duration. A bare number means seconds; units are `ms`, `s`, `m`,
/// `h`, `d`; components may be repeated (`1h30m`) and fractional (`0.5s`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let bad = || format!("invalid duration {text:?} (examples: 250ms, 90, 90s, 5m, 1h30m)");
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "" if num_len == s.len() => 1.0,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("duration {text:?} is too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration for people: `850ms`, `42s`, `12m03s`, `3h05m`, `2d04h`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 1 {
        return format!("{}ms", d.as_millis());
    }
    if secs < 60 {
        return format!("{secs}s");
    }
    if secs < 3600 {
        return format!("{}m{:02}s", secs / 60, secs % 60);
    }
    if secs < 86400 {
        return format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60);
    }
    format!("{}d{:02}h", secs / 86400, (secs % 86400) / 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86400));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "s", "5x", "-1", "1..2", "1h30", "abc", "1e3", "5 m"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(723)), "12m03s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3h05m");
        assert_eq!(human(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d04h");
    }
}
