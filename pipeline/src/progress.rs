//! Progress on stderr: a live line on a terminal, nothing otherwise; `-v` adds a line per table.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    verbose: bool,
    tables: u64,
    tool: &'static str,
}

impl Progress {
    pub fn new(tables: usize, verbose: bool) -> Progress {
        // indicatif draws nothing when stderr is not a terminal: logs and pipes stay clean.
        let bar = ProgressBar::with_draw_target(Some(tables as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} tables {pos}/{len}  {msg}  {elapsed_precise} ({eta} left)",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            verbose,
            tables: tables as u64,
            tool: "cbcopyout",
        }
    }

    /// The program name that starts `-v` lines.
    pub fn named(mut self, tool: &'static str) -> Progress {
        self.tool = tool;
        self
    }

    pub fn update(&self, bytes: u64, rows: u64) {
        let secs = self.bar.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{rows} rows  {}  {}/s",
            human(bytes),
            human((bytes as f64 / secs) as u64)
        ));
    }

    /// Counts a finished table; with `-v`, says so on a line of its own.
    ///
    /// The position is read before [`ProgressBar::suspend`]: `suspend` holds the bar's state
    /// lock while its closure runs, and `position()` inside it waited on that lock forever
    /// (issue 14: `cbcopyout -v` hung on its first finished table).
    pub fn table_done(&self, label: &str) {
        self.bar.inc(1);
        if self.verbose {
            let done = self.bar.position();
            let line = format!("{}: exported {label} ({done}/{})", self.tool, self.tables);
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// 1536 → "1.5 KiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
