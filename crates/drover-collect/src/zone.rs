//! The time zone of this machine, which the agent reports as the facts
//! `time.zone` (an IANA name) and `time.utc_offset` (now, `+09:00`):
//! timestamps its programs write without a zone are its wall-clock time,
//! and the server reads them so (docs/logs.md, "Event time").
//!
//! Found as the C library finds it: the `TZ` environment variable (a name,
//! or `:name`, or a path into a zoneinfo folder), else `/etc/timezone`,
//! else the zoneinfo file `/etc/localtime` links to; UTC when none names a
//! zone this build knows.

use std::path::Path;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

/// This machine's time zone, and where it was found.
pub fn local_zone() -> (Tz, &'static str) {
    let link = std::fs::read_link("/etc/localtime").ok();
    let etc_timezone = std::fs::read_to_string("/etc/timezone").ok();
    zone_from(std::env::var("TZ").ok().as_deref(), etc_timezone.as_deref(), link.as_deref())
}

/// The zone named by the `TZ` variable, the contents of `/etc/timezone`
/// or the target of the `/etc/localtime` link, in that order; UTC when
/// none names a known zone.
pub fn zone_from(
    tz_variable: Option<&str>,
    etc_timezone: Option<&str>,
    localtime_link: Option<&Path>,
) -> (Tz, &'static str) {
    if let Some(zone) = tz_variable.and_then(zone_of_tz_variable) {
        return (zone, "TZ");
    }
    if let Some(zone) = etc_timezone.and_then(|text| text.lines().next()).and_then(|name| name.trim().parse().ok()) {
        return (zone, "/etc/timezone");
    }
    if let Some(zone) = localtime_link.and_then(zone_of_path) {
        return (zone, "/etc/localtime");
    }
    (Tz::UTC, "default")
}

/// `Asia/Tokyo`, `:Asia/Tokyo` or `/usr/share/zoneinfo/Asia/Tokyo`. POSIX
/// rules (`JST-9`) are not read: the zone is then looked for elsewhere.
fn zone_of_tz_variable(text: &str) -> Option<Tz> {
    let name = text.trim().trim_start_matches(':');
    if name.is_empty() {
        return None;
    }
    if name.starts_with('/') {
        return zone_of_path(Path::new(name));
    }
    name.parse().ok()
}

/// The zone of a zoneinfo file path: what follows `zoneinfo/`.
fn zone_of_path(path: &Path) -> Option<Tz> {
    let text = path.to_str()?;
    let (_, name) = text.rsplit_once("zoneinfo/")?;
    let name = name.strip_prefix("posix/").unwrap_or(name);
    name.parse().ok()
}

/// The zone's offset from UTC at `now_seconds` (seconds since the epoch),
/// as `+09:00` or `-03:30`.
pub fn utc_offset_text(zone: Tz, now_seconds: i64) -> String {
    let Some(now) = chrono::DateTime::from_timestamp(now_seconds, 0) else { return "+00:00".to_owned() };
    let seconds = zone.offset_from_utc_datetime(&now.naive_utc()).fix().local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let magnitude = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", magnitude / 3600, magnitude % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_comes_from_tz_then_etc_timezone_then_the_localtime_link() {
        let link = Path::new("/usr/share/zoneinfo/Europe/Berlin");
        assert_eq!(zone_from(Some("Asia/Tokyo"), Some("UTC\n"), Some(link)), (Tz::Asia__Tokyo, "TZ"));
        assert_eq!(zone_from(Some(":Asia/Tokyo"), None, None).0, Tz::Asia__Tokyo);
        assert_eq!(zone_from(Some("/usr/share/zoneinfo/Asia/Tokyo"), None, None).0, Tz::Asia__Tokyo);
        // A POSIX rule is not a name: the next source decides.
        assert_eq!(zone_from(Some("JST-9"), Some("America/New_York\n"), Some(link)).0, Tz::America__New_York);
        assert_eq!(zone_from(None, None, Some(link)), (Tz::Europe__Berlin, "/etc/localtime"));
        assert_eq!(
            zone_from(None, None, Some(Path::new("../usr/share/zoneinfo/posix/Europe/Berlin"))).0,
            Tz::Europe__Berlin
        );
        assert_eq!(zone_from(None, Some("nonsense"), None), (Tz::UTC, "default"));
    }

    #[test]
    fn offsets_follow_daylight_saving() {
        // 2026-01-15 and 2026-07-15, noon UTC.
        assert_eq!(utc_offset_text(Tz::Asia__Tokyo, 1_768_478_400), "+09:00");
        assert_eq!(utc_offset_text(Tz::Europe__Berlin, 1_768_478_400), "+01:00");
        assert_eq!(utc_offset_text(Tz::Europe__Berlin, 1_784_116_800), "+02:00");
        assert_eq!(utc_offset_text(Tz::Asia__Kolkata, 1_768_478_400), "+05:30");
        assert_eq!(utc_offset_text(Tz::America__St_Johns, 1_768_478_400), "-03:30");
    }
}
