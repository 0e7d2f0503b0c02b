//! The FTP extensions ftpsd implements, listed once: `FEAT` is built from
//! [`FEATURES`], and `tests/features.py` checks that each listed command is
//! accepted and that no other extension command is.
//!
//! Most are libunftp's; the relay ([`crate::control_channel`]) does the TLS
//! ones and `MFMT`, which libunftp 0.24 lacks: rclone (with `MLSD` and
//! `MDTM`) and lftp's `mirror` set modification times with it, and rclone
//! only uses it when `FEAT` lists it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who answers an extension's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Libunftp,
    Relay,
}

/// One line of the `FEAT` reply.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub line: &'static str,
    pub by: By,
}

/// Every extension, in the order `FEAT` lists them.
pub const FEATURES: &[Feature] = &[
    Feature {
        line: "AUTH TLS",
        by: By::Relay,
    },
    Feature {
        line: "EPSV",
        by: By::Libunftp,
    },
    Feature {
        line: "MDTM",
        by: By::Libunftp,
    },
    Feature {
        line: "MFMT",
        by: By::Relay,
    },
    Feature {
        line: "MLSD",
        by: By::Libunftp,
    },
    Feature {
        line: "MLST",
        by: By::Libunftp,
    },
    Feature {
        line: "PBSZ",
        by: By::Relay,
    },
    Feature {
        line: "PROT",
        by: By::Relay,
    },
    Feature {
        line: "REST STREAM",
        by: By::Libunftp,
    },
    Feature {
        // libunftp's default for accounts that log in with a password.
        line: "SITE MD5",
        by: By::Libunftp,
    },
    Feature {
        line: "SIZE",
        by: By::Libunftp,
    },
    Feature {
        line: "UTF8",
        by: By::Libunftp,
    },
];

/// The reply to `FEAT` (RFC 2389), without its final line end.
pub fn feat_reply() -> String {
    let mut reply = String::from("211-Extensions supported:\r\n");
    for feature in FEATURES {
        reply.push(' ');
        reply.push_str(feature.line);
        reply.push_str("\r\n");
    }
    reply.push_str("211 End");
    reply
}

/// A parsed `MFMT YYYYMMDDHHMMSS[.sss] path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mfmt {
    /// The time as the client wrote it (echoed in the reply).
    pub stamp: String,
    pub time: SystemTime,
    pub path: String,
}

pub const REPLY_MFMT_SYNTAX: &str = "501 Syntax: MFMT YYYYMMDDHHMMSS path (UTC).";

impl Mfmt {
    /// Reads the command's argument; `None` when it is malformed.
    pub fn parse(argument: &str) -> Option<Self> {
        let (stamp, path) = argument.split_once(' ')?;
        if path.is_empty() {
            return None;
        }
        Some(Self {
            stamp: stamp.to_owned(),
            time: parse_time_val(stamp)?,
            path: path.to_owned(),
        })
    }

    /// `213 Modify=...; path`, as the draft and clients expect it.
    pub fn reply(&self) -> String {
        format!("213 Modify={}; {}", self.stamp, self.path)
    }
}

/// An RFC 3659 `time-val` (`YYYYMMDDHHMMSS[.fraction]`, UTC).
fn parse_time_val(stamp: &str) -> Option<SystemTime> {
    let (whole, fraction) = match stamp.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (stamp, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| whole[range].parse::<u32>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(8..10)?, number(10..12)?, number(12..14)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<9}").parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    let since_epoch = Duration::new(seconds.unsigned_abs(), nanos);
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(since_epoch)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(seconds.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn feat_lists_every_feature_once() {
        let reply = feat_reply();
        assert!(reply.starts_with("211-Extensions supported:\r\n AUTH TLS\r\n"));
        assert!(reply.contains("\r\n MFMT\r\n"));
        assert!(reply.ends_with("\r\n211 End"));
        assert_eq!(reply.lines().count(), FEATURES.len() + 2);
    }

    #[test]
    fn mfmt_reads_utc_times() {
        let m = Mfmt::parse("20240229123456 dir/a b.txt").unwrap();
        assert_eq!(
            m.time,
            UNIX_EPOCH + Duration::from_secs(1_709_210_096),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(m.path, "dir/a b.txt");
        assert_eq!(m.reply(), "213 Modify=20240229123456; dir/a b.txt");
        let m = Mfmt::parse("19700101000001.5 x").unwrap();
        assert_eq!(m.time, UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(
            Mfmt::parse("19691231235959 x").unwrap().time,
            UNIX_EPOCH - Duration::from_secs(1)
        );
        for bad in [
            "20240230000000 x",
            "2024022912345 x",
            "20241301000000 x",
            "20240101246000 x",
            "20240101000000",
            "20240101000000 ",
            "2024010100000x x",
            "20240101000000. x",
        ] {
            assert_eq!(Mfmt::parse(bad), None, "{bad}");
        }
    }
}
