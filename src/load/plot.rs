//! `vigil load --plot FILE.svg`: one SVG with the latency percentile curves
//! of both histograms (from the scheduled send, and the plain round trip)
//! on HdrHistogram's usual axis, and the sessions online and heartbeats per
//! second over the run. Pure: a [`Timeline`] of progress snapshots and a
//! [`Report`] in, the SVG text out (drawn with `plotters`' SVG backend,
//! which needs no font or system library).

use plotters::prelude::*;

use super::report::{Latency, Progress, Report};

/// The sessions online and the heartbeats sent, a point per progress
/// snapshot (about one a second).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// (seconds since start, sessions online, heartbeats per second since
    /// the previous point).
    points: Vec<(f64, u64, f64)>,
    last: Option<(u64, u64)>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Adds the snapshot `p`.
    pub fn record(&mut self, p: &Progress) {
        let (t0, sent0) = self.last.unwrap_or((0, 0));
        let dt = p.elapsed_ms.saturating_sub(t0);
        let rate = if dt == 0 {
            0.0
        } else {
            p.sent.saturating_sub(sent0) as f64 * 1000.0 / dt as f64
        };
        if dt > 0 || self.last.is_none() {
            self.points
                .push((p.elapsed_ms as f64 / 1000.0, p.online, rate));
        }
        self.last = Some((p.elapsed_ms, p.sent));
    }

    /// The points: (seconds, online, heartbeats per second).
    pub fn points(&self) -> &[(f64, u64, f64)] {
        &self.points
    }
}

/// The highest `1/(1-percentile)` drawn: 99.999 %.
const X_MAX: f64 = 100_000.0;

/// The percentile curve of `l`: (`1/(1-q)`, latency in ms), from 50 %.
pub fn percentile_curve(l: &Latency) -> Vec<(f64, f64)> {
    let h = l.histogram();
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|&(q, _)| (0.5..1.0).contains(&q))
        .map(|(q, us)| {
            (
                (1.0 / (1.0 - q)).min(X_MAX),
                h.highest_equivalent(us) as f64 / 1000.0,
            )
        })
        .collect()
}

/// "99.9%" for the axis position `x = 1/(1-q)`.
fn percent_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let mut s = format!("{p:.3}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    format!("{s}%")
}

/// The whole picture, `title` on top, as SVG text.
pub fn plot_svg(title: &str, report: &Report, timeline: &Timeline) -> Result<String, String> {
    let mut svg = String::new();
    draw(&mut svg, title, report, timeline).map_err(|e| format!("cannot draw the plot: {e}"))?;
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, title: &str, report: &Report, timeline: &Timeline) -> DrawResult {
    let root = SVGBackend::with_string(svg, (1000, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(480);
    let (left, right) = bottom.split_horizontally(500);

    let scheduled = percentile_curve(&report.scheduled);
    let rtt = percentile_curve(&report.rtt);
    let y_max = scheduled
        .iter()
        .chain(&rtt)
        .map(|p| p.1)
        .fold(0.001f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&top)
        .caption("latency by percentile", ("sans-serif", 18))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((2.0f64..X_MAX).log_scale(), 0.0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&percent_label)
        .draw()?;
    for (points, color, name) in [
        (&scheduled, &RED, "from the scheduled send"),
        (&rtt, &BLUE, "round trip"),
    ] {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let points = timeline.points();
    let t_max = points.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let online_max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64 * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption("sessions online", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0f64..t_max, 0.0f64..online_max)?;
    chart.configure_mesh().x_desc("seconds").draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().map(|p| (p.0, p.1 as f64)),
        GREEN.stroke_width(2),
    ))?;

    let rate_max = points.iter().map(|p| p.2).fold(1.0f64, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(&right)
        .caption("heartbeats sent per second", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0f64..t_max, 0.0f64..rate_max)?;
    chart.configure_mesh().x_desc("seconds").draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().map(|p| (p.0, p.2)),
        MAGENTA.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Phase;

    fn progress(ms: u64, online: u64, sent: u64) -> Progress {
        let mut p = Progress::new(ms, Phase::Hold);
        p.online = online;
        p.sent = sent;
        p
    }

    #[test]
    fn the_timeline_is_rates_between_snapshots() {
        let mut t = Timeline::new();
        t.record(&progress(0, 0, 0));
        t.record(&progress(1000, 10, 50));
        t.record(&progress(1000, 10, 60)); // no time passed: no point
        t.record(&progress(3000, 20, 260));
        assert_eq!(
            t.points(),
            &[(0.0, 0, 0.0), (1.0, 10, 50.0), (3.0, 20, 100.0)]
        );
    }

    #[test]
    fn the_curve_runs_from_the_median_to_the_tail() {
        let mut l = Latency::default();
        for us in 1..=100_000u64 {
            l.record(us);
        }
        let curve = percentile_curve(&l);
        assert!(curve.len() > 10);
        let first = curve[0];
        assert!((2.0..2.2).contains(&first.0), "{first:?}");
        assert!((49.0..52.0).contains(&first.1), "median {first:?}");
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let last = curve[curve.len() - 1];
        assert!(last.0 <= X_MAX && last.1 > 99.0, "{last:?}");
        assert!(percentile_curve(&Latency::default()).is_empty());
    }

    #[test]
    fn percent_labels() {
        assert_eq!(percent_label(&2.0), "50%");
        assert_eq!(percent_label(&10.0), "90%");
        assert_eq!(percent_label(&1000.0), "99.9%");
        assert_eq!(percent_label(&100_000.0), "99.999%");
    }

    #[test]
    fn an_svg_with_both_curves_and_the_timeline() {
        let mut report = Report::default();
        for us in [100u64, 200, 300, 5_000] {
            report.scheduled.record(us);
            report.rtt.record(us / 2);
        }
        let mut t = Timeline::new();
        t.record(&progress(0, 0, 0));
        t.record(&progress(1000, 3, 3));
        let svg = plot_svg("vigil load: test", &report, &t).expect("drawn");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "vigil load: test",
            "latency by percentile",
            "from the scheduled send",
            "round trip",
            "sessions online",
            "heartbeats sent per second",
            "99.9%",
        ] {
            assert!(svg.contains(text), "no {text:?}");
        }
        assert!(svg.matches("<polyline").count() >= 4, "{svg}");
        // Nothing to plot is still a picture, not an error.
        assert!(plot_svg("empty", &Report::default(), &Timeline::new()).is_ok());
    }
}
