//! Durations in config files and on command lines: a whole number and a
//! unit, `ms`, `s`, `m` or `h` (`"500ms"`, `"10s"`, `"5m"`, `"1h"`).
//!
//! The unit is required: a bare `"10"` could mean seconds or milliseconds,
//! and guessing wrong is a thousandfold error.

use std::fmt;
use std::str::FromStr;

/// A [`std::time::Duration`] that parses (and deserializes) from the grammar
/// above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// Parses `s` (see the module docs); the error says what is wrong.
pub fn parse(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {s:?} has no unit (ms, s, m, h)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {s:?} does not start with a number"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(format!("duration {s:?}: unit must be ms, s, m or h")),
    };
    Ok(std::time::Duration::from_millis(ms))
}

/// For `#[serde(deserialize_with = "daemon::duration::deserialize")]` on a
/// plain [`std::time::Duration`] field.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::time::Duration, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse(s).map(Duration)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d).map(Duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl fmt::Display for Duration {
    /// Prints in the grammar `parse` reads, largest exact unit first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn units() {
        assert_eq!(parse("250ms").unwrap(), Std::from_millis(250));
        assert_eq!(parse("10s").unwrap(), Std::from_secs(10));
        assert_eq!(parse("5m").unwrap(), Std::from_secs(300));
        assert_eq!(parse("1h").unwrap(), Std::from_secs(3600));
        assert_eq!(parse(" 2s ").unwrap(), Std::from_secs(2));
    }

    #[test]
    fn rejects_bare_numbers_and_unknown_units() {
        for bad in ["10", "", "s", "1d", "1.5s", "-1s", "10 s"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse("10").unwrap_err().contains("no unit"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["0s", "250ms", "10s", "5m", "1h", "90s"] {
            assert_eq!(s.parse::<Duration>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn deserializes() {
        #[derive(serde::Deserialize)]
        struct C {
            a: Duration,
            #[serde(deserialize_with = "deserialize")]
            b: Std,
        }
        let c: C = toml::from_str("a = \"1h\"\nb = \"500ms\"").unwrap();
        assert_eq!(c.a.0, Std::from_secs(3600));
        assert_eq!(c.b, Std::from_millis(500));
        let e = toml::from_str::<C>("a = \"10\"\nb = \"1s\"").err().unwrap();
        assert!(e.to_string().contains("no unit"), "{e}");
    }
}
