//! When things are due: `[schedule] check = "daily"` (or `"12h"`, or a cron expression
//! such as `"0 6 * * *"`, in UTC), durations such as `"10m"`, and a jitter per domain that
//! spreads a thousand checks over the window instead of one second.

use std::time::Duration;

/// When domains are checked.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckSchedule {
    /// Every so long after the last check.
    Every(Duration),
    /// At the times a cron expression names (UTC).
    Cron(Cron),
}

/// A duration as the configuration writes it: `90s`, `10m`, `1h`, `7d`, `0s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("`{text}` is not a duration: write 90s, 10m, 1h or 7d"))?;
    let secs = match unit.trim() {
        "s" | "sec" | "secs" | "seconds" | "" if !unit.is_empty() || n == 0 => n,
        "m" | "min" | "minutes" => n * 60,
        "h" | "hours" => n * 3600,
        "d" | "days" => n * 86_400,
        _ => return Err(format!("`{text}` is not a duration: write 90s, 10m, 1h or 7d")),
    };
    Ok(Duration::from_secs(secs))
}

impl CheckSchedule {
    /// `daily`, `hourly`, `weekly`, a duration (`12h`), or a five-field cron expression.
    pub fn parse(text: &str) -> Result<CheckSchedule, String> {
        let t = text.trim();
        match t {
            "daily" => return Ok(CheckSchedule::Every(Duration::from_secs(86_400))),
            "hourly" => return Ok(CheckSchedule::Every(Duration::from_secs(3600))),
            "weekly" => return Ok(CheckSchedule::Every(Duration::from_secs(7 * 86_400))),
            _ => {}
        }
        if t.split_whitespace().count() == 5 {
            return Cron::parse(t).map(CheckSchedule::Cron);
        }
        match parse_duration(t) {
            Ok(d) if d >= Duration::from_secs(60) => Ok(CheckSchedule::Every(d)),
            Ok(_) => Err(format!("`{text}`: check at most once a minute")),
            Err(_) => Err(format!(
                "`{text}` is not a schedule: write \"daily\", \"hourly\", a duration such as \"12h\", or a cron expression such as \"0 6 * * *\""
            )),
        }
    }

    /// When a domain checked at `checked` is next due; `spread` (0..jitter) is the
    /// domain's own offset. A little early rather than late, so a daily cron job finds it due.
    pub fn next_due(&self, checked: i64, spread: i64) -> i64 {
        match self {
            CheckSchedule::Every(d) => {
                let period = d.as_secs() as i64;
                // Five percent early (at most an hour): the next pass one period later
                // finds the domain due even when this one started a little late.
                checked + period - (period / 20).min(3600) + spread
            }
            CheckSchedule::Cron(c) => c.next_after(checked).unwrap_or(checked + 86_400) + spread,
        }
    }
}

/// A domain's offset within the jitter window: stable (the same every day), spread evenly.
pub fn spread(domain: &str, jitter: Duration) -> i64 {
    let window = jitter.as_secs();
    if window == 0 {
        return 0;
    }
    // FNV-1a: stable across builds and machines.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in domain.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % window) as i64
}

/// A five-field cron expression (minute hour day-of-month month day-of-week), in UTC:
/// `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists, month and day names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Day of month and day of week both restricted: either matches (cron's rule).
    either_day: bool,
}

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; max as usize + 1];
    let restricted = text != "*";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("`{part}`: the step is not a number"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("`{part}`: a step of 0"));
        }
        let value = |v: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                return Ok(i as u32 + min);
            }
            let n: u32 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
            // Sunday may be 7.
            let n = if max == 6 && n == 7 { 0 } else { n };
            if n < min || n > max { Err(format!("{n} is outside {min}-{max}")) } else { Ok(n) }
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("`{part}`: the range runs backwards"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, restricted))
}

impl Cron {
    /// Parses a five-field expression.
    pub fn parse(text: &str) -> Result<Cron, String> {
        const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
        const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let f: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = f.as_slice() else {
            return Err(format!("`{text}`: a cron expression has five fields (minute hour day month weekday)"));
        };
        let bad = |which: &str, e: String| format!("`{text}`, {which} field: {e}");
        let (minutes, _) = field(m, 0, 59, &[]).map_err(|e| bad("minute", e))?;
        let (hours, _) = field(h, 0, 23, &[]).map_err(|e| bad("hour", e))?;
        let (days, dom_r) = field(dom, 1, 31, &[]).map_err(|e| bad("day-of-month", e))?;
        let (months, _) = field(mon, 1, 12, MONTHS).map_err(|e| bad("month", e))?;
        let (weekdays, dow_r) = field(dow, 0, 6, DAYS).map_err(|e| bad("day-of-week", e))?;
        Ok(Cron { minutes, hours, days, months, weekdays, either_day: dom_r && dow_r })
    }

