//! The `Date` header value (RFC 9110 §5.6.7 IMF-fixdate), cached per second, and the log timestamp.
//!
//! Why a cache: in a hello-world benchmark the server does little besides parse a few bytes and
//! write a few more, and formatting a calendar date is a visible share of that. The value only
//! changes once a second, so the event loop refreshes it at most once a second and every
//! response copies 29 ready bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// The current `Date` header value, recomputed only when the second changes.
#[derive(Clone, Debug)]
pub struct DateCache {
    second: u64,
    text: [u8; DATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut cache = DateCache {
            second: u64::MAX,
            text: [0; DATE_LEN],
        };
        cache.update(SystemTime::now());
        cache
    }
}

impl DateCache {
    /// Brings the cached value up to `now`; cheap when the second has not changed.
    pub fn update(&mut self, now: SystemTime) {
        let second = unix_seconds(now);
        if second != self.second {
            self.second = second;
            self.text = imf_fixdate(second);
        }
    }

    /// The header value, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn value(&self) -> &[u8] {
        &self.text
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub fn imf_fixdate(unix: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let c = Civil::from_unix(unix);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[((unix / 86_400) % 7) as usize]);
    put2(&mut out[5..7], c.day);
    out[8..11].copy_from_slice(MONTHS[(c.month - 1) as usize]);
    put4(&mut out[12..16], c.year);
    put2(&mut out[17..19], c.hour);
    put2(&mut out[20..22], c.minute);
    put2(&mut out[23..25], c.second);
    out
}

/// An RFC 3339 UTC timestamp with milliseconds for log lines: `2026-11-24T14:05:00.123Z`.
pub fn rfc3339_millis(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let c = Civil::from_unix(since.as_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        since.subsec_millis()
    )
}

/// A UTC calendar time.
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// Howard Hinnant's `civil_from_days`, valid for every date after 1970.
    fn from_unix(unix: u64) -> Civil {
        let days = unix / 86_400;
        let secs = (unix % 86_400) as u32;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400) as u32 + u32::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
}

fn put2(out: &mut [u8], n: u32) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

fn put4(out: &mut [u8], n: u32) {
    put2(&mut out[..2], n / 100);
    put2(&mut out[2..], n % 100);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rfc_9110_example() {
        // The example date of RFC 9110 §5.6.7.
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn leap_day() {
        assert_eq!(
            &imf_fixdate(1_709_210_096),
            b"Thu, 29 Feb 2024 12:34:56 GMT"
        );
    }

    #[test]
    fn log_timestamp() {
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_042);
        assert_eq!(rfc3339_millis(t), "1994-11-06T08:49:37.042Z");
    }
}
