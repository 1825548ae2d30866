//! Terminal styling: colour only on a terminal, and never when NO_COLOR is set.

use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    colour: bool,
}

/// `--color`: when to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal that can show colour (not `TERM=dumb`), unless `NO_COLOR` is set.
    Auto,
    /// Always, even in a pipe.
    Always,
    /// Never.
    Never,
}

/// The `--color` of this run (0 auto, 1 always, 2 never).
static CHOICE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets `--color` for the rest of the run.
pub(crate) fn set_color(choice: ColorChoice) {
    let v = match choice {
        ColorChoice::Auto => 0,
        ColorChoice::Always => 1,
        ColorChoice::Never => 2,
    };
    CHOICE.store(v, std::sync::atomic::Ordering::Relaxed);
}

fn colour(terminal: bool) -> bool {
    match CHOICE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => terminal && colour_allowed(),
    }
}

impl Style {
    pub(crate) fn for_stdout() -> Self {
        Style { colour: colour(std::io::stdout().is_terminal()) }
    }

    pub(crate) fn for_stderr() -> Self {
        Style { colour: colour(std::io::stderr().is_terminal()) }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub(crate) fn red(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub(crate) fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub(crate) fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

pub(crate) fn error(out: &mut impl Write, message: &str) {
    let s = Style::for_stderr();
    let _ = writeln!(out, "{} {message}", s.red(&s.bold("error:")));
}

pub(crate) fn warning(out: &mut impl Write, message: &str) {
    let s = Style::for_stderr();
    let _ = writeln!(out, "{} {message}", s.yellow(&s.bold("warning:")));
}

/// `1 report`, `2 reports`: a count with its noun.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// Text from outside (DNS, reports, files, mail) made safe for a terminal: control
/// characters (ESC, BEL, NUL, ...) are shown as `\u{..}` escapes instead of acting.
pub(crate) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() && c != '\t' { c.escape_unicode().to_string() } else { c.to_string() })
            .collect(),
    )
}

/// `--format` of the commands that print either text for people or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutFormat {
    Human,
    Json,
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since 1970.
pub(crate) fn utc_date(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to the civil calendar (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc_date(1_795_350_645), "2026-11-22 12:30 UTC");
        assert_eq!(super::utc_date(-86_400), "1969-12-31 00:00 UTC");
    }
}