    /// The first matching minute strictly after `t` (seconds since 1970), within a year
    /// and a day; `None` for an expression that never matches (`0 0 31 2 *`).
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let mut minute = t.div_euclid(60) + 1;
        let end = minute + 367 * 24 * 60;
        while minute < end {
            let secs = minute * 60;
            let days = secs.div_euclid(86_400);
            let (_, month, day) = civil(days);
            let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
            let day_ok = if self.either_day {
                self.days[day as usize] || self.weekdays[weekday]
            } else {
                self.days[day as usize] && self.weekdays[weekday]
            };
            if !self.months[month as usize] || !day_ok {
                minute = (days + 1) * 24 * 60;
                continue;
            }
            let in_day = secs.rem_euclid(86_400);
            let (hour, min) = ((in_day / 3600) as usize, (in_day % 3600 / 60) as usize);
            if !self.hours[hour] {
                minute = days * 24 * 60 + (hour as i64 + 1) * 60;
                continue;
            }
            if self.minutes[min] {
                return Some(secs);
            }
            minute += 1;
        }
        None
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// RFC 3339 in UTC (`2026-12-01T06:00:00Z`) for seconds since 1970.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Seconds since 1970 from RFC 3339 (`2026-12-01T06:00:00Z`, an offset, or a date alone).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (t, None),
    };
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (the inverse of `civil`).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut secs = days * 86_400;
    if let Some(time) = time {
        let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
            Some(i) => time.split_at(i),
            None => (time, ""),
        };
        let mut c = clock.split(':');
        let h: i64 = c.next()?.parse().ok()?;
        let min: i64 = c.next()?.parse().ok()?;
        let s: f64 = c.next().unwrap_or("0").parse().ok()?;
        if h > 23 || min > 59 || !(0.0..61.0).contains(&s) {
            return None;
        }
        secs += h * 3600 + min * 60 + s as i64;
        if let Some(sign) = offset.strip_prefix(['+', '-']).map(|rest| (offset.starts_with('-'), rest)) {
            let (negative, rest) = sign;
            let (oh, om) = rest.split_once(':').unwrap_or((rest, "0"));
            let delta = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60;
            secs += if negative { delta } else { -delta };
        }
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_schedules() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(parse_duration("ten minutes").is_err());
        assert!(matches!(CheckSchedule::parse("daily").unwrap(), CheckSchedule::Every(d) if d.as_secs() == 86_400));
        assert!(CheckSchedule::parse("0 6 * * *").is_ok());
        assert!(CheckSchedule::parse("sometimes").unwrap_err().contains("cron expression"));
        assert!(CheckSchedule::parse("61 * * * *").is_err());
    }

    #[test]
    fn cron_next() {
        let c = Cron::parse("0 6 * * *").unwrap();
        let t = parse_rfc3339("2026-12-01T07:00:00Z").unwrap();
        assert_eq!(rfc3339(c.next_after(t).unwrap()), "2026-12-02T06:00:00Z");
        let weekdays = Cron::parse("30 9 * * mon-fri").unwrap();
        let sat = parse_rfc3339("2026-12-05T10:00:00Z").unwrap();
        assert_eq!(rfc3339(weekdays.next_after(sat).unwrap()), "2026-12-07T09:30:00Z");
        let every15 = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(
            rfc3339(every15.next_after(parse_rfc3339("2026-12-01T07:01:00Z").unwrap()).unwrap()),
            "2026-12-01T07:15:00Z"
        );
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(0), None);
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-12-01T06:00:00+01:00"), parse_rfc3339("2026-12-01T05:00:00Z"));
        assert_eq!(parse_rfc3339("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_rfc3339("not a date"), None);
        let t = 1_795_350_645;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert!(spread("example.com", Duration::from_secs(600)) < 600);
        assert_eq!(spread("example.com", Duration::ZERO), 0);
    }
}
