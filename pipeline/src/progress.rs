//! Progress on stderr: a live line on a terminal (nothing otherwise), or with `--progress json`
//! one JSON object per second for scripts; `-v` adds a line per table. Message lines from
//! anywhere (`logline::say`) are written around the live line while it is shown.
//!
//! Progress is measured in the bytes there are to read, not in tables: one 2 GB table among 21
//! small ones made `tables 0/22 (0s left)` a lie for most of a dump (issue 15). The caller says
//! how many bytes the whole run reads ([`Progress::expecting`]: table sizes from the catalog,
//! archive data sizes, backup-set file sizes) and opens an [`InFlight`] per table or chunk with
//! its own share. How far an item in flight is comes from the best measure it reports:
//! input bytes consumed ([`InFlight::input`], exact for archives and files), else rows against
//! the catalog's estimate, else output bytes scaled by the output-to-input ratio of the items
//! finished so far (COPY text is not the size of the heap it came from: the ratio is learned,
//! not assumed). The ETA divides the bytes left by a rate smoothed over seconds, and is not
//! shown before two seconds of data have flowed.

use std::collections::BTreeMap;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Display {
    /// A live line when stderr is a terminal, nothing otherwise.
    #[default]
    Auto,
    /// One JSON object per second on stderr, terminal or not.
    Json,
    /// Nothing (the `-v` lines still appear).
    None,
}

/// A `--progress` value that names no [`Display`] (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected auto, json or none")]
pub struct UnknownDisplay(pub String);

impl FromStr for Display {
    type Err = UnknownDisplay;
    fn from_str(s: &str) -> Result<Display, UnknownDisplay> {
        match s {
            "auto" => Ok(Display::Auto),
            "json" => Ok(Display::Json),
            "none" => Ok(Display::None),
            other => Err(UnknownDisplay(other.into())),
        }
    }
}

/// `--progress` and `--log-file`: how a run shows itself, spelled and meaning the same in every
/// tool.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProgressArgs {
    /// Progress on stderr: auto (a live line when stderr is a terminal), json (one object per
    /// second), none
    #[arg(long = "progress", value_name = "WHEN", value_enum, default_value_t = Display::Auto)]
    pub progress: Display,
    /// Append every message line (the -v lines with -v, notes, the summary, errors and the
    /// resume command) to FILE too, each with an ISO-8601 timestamp and the process id
    #[arg(long = "log-file", value_name = "FILE")]
    pub log_file: Option<std::path::PathBuf>,
}

impl ProgressArgs {
    /// Starts `--log-file` (a first line names the command); call it before anything is said.
    pub fn open_log(&self) -> Result<(), logline::LogFileError> {
        match &self.log_file {
            Some(path) => logline::to_file(path),
            None => Ok(()),
        }
    }
}

/// One table or chunk being read.
#[derive(Debug, Default, Clone)]
struct Item {
    label: String,
    /// Its share of the expected bytes.
    expected: u64,
    /// The catalog's row estimate (0 when unknown).
    expected_rows: f64,
    input: Option<u64>,
    output: u64,
    rows: u64,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    in_flight: BTreeMap<u64, Item>,
    /// Expected bytes of finished items.
    done_expected: u64,
    /// Output bytes of finished items whose progress had to be judged from their output.
    done_output: u64,
    done_output_expected: u64,
    /// Output bytes and rows of finished items.
    finished_bytes: u64,
    finished_rows: u64,
    /// Totals from [`Progress::update`], when the caller counts itself.
    reported: Option<(u64, u64)>,
    tables_done: u64,
    rate: Rate,
}

/// Bytes per second, smoothed: each second's rate weighs 30% against the history, so one slow
/// second (a checkpoint, an index build) moves the ETA, but does not make it jump.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Instant, f64)>,
    per_second: Option<f64>,
}

