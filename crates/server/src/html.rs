//! HTML written by hand, with every outside string escaped: [`esc`] for text and
//! attribute values, [`seg`] for a path segment inside a URL. Pages are plain HTML and
//! inline SVG: no script, so the Content-Security-Policy forbids every script.

use std::fmt::{self, Display, Write};

/// Text or an attribute value, escaped for HTML (`&<>"'`).
pub(crate) struct Esc<'a>(pub(crate) &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `s`, escaped for HTML text or a quoted attribute.
pub(crate) fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

/// A URL path segment or query value, percent-encoded (then safe in an attribute too).
pub(crate) struct Seg<'a>(&'a str);

impl Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                f.write_char(b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// `s` as a percent-encoded URL segment.
pub(crate) fn seg(s: &str) -> Seg<'_> {
    Seg(s)
}

/// Who is looking, for the page's header.
pub(crate) struct Viewer<'a> {
    pub(crate) name: &'a str,
    pub(crate) admin: bool,
    pub(crate) csrf: Option<&'a str>,
}

/// A whole page around `body`.
pub(crate) fn page(title: &str, viewer: Option<&Viewer<'_>>, body: &str) -> String {
    let mut h = String::with_capacity(body.len() + 2048);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · ses-dmarc</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body>",
        esc(title)
    );
    h.push_str("<header><a class=\"brand\" href=\"/\">ses-dmarc</a>");
    if let Some(v) = viewer {
        h.push_str("<nav><a href=\"/\">Domains</a><a href=\"/events\">Events</a>");
        if v.admin {
            h.push_str("<a href=\"/admin\">Admin</a>");
        }
        h.push_str("</nav><span class=\"who\">");
        let _ = write!(h, "{}", esc(v.name));
        if let Some(csrf) = v.csrf {
            let _ = write!(
                h,
                "<form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Log out</button></form>",
                esc(csrf)
            );
        }
        h.push_str("</span>");
    }
    h.push_str("</header><main>");
    h.push_str(body);
    h.push_str("</main></body></html>");
    h
}

/// Seconds as an age people read: `5 min`, `3 h`, `2 days`.
pub(crate) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=172_799 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} days", (s + 43_200) / 86_400),
    }
}

/// A rate as a percentage with one decimal (`97.5%`), or `–` without one.
pub(crate) fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "–".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_and_urls_give_meaning_to() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>").to_string(),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("plain").to_string(), "plain");
        assert_eq!(seg("a b/\"c\"?é").to_string(), "a%20b%2F%22c%22%3F%C3%A9");
        assert_eq!(seg("example.com").to_string(), "example.com");
    }

    #[test]
    fn ages_and_rates_read_as_people_say_them() {
        assert_eq!(age(30), "30 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(7200), "2 h");
        assert_eq!(age(3 * 86_400), "3 days");
        assert_eq!(percent(Some(0.975)), "97.5%");
        assert_eq!(percent(None), "–");
    }
}
