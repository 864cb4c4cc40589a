//! A webhook's attempts per hour over the last 24 hours as an inline SVG
//! bar chart, drawn here (no JavaScript, no image request): a bar per hour,
//! delivered (blue) below failed (orange, told apart by colour-blind eyes
//! too), a legend with the totals, a `<title>` per hour with its numbers
//! (a tooltip), and the same numbers as a table for screen readers and
//! anyone who wants them exact.

use std::fmt::Write as _;

use hookline_store::{HourCount, HourlyAttempts, stats::MAX_DELIVERIES};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::layout::{table, when};

/// The drawing's size, in its own units (it scales to the page).
const WIDTH: f64 = 568.0;
const HEIGHT: f64 = 176.0;
/// The plot area: bars stand on `BOTTOM`, the tallest reaches `TOP`.
const LEFT: f64 = 44.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 150.0;
/// Each hour's slot, and the bar in it.
const SLOT: f64 = 21.0;
const BAR: f64 = 15.0;

/// Colours of the two series (and of the legend's swatches, in the style
/// sheet: `.swatch.delivered`, `.swatch.failed`).
const DELIVERED: &str = "#2563eb";
const FAILED: &str = "#ea580c";
const NOT_COUNTED: &str = "#e5e7eb";
const INK: &str = "#4b5563";