impl Rate {
    fn sample(&mut self, now: Instant, done: f64) {
        match self.last {
            None => self.last = Some((now, done)),
            Some((t, d)) => {
                let dt = now.duration_since(t).as_secs_f64();
                if dt < 1.0 {
                    return;
                }
                let r = (done - d).max(0.0) / dt;
                self.per_second = Some(match self.per_second {
                    None => r,
                    Some(old) => 0.7 * old + 0.3 * r,
                });
                self.last = Some((now, done));
            }
        }
    }
}

/// What one look at the state shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub elapsed: Duration,
    /// Bytes there are to read in all (0 when the caller did not say).
    pub total: u64,
    /// Of those, how many are read (estimated for items in flight, see the module doc).
    pub done: u64,
    /// Rows and output bytes moved so far.
    pub rows: u64,
    pub bytes: u64,
    pub tables_done: u64,
    pub tables: u64,
    /// Seconds left; `None` until data has flowed for two seconds at a measurable rate.
    pub eta: Option<f64>,
    /// Label, rows, output bytes and percent done of every item in flight.
    pub in_flight: Vec<(String, u64, u64, Option<f64>)>,
}

struct Shared {
    state: Mutex<State>,
    started: Instant,
    tables: u64,
    total: AtomicU64,
    /// The program name in JSON objects (set by [`Progress::named`] after the ticker started).
    tool: Mutex<&'static str>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let total = self.total.load(Ordering::Relaxed);
        let mut s = self.lock();
        let ratio =
            (s.done_output > 0).then(|| s.done_output_expected as f64 / s.done_output as f64);
        let mut done = s.done_expected as f64;
        let mut in_flight = Vec::new();
        let (mut bytes, mut rows) = (s.finished_bytes, s.finished_rows);
        for item in s.in_flight.values() {
            let f = fraction(item, ratio);
            done += f.unwrap_or(0.0) * item.expected as f64;
            bytes += item.output;
            rows += item.rows;
            in_flight.push((
                item.label.clone(),
                item.rows,
                item.output,
                f.map(|f| f * 100.0),
            ));
        }
        if let Some((b, r)) = s.reported {
            (bytes, rows) = (b, r);
        }
        let done = if total > 0 {
            done.min(total as f64)
        } else {
            done
        };
        s.rate.sample(now, done);
        let elapsed = now.duration_since(self.started);
        let eta = match s.rate.per_second {
            Some(r) if total > 0 && done > 0.0 && r > 0.0 && elapsed.as_secs_f64() >= 2.0 => {
                Some((total as f64 - done).max(0.0) / r)
            }
            _ => None,
        };
        Snapshot {
            elapsed,
            total,
            done: done as u64,
            rows,
            bytes,
            tables_done: s.tables_done,
            tables: self.tables,
            eta,
            in_flight,
        }
    }
}

/// How far one item is, 0..=0.99 (it is done when it says so), or `None` when it reported
/// nothing to judge by yet.
fn fraction(item: &Item, ratio: Option<f64>) -> Option<f64> {
    if item.expected == 0 {
        return None;
    }
    let f = if let Some(input) = item.input {
        input as f64 / item.expected as f64
    } else if item.expected_rows > 0.0 && item.rows > 0 {
        item.rows as f64 / item.expected_rows
    } else if item.output > 0 {
        item.output as f64 * ratio.unwrap_or(1.0) / item.expected as f64
    } else {
        return None;
    };
    Some(f.clamp(0.0, 0.99))
}

pub struct Progress {
    shared: Arc<Shared>,
    bar: ProgressBar,
    display: Display,
    verbose: bool,
    tool: &'static str,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// While the live line is shown, `logline` writes its lines around it.
    attached: Mutex<Option<logline::Attached>>,
}

impl Progress {
    pub fn new(tables: usize, verbose: bool) -> Progress {
        Progress::with_display(tables, verbose, Display::Auto)
    }

