//! The results: statistics, the markdown table, the JSON document and the SVG plot
//! (written by hand: no fonts or drawing crates needed). Pure functions of the data.

use std::fmt::Write as _;

use crate::measure::{Failover, FullGroup, Weather};
use crate::systems::{Fault, System};

/// min/median/p95/max of some durations (nearest-rank percentiles).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Stats {
    /// How many.
    pub(crate) n: usize,
    /// Smallest.
    pub(crate) min: f64,
    /// 50th percentile.
    pub(crate) median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub(crate) max: f64,
}

impl Stats {
    /// `None` for no values.
    pub(crate) fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let rank = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        (n > 0).then(|| Self {
            n,
            min: sorted[0],
            median: rank(0.5),
            p95: rank(0.95),
            max: sorted[n - 1],
        })
    }
}

/// One fault's runs for one setting.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct FaultRuns {
    /// Which fault.
    pub(crate) fault: Fault,
    /// Runs tried.
    pub(crate) runs: usize,
    /// The runs that failed over, in order.
    pub(crate) failovers: Vec<Failover>,
    /// Why the others did not.
    pub(crate) failures: Vec<String>,
}

impl FaultRuns {
    /// Outage statistics, ms.
    pub(crate) fn outage(&self) -> Option<Stats> {
        Stats::of(&self.outages())
    }

    /// The outages, ms.
    pub(crate) fn outages(&self) -> Vec<f64> {
        self.failovers.iter().map(|f| f.outage_ms).collect()
    }

    /// Detection statistics (ours), ms.
    pub(crate) fn detection(&self) -> Option<Stats> {
        let values: Vec<f64> = self
            .failovers
            .iter()
            .filter_map(|f| f.detection_ms)
            .collect();
        Stats::of(&values)
    }
}

/// Everything measured for one setting.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct SettingResult {
    /// Short name.
    pub(crate) id: String,
    /// System name.
    pub(crate) system_name: String,
    /// In words.
    pub(crate) label: String,
    /// The settings, as data.
    pub(crate) system: System,
    /// Each node's exact configuration: (what, text).
    pub(crate) configs: Vec<(String, String)>,
    /// Failover runs per fault.
    pub(crate) failover: Vec<FaultRuns>,
    /// Loss stretches.
    pub(crate) flapping: Vec<Weather>,
    /// The starvation stretch.
    pub(crate) starvation: Option<Weather>,
    /// What went wrong outside single runs (lab build, flapping, starvation).
    pub(crate) errors: Vec<String>,
}

/// The whole report.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Report {
    /// When (UTC, `date -u`).
    pub(crate) date: String,
    /// Where (kernel, CPU, cores).
    pub(crate) machine: String,
    /// Failover runs per setting and fault.
    pub(crate) runs: usize,
    /// Loss stretch, s.
    pub(crate) flap_s: u64,
    /// Starvation stretch, s.
    pub(crate) starve_s: u64,
    /// Every setting.
    pub(crate) settings: Vec<SettingResult>,
    /// The full-group crash, when run.
    pub(crate) full_group: Option<Result<FullGroup, String>>,
}

/// How the comparison treats fencing, and where the cost numbers are.
pub(crate) const NOTES: &[&str] = &[
    "Every system runs in the same lab topology (nodes a and b: lan0 on a bridge with the \
     client and the witness, repl0 back-to-back), managing only the VIP 192.0.2.10/24 on \
     lan0. keepalived and ucarp advertise on lan0 only (multicast); our daemon sends \
     heartbeats on both links, as configured in production.",
    "Fencing: keepalived and ucarp have none. Our daemon is measured both ways: with the \
     lab's power switch as its fence (it takes over once the fence confirms), and without \
     (it waits its takeover hold; for the VIP-only group its run timeouts are 1 s, so the \
     hold is about 2.3 s + dead time; at the daemon's default timeouts it would be about \
     90 s).",
    "Outage: client-observed, from the last echo reply from the old holder to the first \
     from the new one, probing every 1 ms (answers attributed by source MAC).",
    "Crash: both node interfaces down, then the system SIGKILLed (for every system: no \
     goodbye advert leaves; time zero is just before the interfaces go down). Link cut: \
     the holder's lan0 down, everything else running (our daemon still hears its peer \
     on repl0: it moves the VIP when its vip monitor, every 500 ms, finds lan0 down).",
    "Flapping and starvation count VIP appearances on the nodes (`ip monitor address`): \
     each gain is a takeover. Loss is nftables random drop on the output hook of both \
     links of both nodes.",
    "Cost (CPU % and RSS of our daemon at heartbeat 1, 5 and 10 ms) and the XDP cost per \
     packet are the bench-detection and bench-xdp tables printed earlier by `cargo xtask \
     bench`; not repeated here.",
];