/// The smallest of 1, 2, 5, 10, 20, 50, … at or above `n`: the top of the
/// scale.
fn scale_top(n: i64) -> i64 {
    let mut step = 1_i64;
    loop {
        for top in [step, 2 * step, 5 * step] {
            if top >= n {
                return top;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// `HH:MM` of a UTC time.
fn clock(at: OffsetDateTime) -> String {
    format!("{:02}:{:02}", at.hour(), at.minute())
}

/// `2026-11-25 03:00–04:00 UTC`.
fn hour_label(hour: &HourCount) -> String {
    let end = hour.start + time::Duration::HOUR;
    let d = hour.start.date();
    format!("{:04}-{:02}-{:02} {}–{} UTC", d.year(), u8::from(d.month()), d.day(), clock(hour.start), clock(end))
}

/// A number of drawing units, to one decimal.
fn units(x: f64) -> String {
    let mut out = String::new();
    let _ = write!(out, "{x:.1}");
    out.strip_suffix(".0").map(str::to_owned).unwrap_or(out)
}

/// Height of `count` on a scale topping at `top`; at least one unit when
/// not zero, so a single failure shows.
fn height(count: i64, top: i64) -> f64 {
    if count <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let h = count as f64 / top as f64 * (BOTTOM - TOP);
    h.max(1.0)
}

/// The chart: legend, drawing and table.
pub(super) fn hourly(chart: &HourlyAttempts) -> Markup {
    let counted: Vec<&HourCount> = chart.hours.iter().filter(|h| chart.counted(h)).collect();
    let delivered: i64 = counted.iter().map(|h| h.delivered).sum();
    let failed: i64 = counted.iter().map(|h| h.failed).sum();
    let top = scale_top(counted.iter().map(|h| h.delivered + h.failed).max().unwrap_or(0).max(1));
    let summary = format!("Attempts per hour over the last 24 hours: {delivered} delivered, {failed} failed");
    html! {
        figure.chart {
            div.scroll {
                svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (units(WIDTH)) " " (units(HEIGHT)) }
                    role="img" aria-labelledby="chart-title" font-size="11" {
                    title id="chart-title" { (summary) }
                    (axes(top))
                    @for (i, hour) in chart.hours.iter().enumerate() {
                        (bar(i, hour, chart.counted(hour), top))
                    }
                }
            }
            figcaption.legend {
                span.swatch.delivered {} " Delivered " strong { (delivered) }
                " · "
                span.swatch.failed {} " Failed " strong { (failed) }
                " · per hour, UTC, the current hour last"
            }
            @if let Some(since) = chart.counted_since {
                p.note {
                    "Counted from " (when(Some(since))) " on: the latest " (MAX_DELIVERIES)
                    " deliveries only (grey hours are not counted)."
                }
            }
        }
        details {
            summary { "The numbers" }
            (table(&["Hour", "Delivered", "Failed"], html! {
                @for hour in chart.hours.iter().rev() {
                    tr {
                        td data-label="Hour" { (hour_label(hour)) }
                        @if chart.counted(hour) {
                            td data-label="Delivered" { (hour.delivered) }
                            td data-label="Failed" { (hour.failed) }
                        } @else {
                            td data-label="Delivered" { "not counted" }
                            td data-label="Failed" { "not counted" }
                        }
                    }
                }
            }))
        }
    }
}

/// The baseline, the top line with its value, and 0.
fn axes(top: i64) -> Markup {
    let right = LEFT + SLOT * 24.0;
    html! {
        g fill=(INK) stroke="none" text-anchor="end" {
            text x=(units(LEFT - 6.0)) y=(units(TOP + 4.0)) { (top) }
            text x=(units(LEFT - 6.0)) y=(units(BOTTOM + 4.0)) { "0" }
        }
        line x1=(units(LEFT)) x2=(units(right)) y1=(units(TOP)) y2=(units(TOP)) stroke="#d1d5db" stroke-dasharray="3 3" {}
        line x1=(units(LEFT)) x2=(units(right)) y1=(units(BOTTOM)) y2=(units(BOTTOM)) stroke=(INK) {}
    }
}

/// One hour: its bars (delivered below failed), its `<title>`, and its
/// time under the axis every six hours.
fn bar(i: usize, hour: &HourCount, counted: bool, top: i64) -> Markup {
    #[allow(clippy::cast_precision_loss)] // at most 24
    let slot = LEFT + SLOT * i as f64;
    let x = units(slot + (SLOT - BAR) / 2.0);
    let w = units(BAR);
    let low = height(hour.delivered, top);
    let high = height(hour.failed, top);
    let label = if counted {
        format!("{}: {} delivered, {} failed", hour_label(hour), hour.delivered, hour.failed)
    } else {
        format!("{}: not counted", hour_label(hour))
    };
    let stamp = hookline_core::format_timestamp(hour.start);
    html! {
        g.hour data-hour=(stamp) data-delivered=(hour.delivered) data-failed=(hour.failed) data-counted=(counted) {
            title { (label) }
            // The whole slot answers to the pointer, bars or not.
            rect x=(units(slot)) y=(units(TOP)) width=(units(SLOT)) height=(units(BOTTOM - TOP)) fill=(if counted { "transparent" } else { NOT_COUNTED }) {}
            @if counted && low > 0.0 {
                rect x=(x) y=(units(BOTTOM - low)) width=(w) height=(units(low)) fill=(DELIVERED) {}
            }
            @if counted && high > 0.0 {
                rect x=(x) y=(units(BOTTOM - low - high)) width=(w) height=(units(high)) fill=(FAILED) {}
            }
            @if hour.start.hour().is_multiple_of(6) {
                text x=(units(slot + SLOT / 2.0)) y=(units(BOTTOM + 16.0)) text-anchor="middle" fill=(INK) { (clock(hour.start)) }
                line x1=(units(slot)) x2=(units(slot)) y1=(units(BOTTOM)) y2=(units(BOTTOM + 4.0)) stroke=(INK) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(counts: &[(usize, i64, i64)]) -> HourlyAttempts {
        let first = hookline_core::parse_timestamp("2026-11-24T04:00:00Z").expect("valid");
        let hours = (0..24)
            .map(|i| {
                let (d, f) = counts.iter().find(|c| c.0 == i).map_or((0, 0), |c| (c.1, c.2));
                HourCount {
                    start: first + time::Duration::hours(i64::try_from(i).expect("small")),
                    delivered: d,
                    failed: f,
                }
            })
            .collect();
        HourlyAttempts { hours, counted_since: None }
    }

    #[test]
    fn scale_tops_are_round() {
        let tops: Vec<i64> = [1, 2, 3, 7, 10, 11, 43, 130, 999].into_iter().map(scale_top).collect();
        assert_eq!(tops, [1, 2, 5, 10, 10, 20, 50, 200, 1000]);
    }

    /// 24 hours, each with its numbers in a `<title>` and data attributes;
    /// bars in proportion, stacked; totals in the legend and the title.
    #[test]
    fn every_hour_has_its_numbers() {
        let html = hourly(&chart(&[(0, 3, 1), (23, 8, 2)])).into_string();
        assert_eq!(html.matches("<g class=\"hour\"").count(), 24);
        assert!(
            html.contains(
                "<title id=\"chart-title\">Attempts per hour over the last 24 hours: 11 delivered, 3 failed</title>"
            ),
            "{html}"
        );
        assert!(html.contains("data-hour=\"2026-11-25T03:00:00Z\" data-delivered=\"8\" data-failed=\"2\""), "{html}");
        assert!(html.contains("<title>2026-11-25 03:00–04:00 UTC: 8 delivered, 2 failed</title>"), "{html}");
        // Top of the scale 10 over 140 units: 8 → 112, 2 → 28 above it.
        assert!(html.contains("y=\"38\" width=\"15\" height=\"112\" fill=\"#2563eb\""), "{html}");
        assert!(html.contains("y=\"10\" width=\"15\" height=\"28\" fill=\"#ea580c\""), "{html}");
        assert!(html.contains("Delivered <strong>11</strong>") && html.contains("Failed <strong>3</strong>"));
        assert!(html.contains(">06:00</text>") && html.contains(">12:00</text>"));
        assert!(!html.contains("Counted from"));
    }

    /// A day without attempts still draws its 24 empty hours.
    #[test]
    fn an_empty_day_is_all_zero() {
        let html = hourly(&chart(&[])).into_string();
        assert_eq!(html.matches("data-delivered=\"0\" data-failed=\"0\"").count(), 24);
        assert!(!html.contains("fill=\"#2563eb\""));
    }

    /// Hours before what a busy webhook's chart counted are grey, and said
    /// to be.
    #[test]
    fn hours_not_counted_are_marked() {
        let mut c = chart(&[(0, 5, 5), (23, 1, 0)]);
        c.counted_since = Some(c.hours[20].start + time::Duration::minutes(30));
        let html = hourly(&c).into_string();
        assert!(html.contains("Counted from"), "{html}");
        assert_eq!(html.matches("data-counted=\"false\"").count(), 20);
        assert!(html.contains(": not counted</title>"));
        assert!(html.contains("Delivered <strong>1</strong>"), "hour 0 is not in the totals: {html}");
    }
}
