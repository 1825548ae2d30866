//! Charts drawn on the server as SVG: a pass-rate sparkline per domain and messages per
//! day, passing and failing, stacked. Only numbers and dates reach the SVG; colours are
//! presentation attributes, so the stylesheet policy needs no inline style.

use crate::html::esc;
use ses_dmarc_reports::summary::DayTotals;
use std::fmt::Write;

const DAY: i64 = 86_400;

/// `days` consecutive days ending with the day of `now`, each with its totals (zero when
/// no report covers it).
fn window(daily: &[DayTotals], days: i64, now: i64) -> Vec<DayTotals> {
    let last = now.div_euclid(DAY) * DAY;
    (0..days)
        .map(|i| {
            let day = last - (days - 1 - i) * DAY;
            daily.iter().find(|d| d.day == day).copied().unwrap_or(DayTotals { day, ..DayTotals::default() })
        })
        .collect()
}

fn date(day: i64) -> String {
    ses_dmarc_monitor::schedule::rfc3339(day).chars().take(10).collect()
}

/// The DMARC pass rate per day over `days` days as a small line (days without messages
/// leave a gap).
pub(crate) fn sparkline(daily: &[DayTotals], days: i64, now: i64) -> String {
    let (w, h) = (120.0_f64, 24.0_f64);
    let points = window(daily, days, now);
    let step = w / (days.max(2) - 1) as f64;
    let mut svg = format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"DMARC pass rate per day\">"
    );
    let mut run = String::new();
    let flush = |run: &mut String, svg: &mut String| {
        if run.trim().contains(' ') {
            let _ = write!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#2b7a4b\" stroke-width=\"1.5\"/>",
                run.trim()
            );
        } else if !run.is_empty() {
            let mut xy = run.trim().split(',');
            let (x, y) = (xy.next().unwrap_or("0"), xy.next().unwrap_or("0"));
            let _ = write!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"1.5\" fill=\"#2b7a4b\"/>");
        }
        run.clear();
    };
    for (i, d) in points.iter().enumerate() {
        if d.messages == 0 {
            flush(&mut run, &mut svg);
            continue;
        }
        let rate = d.dmarc_pass as f64 / d.messages as f64;
        let _ = write!(run, " {:.1},{:.1}", i as f64 * step, 2.0 + (1.0 - rate) * (h - 4.0));
    }
    flush(&mut run, &mut svg);
    svg.push_str("</svg>");
    svg
}

/// Whether day `i` of `n` gets a date under it: the last day and every seventh before it,
/// and the first day when it is not crowded against the next labelled one.
fn day_labelled(i: usize, n: usize) -> bool {
    let last = n.saturating_sub(1);
    if n <= 10 {
        return i == 0 || i == last;
    }
    (last - i).is_multiple_of(7) || (i == 0 && last % 7 >= 3)
}

/// Messages per day over `days` days: passing (green) under failing (red), with the
/// largest day's count on the axis and a tooltip per day.
pub(crate) fn stacked_days(daily: &[DayTotals], days: i64, now: i64) -> String {
    let points = window(daily, days, now);
    let (w, h, left, bottom) = (720.0_f64, 200.0_f64, 56.0_f64, 22.0_f64);
    let max = points.iter().map(|d| d.messages).max().unwrap_or(0).max(1) as f64;
    let slot = (w - left) / days.max(1) as f64;
    let bar = (slot - 2.0).max(1.0);
    let plot = h - bottom - 6.0;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"Messages per day, passing and failing DMARC\">"
    );
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"#999\"/>\
         <text x=\"{tx}\" y=\"12\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">{max}</text>\
         <text x=\"{tx}\" y=\"{y}\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">0</text>",
        y = 6.0 + plot,
        tx = left - 6.0,
        max = max as u64,
    );
    for (i, d) in points.iter().enumerate() {
        let x = left + i as f64 * slot + 1.0;
        let pass_h = plot * d.dmarc_pass as f64 / max;
        let fail_h = plot * d.messages.saturating_sub(d.dmarc_pass) as f64 / max;
        let base = 6.0 + plot;
        let label = format!(
            "{}: {} messages, {} pass, {} fail",
            date(d.day),
            d.messages,
            d.dmarc_pass,
            d.messages - d.dmarc_pass
        );
        let _ = write!(svg, "<g class=\"day\"><title>{}</title>", esc(&label));
        if d.dmarc_pass > 0 {
            let _ = write!(
                svg,
                "<rect class=\"pass\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{pass_h:.1}\" fill=\"#2b7a4b\"/>",
                base - pass_h
            );
        }
        if d.messages > d.dmarc_pass {
            let _ = write!(
                svg,
                "<rect class=\"fail\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{fail_h:.1}\" fill=\"#c0392b\"/>",
                base - pass_h - fail_h
            );
        }
        svg.push_str("</g>");
        if day_labelled(i, points.len()) {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#555\">{}</text>",
                x + bar / 2.0,
                h - 6.0,
                &date(d.day)[5..]
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_labels_never_crowd() {
        for n in 1..=60 {
            let labelled: Vec<usize> = (0..n).filter(|&i| day_labelled(i, n)).collect();
            assert!(labelled.contains(&(n - 1)), "the last day of {n}");
            for pair in labelled.windows(2) {
                assert!(pair[1] - pair[0] >= 3 || n <= 3, "{n} days: {labelled:?}");
            }
        }
    }

    fn day(n: i64, messages: u64, pass: u64) -> DayTotals {
        DayTotals { day: n * DAY, messages, dmarc_pass: pass }
    }

    #[test]
    fn a_window_fills_missing_days_with_zero() {
        let w = window(&[day(100, 10, 9)], 3, 101 * DAY + 5);
        assert_eq!(w.iter().map(|d| (d.day / DAY, d.messages)).collect::<Vec<_>>(), [(99, 0), (100, 10), (101, 0)]);
    }

    #[test]
    fn bars_stack_passing_under_failing_and_days_without_mail_draw_nothing() {
        let svg = stacked_days(&[day(100, 10, 5), day(101, 4, 4)], 3, 101 * DAY);
        assert_eq!(svg.matches("class=\"pass\"").count(), 2);
        assert_eq!(svg.matches("class=\"fail\"").count(), 1);
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("1970-04-11: 10 messages, 5 pass, 5 fail"), "{svg}");
    }

    #[test]
    fn a_sparkline_breaks_where_there_is_no_mail() {
        let svg = sparkline(&[day(98, 10, 10), day(99, 10, 5), day(101, 10, 0)], 4, 101 * DAY);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
    }
}