fn cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// The markdown report.
pub(crate) fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Failover benchmark: ours vs keepalived vs ucarp\n\n{} on {}; {} runs per fault, \
         loss stretches {} s, starvation {} s.\n",
        report.date, report.machine, report.runs, report.flap_s, report.starve_s
    );
    md.push_str(
        "### Failover time (client-observed outage, ms)\n\n\
         | system | setting | fault | ok/runs | min | median | p95 | max | detection median (ours) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for setting in &report.settings {
        for runs in &setting.failover {
            let outage = runs.outage();
            let _ = writeln!(
                md,
                "| {} | {} (`{}`) | {} | {}/{} | {} | {} | {} | {} | {} |",
                setting.system_name,
                setting.label,
                setting.id,
                runs.fault.describe(),
                runs.failovers.len(),
                runs.runs,
                cell(outage.map(|s| s.min)),
                cell(outage.map(|s| s.median)),
                cell(outage.map(|s| s.p95)),
                cell(outage.map(|s| s.max)),
                cell(runs.detection().map(|s| s.median)),
            );
        }
    }
    if let Some(full) = &report.full_group {
        let text = match full {
            Ok(full) => format!(
                "outage {:.1} ms, detection {:.1} ms",
                full.outage_ms, full.detection_ms
            ),
            Err(error) => format!("failed: {error}"),
        };
        let _ = writeln!(
            md,
            "\nOur full group (DRBD, ext4, LXC container, VIP; heartbeat 5 ms, fenced), one \
             node crash: {text}."
        );
    }
    md.push_str(
        "\n### Flapping (random loss on the heartbeat path) and starvation\n\n\
         VIP gains on the nodes (takeovers) during the stretch; in brackets, time with the \
         VIP on both nodes and, for ours, `peer_lost` events (false alarms).\n\n\
         | system | setting | 10 % loss | 30 % loss | 50 % loss | busy loops on every core |\n\
         |---|---|---|---|---|---|\n",
    );
    for setting in report.settings.iter().filter(|s| !s.flapping.is_empty()) {
        let at = |percent: u32| {
            setting
                .flapping
                .iter()
                .find(|w| w.loss_percent == Some(percent))
                .map_or_else(|| "-".to_owned(), weather_cell)
        };
        let _ = writeln!(
            md,
            "| {} | {} (`{}`) | {} | {} | {} | {} |",
            setting.system_name,
            setting.label,
            setting.id,
            at(10),
            at(30),
            at(50),
            setting
                .starvation
                .as_ref()
                .map_or_else(|| "-".to_owned(), weather_cell)
        );
    }
    md.push_str("\n### Goals\n\n");
    for line in goals(report) {
        let _ = writeln!(md, "- {line}");
    }
    md.push_str("\n### Notes\n\n");
    for note in NOTES {
        let _ = writeln!(md, "- {note}");
    }
    let failures: Vec<String> = report
        .settings
        .iter()
        .flat_map(|s| {
            let runs = s.failover.iter().flat_map(move |r| {
                r.failures
                    .iter()
                    .map(move |f| format!("{} ({}): {f}", s.id, r.fault.describe()))
            });
            runs.chain(s.errors.iter().map(move |e| format!("{}: {e}", s.id)))
        })
        .collect();
    if !failures.is_empty() {
        md.push_str("\n### Failed runs\n\n");
        for failure in failures {
            let _ = writeln!(md, "- {}", failure.replace('\n', " "));
        }
    }
    md.push_str("\n### Exact configurations\n\n");
    for setting in &report.settings {
        let _ = writeln!(
            md,
            "<details><summary>{} {}</summary>\n",
            setting.system_name, setting.label
        );
        for (what, text) in &setting.configs {
            let _ = writeln!(md, "{what}:\n\n```\n{}\n```\n", text.trim_end());
        }
        md.push_str("</details>\n\n");
    }
    md
}

