//! Small usage charts drawn on the server: a node's last 24 h as inline
//! SVG paths (no script, no library), one chart per figure.
//!
//! The day is cut into [`COLUMNS`] columns of 5 minutes; a column shows the
//! highest minute in it (a peak must not vanish in an average), and a column
//! without any minute (agent away) breaks the line. `drover node status`
//! draws the same columns ([`usage_columns`]), fewer of them, as sparklines.

use drover_proto::api::UsagePoint;
use drover_types::Timestamp;

/// Columns across a chart: 24 h of 5-minute columns.
pub const COLUMNS: usize = 288;

/// The height of a chart's drawing, in its own units.
pub const HEIGHT: u32 = 40;

/// The span a chart covers.
const DAY_MS: i64 = 24 * 3_600_000;

/// One figure over the last 24 h, ready for `<svg viewBox="0 0 288 40">`.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageChart {
    /// `CPU busy`, `memory used`, ….
    pub title: String,
    /// The line: `M0 40L1 38…`, empty when no minute had this figure.
    pub line: String,
    /// The latest value and the highest, in words: `12% now, 80% at most`.
    pub summary: String,
    /// What the top of the chart stands for: `100%`, `1.2 MB/s`.
    pub top: String,
}

impl UsageChart {
    /// Whether there is anything to draw.
    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }
}

/// One figure of a usage point, when it was measured.
type Figure = fn(&UsagePoint) -> Option<f64>;

/// One figure of a node's day cut into columns: what the dashboard's charts
/// and `drover node status`'s sparklines draw.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureColumns {
    /// `CPU busy`, `memory used`, ….
    pub title: &'static str,
    /// The highest minute of each column, oldest first; `None` where the
    /// node sent nothing.
    pub columns: Vec<Option<f64>>,
    /// The latest value.
    pub latest: f64,
    /// The highest column.
    pub highest: f64,
    /// A percentage (drawn against 100 %), else bytes per second (drawn
    /// against the highest column).
    pub percent: bool,
}

impl FigureColumns {
    /// The value at the top of the drawing.
    pub fn scale(&self) -> f64 {
        if self.percent { 100.0 } else { self.highest.max(1.0) }
    }

    /// A value in words: `12%`, `1.2 MB/s`.
    pub fn words(&self, value: f64) -> String {
        if self.percent { format!("{value:.0}%") } else { rate(value) }
    }
}