    /// `tables` tables to read, shown as `display` says.
    pub fn with_display(tables: usize, verbose: bool, display: Display) -> Progress {
        // indicatif draws nothing when stderr is not a terminal: logs and pipes stay clean.
        let target = match display {
            Display::Auto => ProgressDrawTarget::stderr(),
            Display::Json | Display::None => ProgressDrawTarget::hidden(),
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        let attached = (display == Display::Auto).then(|| {
            let bar = bar.clone();
            logline::attach(move |line| bar.suspend(line))
        });
        let p = Progress {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                started: Instant::now(),
                tables: tables as u64,
                total: AtomicU64::new(0),
                tool: Mutex::new("cbcopyout"),
            }),
            bar,
            display,
            verbose,
            tool: "cbcopyout",
            stop: Arc::new(AtomicBool::new(false)),
            ticker: Mutex::new(None),
            attached: Mutex::new(attached),
        };
        p.start_ticker();
        p
    }

    /// The program name that starts `-v` lines and JSON objects.
    pub fn named(mut self, tool: &'static str) -> Progress {
        self.tool = tool;
        *self.shared.tool.lock().unwrap_or_else(|p| p.into_inner()) = tool;
        self
    }

    /// The bytes the whole run reads (sum of the shares given to [`Progress::begin`]).
    pub fn expecting(self, total_bytes: u64) -> Progress {
        self.shared.total.store(total_bytes, Ordering::Relaxed);
        self
    }

    /// `bytes` more to read than said so far (a script's size, known once it is opened).
    pub fn expect_more(&self, bytes: u64) {
        self.shared.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One table or chunk starts: `expected` of the expected bytes are its share,
    /// `expected_rows` the catalog's estimate (0 or less when unknown).
    pub fn begin(&self, label: &str, expected: u64, expected_rows: f64) -> InFlight {
        let mut s = self.shared.lock();
        s.next_id += 1;
        let id = s.next_id;
        s.in_flight.insert(
            id,
            Item {
                label: label.to_string(),
                expected,
                expected_rows: expected_rows.max(0.0),
                ..Item::default()
            },
        );
        InFlight {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// Totals moved so far, for callers that count themselves (they win over the sums of the
    /// items in flight).
    pub fn update(&self, bytes: u64, rows: u64) {
        self.shared.lock().reported = Some((bytes, rows));
    }

    /// Counts a finished table; with `-v`, says so on a line of its own.
    ///
    /// The count is taken before the line is written: `logline` writes it inside
    /// [`ProgressBar::suspend`], which holds the bar's state lock while its closure runs
    /// (issue 14: `cbcopyout -v` hung on its first finished table when the position was read
    /// inside it).
    pub fn table_done(&self, label: &str) {
        let done = {
            let mut s = self.shared.lock();
            s.tables_done += 1;
            s.tables_done
        };
        if self.verbose {
            logline::say!(
                "{}: exported {label} ({done}/{})",
                self.tool,
                self.shared.tables
            );
        }
    }

    /// What the line shows now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Stops the line (cleared) and, with `--progress json`, writes a last object with the
    /// final figures, so every run reports at least once however fast it was.
    pub fn finish(&self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        let ticker = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = ticker {
            // Woken now rather than at its next tick: a sleeping ticker added up to 250 ms to
            // every run (0.27 s for a restore of three small tables, which took 0.02 s).
            t.thread().unpark();
            let _ = t.join();
        }
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.bar.finish_and_clear();
        if self.display == Display::Json {
            let line = json_line(self.tool, &self.shared.snapshot());
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    /// Redraws the line four times a second; writes a JSON object every second.
    fn start_ticker(&self) {
        if self.display == Display::None {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let stop = Arc::clone(&self.stop);
        let bar = self.bar.clone();
        let display = self.display;
        let handle = std::thread::spawn(move || {
            let mut last_json = Instant::now();
            let tick = Duration::from_millis(250);
            let mut next = Instant::now() + tick;
            while !stop.load(Ordering::SeqCst) {
                let now = Instant::now();
                if now < next {
                    std::thread::park_timeout(next - now);
                    continue;
                }
                next = now + tick;
                let snap = shared.snapshot();
                match display {
                    Display::Json if last_json.elapsed() >= Duration::from_secs(1) => {
                        last_json = Instant::now();
                        let tool = *shared.tool.lock().unwrap_or_else(|p| p.into_inner());
                        let line = json_line(tool, &snap);
                        let _ = writeln!(std::io::stderr().lock(), "{line}");
                    }
                    Display::Json => {}
                    _ => {
                        bar.set_message(line(&snap));
                        bar.tick();
                    }
                }
            }
        });
        *self.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A table or chunk in flight; dropping it counts its share as read.
pub struct InFlight {
    shared: Arc<Shared>,
    id: u64,
}

impl InFlight {
    /// `bytes` more output (COPY data received or written) and `rows` more rows.
    pub fn add(&self, bytes: u64, rows: u64) {
        let mut s = self.shared.lock();
        if let Some(item) = s.in_flight.get_mut(&self.id) {
            item.output += bytes;
            item.rows += rows;
        }
    }

    /// Input consumed so far (compressed archive bytes, file bytes): the exact measure.
    pub fn input(&self, consumed: u64) {
        let mut s = self.shared.lock();
        if let Some(item) = s.in_flight.get_mut(&self.id) {
            item.input = Some(consumed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        if let Some(item) = s.in_flight.remove(&self.id) {
            s.done_expected += item.expected;
            s.finished_bytes += item.output;
            s.finished_rows += item.rows;
            if item.input.is_none() && item.output > 0 && item.expected > 0 {
                s.done_output += item.output;
                s.done_output_expected += item.expected;
            }
        }
    }
}

/// The terminal line: `37% of 2.8 GiB  1.2 GiB, 1234567 rows  3/22 tables  00:12, ETA 21s |
/// public.big 45%`.
pub fn line(s: &Snapshot) -> String {
    let mut out = String::new();
    if let Some(pct) = (s.done * 100).checked_div(s.total) {
        out.push_str(&format!("{pct:>3}% of {}  ", human(s.total)));
    }
    out.push_str(&format!("{}, {} rows  ", human(s.bytes), s.rows));
    // A script's tables are not known before it is read.
    if s.tables > 0 {
        out.push_str(&format!("{}/{} tables  ", s.tables_done, s.tables));
    }
    out.push_str(&clock(s.elapsed.as_secs_f64()));
    match s.eta {
        Some(eta) => out.push_str(&format!(", ETA {}", clock(eta))),
        None if s.total > 0 => out.push_str(", ETA --"),
        None => {}
    }
    for (label, rows, _, pct) in &s.in_flight {
        match pct {
            Some(p) => out.push_str(&format!(" | {label} {p:.0}%")),
            None => out.push_str(&format!(" | {label} {rows} rows")),
        }
    }
    out
}

/// One JSON object: the same figures as the line, for scripts.
pub fn json_line(tool: &str, s: &Snapshot) -> String {
    let tables: Vec<String> = s
        .in_flight
        .iter()
        .map(|(label, rows, bytes, pct)| {
            format!(
                "{{\"table\":{},\"rows\":{rows},\"bytes\":{bytes},\"percent\":{}}}",
                json_string(label),
                pct.map_or("null".into(), |p| format!("{p:.1}"))
            )
        })
        .collect();
    format!(
        "{{\"tool\":\"{tool}\",\"elapsed_seconds\":{:.1},\"bytes_total\":{},\"bytes_done\":{},\"percent\":{},\"eta_seconds\":{},\"rows\":{},\"bytes\":{},\"tables_done\":{},\"tables\":{},\"in_flight\":[{}]}}",
        s.elapsed.as_secs_f64(),
        s.total,
        s.done,
        if s.total > 0 {
            format!("{:.1}", s.done as f64 * 100.0 / s.total as f64)
        } else {
            "null".into()
        },
        s.eta.map_or("null".into(), |e| format!("{e:.0}")),
        s.rows,
        s.bytes,
        s.tables_done,
        s.tables,
        tables.join(",")
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// 75.2 → "1m15s".
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(tables: usize) -> Progress {
        Progress::with_display(tables, false, Display::None)
    }

    #[test]
    fn bytes_not_tables_measure_the_way_done() {
        let p = quiet(2).expecting(1000);
        let big = p.begin("public.big", 900, 100.0);
        let small = p.begin("public.small", 100, 0.0);
        // Nothing flowed: nothing done, no ETA, whatever the clock says.
        let s = p.snapshot();
        assert_eq!((s.done, s.eta), (0, None));
        assert_eq!(s.in_flight[0].3, None);

        big.add(5000, 50); // half the estimated rows of 900 expected bytes
        let s = p.snapshot();
        assert_eq!(s.done, 450);
        assert_eq!((s.rows, s.bytes), (50, 5000));
        assert_eq!(s.in_flight[0].3, Some(50.0));

        small.add(40, 0); // no row estimate: output against its share, ratio 1 until learned
        assert_eq!(p.snapshot().done, 490);
        drop(small);
        p.table_done("public.small");
        let s = p.snapshot();
        assert_eq!((s.done, s.tables_done), (550, 1));
        // Rows beyond the estimate never make a table look finished before it says so.
        big.add(0, 500);
        assert_eq!(p.snapshot().done, 100 + 891);
        drop(big);
        assert_eq!(p.snapshot().done, 1000);
    }

    #[test]
    fn output_is_scaled_by_the_ratio_finished_items_showed() {
        let p = quiet(2).expecting(3000);
        // A finished chunk of 1000 heap bytes gave 500 bytes of COPY text: ratio 2.
        p.begin("t", 1000, 0.0).add(500, 0);
        let second = p.begin("t", 2000, 0.0);
        second.add(250, 0);
        assert_eq!(p.snapshot().done, 1000 + 500);
        // Input consumed, when reported, is exact and wins.
        second.input(1500);
        assert_eq!(p.snapshot().done, 1000 + 1500);
    }

    #[test]
    fn callers_counting_themselves_are_believed() {
        let p = quiet(1);
        p.begin("t", 0, 0.0).add(10, 1);
        p.update(12345, 678);
        let s = p.snapshot();
        assert_eq!((s.bytes, s.rows), (12345, 678));
        assert_eq!(s.total, 0);
        assert!(!line(&s).contains('%'), "{}", line(&s));
    }

    #[test]
    fn json_objects_carry_every_figure() {
        let p = quiet(3).named("cbdump").expecting(2048);
        let t = p.begin("public.\"odd\"", 2048, 10.0);
        t.add(100, 5);
        let s = p.snapshot();
        let v: serde_json::Value = serde_json::from_str(&json_line("cbdump", &s)).unwrap();
        assert_eq!(v["tool"], "cbdump");
        assert_eq!(v["bytes_total"], 2048);
        assert_eq!(v["bytes_done"], 1024);
        assert_eq!(v["percent"], 50.0);
        assert_eq!(v["eta_seconds"], serde_json::Value::Null);
        assert_eq!(v["tables"], 3);
        assert_eq!(v["in_flight"][0]["table"], "public.\"odd\"");
        assert_eq!(v["in_flight"][0]["rows"], 5);
        assert_eq!(v["in_flight"][0]["bytes"], 100);
    }

    #[test]
    fn display_values() {
        assert_eq!("json".parse::<Display>(), Ok(Display::Json));
        assert_eq!("none".parse::<Display>(), Ok(Display::None));
        assert_eq!("auto".parse::<Display>(), Ok(Display::Auto));
        assert_eq!(
            "bar".parse::<Display>().unwrap_err().to_string(),
            "\"bar\": expected auto, json or none"
        );
        assert_eq!(clock(75.2), "1m15s");
        assert_eq!(clock(3.0), "3s");
    }
}