fn weather_cell(weather: &Weather) -> String {
    let lost = weather
        .peer_lost
        .map_or_else(String::new, |n| format!("; {n} peer lost"));
    format!(
        "{} ({:.0} ms{lost})",
        weather.changes.gained, weather.changes.both_ms
    )
}

/// The issue's goals, each met or not by these numbers.
pub(crate) fn goals(report: &Report) -> Vec<String> {
    let median = |id: &str| {
        report
            .settings
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.failover.iter().find(|r| r.fault == Fault::Crash))
            .and_then(FaultRuns::outage)
            .map(|s| s.median)
    };
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    let mut lines = Vec::new();
    let ours = median("ours-5-fence");
    let ours_unfenced = median("ours-5");
    for (name, id) in [
        ("keepalived", "keepalived-default"),
        ("ucarp", "ucarp-default"),
    ] {
        for (how, value) in [("fenced", ours), ("unfenced", ours_unfenced)] {
            let ok = value.zip(median(id)).map(|(o, t)| o * 10.0 <= t);
            lines.push(format!(
                "median crash failover, ours at defaults ({how}, {} ms) at least 10x faster \
                 than {name} at its defaults ({} ms): {}",
                cell(value),
                cell(median(id)),
                verdict(ok)
            ));
        }
    }
    for (name, id) in [("keepalived", "keepalived-fast"), ("ucarp", "ucarp-fast")] {
        let ok = ours.zip(median(id)).map(|(o, t)| o < t);
        lines.push(format!(
            "ours at defaults (fenced, {} ms) faster than {name} at its most aggressive \
             ({} ms): {}",
            cell(ours),
            cell(median(id)),
            verdict(ok)
        ));
    }
    let gained_at_30 = |prefix: &str| -> Option<usize> {
        let values: Vec<usize> = report
            .settings
            .iter()
            .filter(|s| s.id.starts_with(prefix))
            .flat_map(|s| &s.flapping)
            .filter(|w| w.loss_percent == Some(30))
            .map(|w| w.changes.gained)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    };
    let (ours_30, ucarp_30) = (gained_at_30("ours"), gained_at_30("ucarp"));
    lines.push(format!(
        "zero role changes at 30 % loss (ours: {}) where ucarp flaps (ucarp: {}): {}",
        ours_30.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ucarp_30.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        verdict(ours_30.zip(ucarp_30).map(|(o, u)| o == 0 && u > 0))
    ));
    lines.push(
        "under 1 % of a core at 10 ms heartbeats: see the bench-detection table (cost)".to_owned(),
    );
    lines
}

/// Colour of a system in the plot.
fn colour(system: &str) -> &'static str {
    match system {
        "ours" => "#1b7837",
        "keepalived" => "#2166ac",
        _ => "#b2182b",
    }
}

