//! Progress on stderr, when it is a terminal: bytes and rows copied, tables finished, and an
//! ETA from the tables' on-disk size (COPY's bytes are close to it: within 10% for the
//! benchmark table in binary format). `-v` adds one line per finished table in any case.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::TableReport;

pub struct Progress {
    bar: ProgressBar,
    bytes: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
    tables_done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    verbose: bool,
}

impl Progress {
    pub fn new(total_bytes: u64, tables: usize, verbose: bool) -> Progress {
        // indicatif draws nothing when stderr is not a terminal: logs and pipes stay clean.
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/~{total_bytes} ({bytes_per_sec})  {msg}  {elapsed_precise}, ETA {eta}",
            )
            .expect("valid template"),
        );
        let bytes = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let tables_done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (bar, bytes, rows, done, stop) = (
                bar.clone(),
                bytes.clone(),
                rows.clone(),
                tables_done.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    bar.set_position(bytes.load(Ordering::Relaxed));
                    bar.set_message(format!(
                        "{} rows, tables {}/{tables}",
                        rows.load(Ordering::Relaxed),
                        done.load(Ordering::Relaxed)
                    ));
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Progress {
            bar,
            bytes,
            rows,
            tables_done,
            stop,
            ticker: Some(ticker),
            verbose,
        }
    }

    /// The counter the workers add their bytes to.
    pub fn bytes_counter(&self) -> &AtomicU64 {
        &self.bytes
    }

    /// Bytes an earlier run copied (`--resume`), so the ETA covers only what is left.
    pub fn skip_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.bar.reset_eta();
    }

    pub fn table_done(&self, t: &TableReport) {
        self.rows.fetch_add(t.rows, Ordering::Relaxed);
        self.tables_done.fetch_add(1, Ordering::Relaxed);
        if self.verbose {
            self.say(&format!(
                "copied {} ({} rows, {}, {:.2} s, {} chunk{}, {})",
                t.table,
                t.rows,
                pipeline::progress::human(t.bytes),
                t.seconds,
                t.chunks,
                if t.chunks == 1 { "" } else { "s" },
                t.format
            ));
        }
    }

    /// A message line that does not tear the progress line.
    pub fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("cbclone: {line}"));
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