/// A node's figures over the day ending at `now_ms`, `num_columns` columns
/// each (CPU, memory, fullest disk, bytes received and sent per second). A
/// figure never measured is left out.
pub fn usage_columns(points: &[UsagePoint], now_ms: i64, num_columns: usize) -> Vec<FigureColumns> {
    let figures: [(&'static str, Figure, bool); 5] = [
        ("CPU busy", |point| point.cpu_percent.map(f64::from), true),
        ("memory used", |point| point.memory_percent.map(f64::from), true),
        ("fullest disk", |point| point.disk_percent.map(f64::from), true),
        ("network in", |point| point.net_rx_bytes_per_sec, false),
        ("network out", |point| point.net_tx_bytes_per_sec, false),
    ];
    figures
        .into_iter()
        .filter_map(|(title, figure, percent)| {
            let columns = columns(points, figure, now_ms, num_columns.max(1));
            let highest = columns
                .iter()
                .flatten()
                .copied()
                .fold(None, |top: Option<f64>, value| Some(top.map_or(value, |top| top.max(value))))?;
            let latest = points.iter().rev().find_map(figure).unwrap_or_default();
            Some(FigureColumns { title, columns, latest, highest, percent })
        })
        .collect()
}

/// The charts of a node's history as of `now`: CPU, memory, fullest disk
/// (on a 0–100 % scale), and bytes received and sent per second (scaled to
/// their highest column). A figure never measured gets no chart.
pub fn usage_charts(points: &[UsagePoint], now: Timestamp) -> Vec<UsageChart> {
    usage_columns(points, now.as_millis(), COLUMNS)
        .into_iter()
        .map(|figure| UsageChart {
            title: figure.title.to_owned(),
            line: line(&figure.columns, figure.scale()),
            summary: format!("{} now, {} at most", figure.words(figure.latest), figure.words(figure.highest)),
            top: figure.words(figure.scale()),
        })
        .collect()
}

/// The highest value of each of `num_columns` columns of the day ending at
/// `now_ms`.
fn columns(points: &[UsagePoint], figure: Figure, now_ms: i64, num_columns: usize) -> Vec<Option<f64>> {
    let start_ms = now_ms - DAY_MS;
    let column_ms = DAY_MS / i64::try_from(num_columns).unwrap_or(i64::MAX).max(1);
    let mut columns = vec![None; num_columns];
    for point in points {
        let Some(value) = figure(point) else { continue };
        if point.time_ms < start_ms || point.time_ms > now_ms {
            continue;
        }
        let index = usize::try_from((point.time_ms - start_ms) / column_ms).unwrap_or(0).min(num_columns - 1);
        let column: &mut Option<f64> = &mut columns[index];
        *column = Some(column.map_or(value, |known: f64| known.max(value)));
    }
    columns
}

/// An SVG path through the columns, `scale` at the top; a missing column
/// starts a new piece, and a lone column is drawn as a short flat stroke.
fn line(columns: &[Option<f64>], scale: f64) -> String {
    let mut path = String::new();
    let mut drawing = false;
    for (index, column) in columns.iter().enumerate() {
        let Some(value) = column else {
            drawing = false;
            continue;
        };
        let height = f64::from(HEIGHT);
        let y = height - (value / scale).clamp(0.0, 1.0) * height;
        let command = if drawing { 'L' } else { 'M' };
        path.push_str(&format!("{command}{index} {y:.1}"));
        let next_missing = columns.get(index + 1).is_none_or(Option::is_none);
        if !drawing && next_missing {
            path.push_str("h1");
        }
        drawing = true;
    }
    path
}

/// Bytes per second in the largest unit under 1000: `830 B/s`, `1.2 MB/s`.
fn rate(bytes_per_sec: f64) -> String {
    let units = ["B/s", "kB/s", "MB/s", "GB/s"];
    let mut value = bytes_per_sec;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} {}", units[0]) } else { format!("{value:.1} {}", units[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(minutes_ago: i64, cpu: f32, rx: Option<f64>, now_ms: i64) -> UsagePoint {
        UsagePoint {
            time_ms: now_ms - minutes_ago * 60_000,
            cpu_percent: Some(cpu),
            net_rx_bytes_per_sec: rx,
            ..UsagePoint::default()
        }
    }

    #[test]
    fn a_peak_shows_and_a_gap_breaks_the_line() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let now_ms = now.as_millis();
        let mut points: Vec<_> = (0..60).map(|minute| point(minute, 10.0, None, now_ms)).collect();
        points.push(point(3, 90.0, None, now_ms));
        points.extend((600..610).map(|minute| point(minute, 20.0, None, now_ms)));
        points.sort_by_key(|point| point.time_ms);
        let charts = usage_charts(&points, now);
        assert_eq!(charts.len(), 1, "only CPU was measured: {charts:?}");
        let cpu = &charts[0];
        assert_eq!(cpu.summary, "10% now, 90% at most");
        assert_eq!(cpu.top, "100%");
        assert_eq!(cpu.line.matches('M').count(), 2, "two pieces: {}", cpu.line);
        assert!(cpu.line.contains(" 4.0"), "90 % is drawn 4 units from the top: {}", cpu.line);
    }

    #[test]
    fn rates_scale_to_their_highest_column() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let now_ms = now.as_millis();
        let points = vec![point(10, 1.0, Some(500.0), now_ms), point(5, 1.0, Some(1_240_000.0), now_ms)];
        let charts = usage_charts(&points, now);
        let network = charts.iter().find(|chart| chart.title == "network in").expect("a network chart");
        assert_eq!(network.top, "1.2 MB/s");
        assert_eq!(network.summary, "1.2 MB/s now, 1.2 MB/s at most");
        assert!(network.line.contains(" 0.0"), "the highest column touches the top: {}", network.line);
    }

    #[test]
    fn no_history_no_chart() {
        assert!(usage_charts(&[], Timestamp::from_millis(1_700_000_000_000)).is_empty());
    }
}