/// The SVG plot: one row per setting (by id) and fault, each run's outage as a dot on a log
/// scale (1 ms to 100 s), the median as a bar.
pub(crate) fn svg(report: &Report) -> String {
    const LEFT: f64 = 260.0;
    const WIDTH: f64 = 560.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 40.0;
    let (lo, hi) = (0.0_f64, 5.0_f64);
    let x = |ms: f64| LEFT + (ms.max(1.0).log10() - lo) / (hi - lo) * WIDTH;
    let rows: Vec<(&SettingResult, &FaultRuns)> = report
        .settings
        .iter()
        .flat_map(|s| s.failover.iter().map(move |r| (s, r)))
        .collect();
    let height = TOP + ROW * rows.len() as f64 + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"11\">",
        LEFT + WIDTH + 20.0
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" \
         font-size=\"13\">Client-observed failover time per run (log scale); bar: median; \
         settings by id (see failover.md). {}</text>",
        xml(&report.date)
    );
    for decade in 0..=5 {
        let px = x(10f64.powi(decade));
        let label = ["1 ms", "10 ms", "100 ms", "1 s", "10 s", "100 s"][decade as usize];
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            height - 30.0,
            height - 15.0
        );
    }
    for (i, (setting, runs)) in rows.iter().enumerate() {
        let y = TOP + ROW * (i as f64 + 0.5);
        let fill = colour(&setting.system_name);
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{:.1}\" fill=\"{fill}\">{}: {}</text>",
            y + 4.0,
            xml(&setting.id),
            runs.fault.describe()
        );
        for outage in runs.outages() {
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{fill}\" fill-opacity=\"0.5\"/>",
                x(outage)
            );
        }
        if let Some(stats) = runs.outage() {
            let px = x(stats.median);
            let _ = writeln!(
                out,
                "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"black\" \
                 stroke-width=\"2\"/>",
                y - 7.0,
                y + 7.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_nearest_ranks() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let stats = Stats::of(&values).expect("stats");
        assert_eq!(
            (stats.n, stats.min, stats.median, stats.p95, stats.max),
            (20, 1.0, 10.0, 19.0, 20.0)
        );
        let one = Stats::of(&[7.0]).expect("stats");
        assert_eq!((one.median, one.p95), (7.0, 7.0));
        assert!(Stats::of(&[]).is_none());
    }

    fn runs(outages: &[f64]) -> FaultRuns {
        FaultRuns {
            fault: Fault::Crash,
            runs: outages.len(),
            failovers: outages
                .iter()
                .map(|&outage_ms| Failover {
                    outage_ms,
                    unanswered: 0,
                    detection_ms: None,
                })
                .collect(),
            failures: Vec::new(),
        }
    }

    fn setting(id: &str, system_name: &str, outages: &[f64]) -> SettingResult {
        SettingResult {
            id: id.to_owned(),
            system_name: system_name.to_owned(),
            label: "x".to_owned(),
            system: System::Ours {
                interval_ms: 5,
                fence: true,
            },
            configs: vec![("conf".to_owned(), "a = 1".to_owned())],
            failover: vec![runs(outages)],
            flapping: Vec::new(),
            starvation: None,
            errors: Vec::new(),
        }
    }

    fn report(ours: &[f64]) -> Report {
        Report {
            date: "d".to_owned(),
            machine: "m".to_owned(),
            runs: 3,
            flap_s: 60,
            starve_s: 20,
            settings: vec![
                setting("ours-5-fence", "ours", ours),
                setting(
                    "keepalived-default",
                    "keepalived",
                    &[3600.0, 3700.0, 3650.0],
                ),
                setting("keepalived-fast", "keepalived", &[60.0, 70.0, 65.0]),
            ],
            full_group: None,
        }
    }

    #[test]
    fn goals_compare_medians() {
        let fast = goals(&report(&[20.0, 30.0, 25.0]));
        assert!(fast[0].ends_with(": met"), "{fast:?}");
        assert!(fast[4].ends_with(": met"), "{fast:?}");
        assert!(fast[2].ends_with("not measured"), "{fast:?}");
        let slow = goals(&report(&[400.0, 500.0, 450.0]));
        assert!(slow[0].ends_with("NOT met"), "{slow:?}");
        assert!(slow[4].ends_with("NOT met"), "{slow:?}");
    }

    #[test]
    fn the_table_and_plot_have_a_row_per_setting_and_fault() {
        let report = report(&[20.0, 30.0, 25.0]);
        let md = markdown(&report);
        assert!(
            md.contains(
                "| ours | x (`ours-5-fence`) | node crash | 3/3 | 20.0 | 25.0 | 30.0 | 30.0 | - |"
            ),
            "{md}"
        );
        assert!(md.contains("```\na = 1\n```"), "{md}");
        let svg = svg(&report);
        assert_eq!(svg.matches("<circle").count(), 9);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
