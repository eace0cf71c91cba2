//! Kill trials (issue 14): run a tool, stop it with SIGKILL or SIGTERM at a point of its run,
//! and judge what it left.
//!
//! The contract every writer keeps: what appears under an output name is complete and
//! verifiable, or nothing appears; after SIGTERM no temporary file remains and the exit status
//! is 143 (or 0 when the work was already done). After SIGKILL, which no handler sees, a
//! private staging directory may remain; it never carries an output name.
//!
//! Points of a run are either states the trial waits for (a staging directory appears, data
//! bytes land in it, pg_dump's TOC is written) or delays spread over the length of a clean
//! run. Only outcomes are asserted, never timing: a point a fast run has already passed just
//! becomes a later point. The CI test (`dump/tests/kill.rs`) and the soak
//! (`cbtools-bench soak`) share this module.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::TestServer;

/// Why a run or its output breaks the contract (or a fixture could not be read).
#[derive(Debug, Clone)]
pub struct Broken(pub String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Broken {
    fn from(s: String) -> Broken {
        Broken(s)
    }
}

impl From<&str> for Broken {
    fn from(s: &str) -> Broken {
        Broken(s.to_string())
    }
}

/// A fingerprint of a complete output (`Err` when it is not readable).
pub type Fingerprint = Box<dyn Fn(&Path) -> Result<u64, Broken> + Send + Sync>;

/// A predicate over a trial's directory: "the run has reached this state".
pub type Reached = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// One tool writing `out` inside a trial directory.
pub struct Scenario {
    pub name: String,
    /// The command, given the trial directory; it must write `<dir>/out`.
    pub command: Box<dyn Fn(&Path) -> Command + Send + Sync>,
    /// A fingerprint of a complete output at `<dir>/out` (`Err` when it is not readable); the
    /// clean run's is the reference every killed run's output must equal.
    pub fingerprint: Fingerprint,
    /// Named states to kill at, besides the delays.
    pub states: Vec<(&'static str, Reached)>,
    /// The output is a directory whose files appear one by one (cbcopyout into a directory):
    /// "complete" means every file there, each equal to the clean run's.
    pub file_set: bool,
}

/// How a trial stops the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    Kill,
    Term,
}

impl Stop {
    fn signal(self) -> i32 {
        match self {
            Stop::Kill => libc::SIGKILL,
            Stop::Term => libc::SIGTERM,
        }
    }
}

/// Where in the run a trial stops the tool.
#[derive(Debug, Clone)]
pub enum Point {
    State(&'static str),
    After(Duration),
}

/// What a trial found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The output is there and equals the clean run's.
    Complete,
    /// Nothing under the output name.
    Absent,
    /// cbcopyout into a directory killed while renaming: some files, each whole.
    WholeFilesSoFar,
}

/// Counts of trials by scenario, stop and outcome, and of staging directories SIGKILL left.
#[derive(Default, Debug)]
pub struct Tally {
    pub counts: BTreeMap<(String, Stop, Outcome), u32>,
    pub kills: u32,
    pub leftovers_after_kill: u32,
    pub violations: Vec<String>,
}

impl Tally {
    pub fn print(&self) {
        println!(
            "kill trials: {} (violations: {}; staging directories left by SIGKILL: {})",
            self.kills,
            self.violations.len(),
            self.leftovers_after_kill
        );
        for ((name, stop, outcome), n) in &self.counts {
            println!("  {name:<24} {stop:?}  {outcome:?}: {n}");
        }
        for v in &self.violations {
            println!("  VIOLATION: {v}");
        }
    }
}

/// What a clean run produced.
pub struct Reference {
    pub fingerprint: u64,
    pub took: Duration,
    /// The clean run's output.
    pub out: PathBuf,
}

/// A clean run of `scenario` in `dir`: its output's fingerprint and how long it took.
pub fn reference(scenario: &Scenario, dir: &Path) -> Result<Reference, Broken> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let out = (scenario.command)(dir)
        .output()
        .map_err(|e| format!("{}: {e}", scenario.name))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(Broken::from(format!(
            "{}: the clean run failed: {}",
            scenario.name,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let out = dir.join("out");
    Ok(Reference {
        fingerprint: (scenario.fingerprint)(&out)?,
        took,
        out,
    })
}

/// Runs `scenario` in a fresh `dir`, stops it with `stop` at `point`, and judges the result.
pub fn trial(
    scenario: &Scenario,
    dir: &Path,
    stop: Stop,
    point: &Point,
    expected: &Reference,
    tally: &mut Tally,
) {
    let what = format!("{} {stop:?} at {point:?}", scenario.name);
    if let Err(e) = std::fs::create_dir_all(dir) {
        tally.violations.push(format!("{what}: {e}"));
        return;
    }
    let mut child = match (scenario.command)(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tally.violations.push(format!("{what}: {e}"));
            return;
        }
    };
    wait_for_point(scenario, dir, point, &mut child);
    // SAFETY: a signal to our own child, which has not been reaped (try_wait does not reap
    // a running child, and a finished one has simply ignored it).
    unsafe { libc::kill(child.id() as i32, stop.signal()) };
    let status = wait_bounded(&mut child);
    tally.kills += 1;
    let judged = judge(scenario, dir, stop, status, expected);
    match judged {
        Ok((outcome, left)) => {
            tally.leftovers_after_kill += left;
            *tally
                .counts
                .entry((scenario.name.clone(), stop, outcome))
                .or_default() += 1;
        }
        Err(v) => tally.violations.push(format!("{what}: {v}")),
    }
}

fn wait_for_point(scenario: &Scenario, dir: &Path, point: &Point, child: &mut std::process::Child) {
    match point {
        Point::After(d) => std::thread::sleep(*d),
        Point::State(name) => {
            let Some((_, reached)) = scenario.states.iter().find(|(n, _)| n == name) else {
                return;
            };
            let deadline = Instant::now() + Duration::from_secs(120);
            while !reached(dir) && Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }
}

/// The exit status, or `None` for a tool that would not stop (killed then).
fn wait_bounded(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The outcome and how many staging entries SIGKILL left, or what broke the contract.
fn judge(
    scenario: &Scenario,
    dir: &Path,
    stop: Stop,
    status: Option<std::process::ExitStatus>,
    expected: &Reference,
) -> Result<(Outcome, u32), Broken> {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return Err(Broken::from("did not stop within two minutes"));
    };
    let out = dir.join("out");
    let outcome = if scenario.file_set {
        judge_file_set(scenario, &out, expected)?
    } else if out.exists() {
        let got = (scenario.fingerprint)(&out)?;
        if got != expected.fingerprint {
            return Err(Broken::from("an output differs from the clean run's"));
        }
        Outcome::Complete
    } else {
        Outcome::Absent
    };
    let mut left = hidden_entries(dir);
    if out.is_dir() {
        left.extend(hidden_entries(&out));
    }
    if stop == Stop::Term {
        if !left.is_empty() {
            return Err(Broken::from(format!(
                "temporary paths left after SIGTERM: {left:?}"
            )));
        }
        match (status.code(), status.signal(), outcome) {
            (Some(143), _, Outcome::Absent | Outcome::Complete) => {}
            (Some(0), _, Outcome::Complete) => {}
            // Before its handlers are installed (the first milliseconds), SIGTERM's default
            // action ends the tool; it has written nothing yet.
            (None, Some(libc::SIGTERM), Outcome::Absent) => {}
            other => {
                return Err(Broken::from(format!(
                    "after SIGTERM: status {status:?}, {other:?}"
                )))
            }
        }
        if outcome == Outcome::WholeFilesSoFar {
            return Err(Broken::from("SIGTERM left a partial set of files"));
        }
    } else if status.signal() != Some(libc::SIGKILL) && !status.success() {
        return Err(Broken::from(format!(
            "SIGKILL: unexpected status {status:?}"
        )));
    }
    Ok((outcome, left.len() as u32))
}

/// cbcopyout into a directory: each file equal to the clean run's file of that name; all of
/// them (complete) or none (absent), or, after SIGKILL during the renames, some.
fn judge_file_set(
    scenario: &Scenario,
    out: &Path,
    expected: &Reference,
) -> Result<Outcome, Broken> {
    let files = visible_files(out);
    if files.is_empty() {
        return Ok(Outcome::Absent);
    }
    for f in &files {
        let name = f.file_name().unwrap_or_default();
        let want = fingerprint_file(&expected.out.join(name))
            .map_err(|_| format!("a file the clean run did not make: {}", f.display()))?;
        if fingerprint_file(f)? != want {
            return Err(Broken::from(format!(
                "{} differs from the clean run's",
                f.display()
            )));
        }
    }
    if (scenario.fingerprint)(out)? == expected.fingerprint {
        Ok(Outcome::Complete)
    } else {
        Ok(Outcome::WholeFilesSoFar)
    }
}

fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// The non-hidden files of a directory, sorted.
pub fn visible_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A fingerprint of bytes, skipping the lines pg_dump 17.6/16.10/15.14+ fills with a random
/// key (`\restrict KEY`, `\unrestrict KEY`), which differ on every rendering.
pub fn fingerprint_script(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for line in bytes.split(|b| *b == b'\n') {
        if line.starts_with(b"\\restrict ") || line.starts_with(b"\\unrestrict ") {
            continue;
        }
        line.hash(&mut h);
    }
    h.finish()
}

/// A fingerprint of a file's bytes.
pub fn fingerprint_file(path: &Path) -> Result<u64, Broken> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(fingerprint_script(&bytes))
}

/// A fingerprint of every visible file of a directory (names and contents).
pub fn fingerprint_dir(dir: &Path) -> Result<u64, Broken> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in visible_files(dir) {
        f.file_name().hash(&mut h);
        fingerprint_file(&f)?.hash(&mut h);
    }
    Ok(h.finish())
}

/// An archive rendered by `pg_restore -f -` (which reads every data block: a cut or corrupt
/// archive fails here), fingerprinted.
pub fn fingerprint_archive(pg_restore: &Path, archive: &Path) -> Result<u64, Broken> {
    let out = Command::new(pg_restore)
        .arg("-f")
        .arg("-")
        .arg(archive)
        .output()
        .map_err(|e| format!("running pg_restore: {e}"))?;
    if !out.status.success() {
        return Err(Broken::from(format!(
            "pg_restore cannot read {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(fingerprint_script(&out.stdout))
}

/// Whether a hidden entry whose name starts with `prefix` exists in `dir`, and, with `sub`,
/// whether one of them holds a non-empty file somewhere below `sub`.
pub fn staging_has(dir: &Path, prefix: &str, sub: Option<&str>) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd.filter_map(|e| e.ok()) {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let Some(sub) = sub else {
            return true;
        };
        if non_empty_file_below(&e.path().join(sub), 3) {
            return true;
        }
    }
    false
}

fn non_empty_file_below(p: &Path, depth: u32) -> bool {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => m.len() > 0,
        Ok(m) if m.is_dir() && depth > 0 => std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| non_empty_file_below(&e.path(), depth - 1))
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// Delays spread over a clean run of length `took`: `n` of them from 0 to 1.1 × `took`, each
/// moved by up to half a step with a small LCG seeded by `seed` (the same seed, the same
/// points).
pub fn spread(took: Duration, n: u32, seed: u64) -> Vec<Duration> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let span = took.as_secs_f64() * 1.1;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = ((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
            let at = (f64::from(i) + 0.5 + jitter) / f64::from(n) * span;
            Duration::from_secs_f64(at.max(0.0))
        })
        .collect()
}

// ---- The scenarios: cbdump in each format, cbcopyout into a directory, cbdistfix on each
// kind of dump; shared by the CI test and the soak.

/// Where our binaries are.
pub struct Bins {
    pub cbdump: PathBuf,
    pub cbcopyout: PathBuf,
    pub cbdistfix: PathBuf,
}

/// The database every scenario reads: one table big enough for a COPY to be caught mid-way,
/// an index, a foreign key, a sequence and a large object.
pub fn fill(server: &TestServer) {
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE TABLE public.big (id int PRIMARY KEY, t text, n numeric);
         INSERT INTO public.big SELECT g, repeat(md5(g::text), 3), g / 7.0 FROM generate_series(1, 60000) g;
         CREATE INDEX big_t ON public.big (t);
         CREATE TABLE public.small (id serial PRIMARY KEY, big_id int REFERENCES public.big, note text);
         INSERT INTO public.small (big_id, note) SELECT g, 'note ' || g FROM generate_series(1, 2000) g;
         SELECT lo_from_bytea(0, 'a large object');
         ANALYZE;",
    );
}

const DB: &str = "shop";

/// The scenarios the harness runs on `server`; `inputs` holds cbdistfix's inputs.
pub fn scenarios(server: &TestServer, bins: &Bins, inputs: &Path) -> Vec<Scenario> {
    let mut v: Vec<Scenario> = ["d", "c", "p"]
        .into_iter()
        .map(|format| cbdump_scenario(server, &bins.cbdump, format))
        .collect();
    if let Some(cbcopyout) = built(&bins.cbcopyout) {
        v.push(cbcopyout_scenario(server, cbcopyout));
    }
    if let Some(cbdistfix) = built(&bins.cbdistfix) {
        for (kind, input) in [
            ("plain", "in.sql"),
            ("custom", "in.dump"),
            ("directory", "in.dir"),
        ] {
            v.push(cbdistfix_scenario(
                cbdistfix.clone(),
                kind,
                inputs.join(input),
            ));
        }
    }
    v
}

/// cbdump in one format, checked by what pg_restore renders from the archive.
fn cbdump_scenario(server: &TestServer, cbdump: &Path, format: &'static str) -> Scenario {
    let env = env_of(server);
    let pg_restore = server.install().bin("pg_restore");
    let cbdump = cbdump.to_path_buf();
    Scenario {
        name: format!("cbdump -F {format}"),
        command: Box::new(move |dir: &Path| {
            let mut c = Command::new(&cbdump);
            env.apply(&mut c);
            c.args(["-F", format, "-j", "2", "-f"]).arg(dir.join("out"));
            c
        }),
        fingerprint: Box::new(move |out: &Path| {
            if format == "p" {
                fingerprint_file(out)
            } else {
                fingerprint_archive(&pg_restore, out)
            }
        }),
        states: vec![
            (
                "staging",
                Box::new(|d: &Path| staging_has(d, ".out.cbdump-", None)),
            ),
            (
                "copy",
                Box::new(|d: &Path| staging_has(d, ".out.cbdump-", Some("data"))),
            ),
            (
                "schema",
                Box::new(|d: &Path| staging_has(d, ".out.cbdump-", Some("schema/toc.dat"))),
            ),
        ],
        file_set: false,
    }
}

/// cbcopyout of every table into a directory, two workers, tables split into chunks.
fn cbcopyout_scenario(server: &TestServer, cbcopyout: PathBuf) -> Scenario {
    let env = env_of(server);
    Scenario {
        name: "cbcopyout -o DIR".into(),
        command: Box::new(move |dir: &Path| {
            let mut c = Command::new(&cbcopyout);
            env.apply(&mut c);
            c.args(["-t", "public.*", "-j", "2", "--chunk-size", "1M", "-o"])
                .arg(format!("{}/out/", dir.display()));
            c
        }),
        fingerprint: Box::new(|out: &Path| fingerprint_dir(out)),
        states: vec![
            (
                "staging",
                Box::new(|d: &Path| staging_has(&d.join("out"), ".cbcopyout-", None)),
            ),
            (
                "copy",
                Box::new(|d: &Path| staging_has(&d.join("out"), ".cbcopyout-", Some(""))),
            ),
        ],
        file_set: true,
    }
}

/// cbdistfix rewriting one kind of pg_dump output.
fn cbdistfix_scenario(cbdistfix: PathBuf, kind: &'static str, input: PathBuf) -> Scenario {
    Scenario {
        name: format!("cbdistfix {kind}"),
        command: Box::new(move |dir: &Path| {
            let mut c = Command::new(&cbdistfix);
            c.arg(&input).arg("--output").arg(dir.join("out"));
            c
        }),
        fingerprint: Box::new(move |out: &Path| match kind {
            "directory" => fingerprint_dir(out),
            _ => fingerprint_file(out),
        }),
        states: vec![(
            "temporary",
            Box::new(|d: &Path| staging_has(d, ".cbdistfix-", None)),
        )],
        file_set: false,
    }
}

/// cbdistfix's inputs: pg_dump's plain, custom and directory dumps of the database.
pub fn make_inputs(server: &TestServer, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (format, name) in [("p", "in.sql"), ("c", "in.dump"), ("d", "in.dir")] {
        let out = server
            .command("pg_dump")
            .args(["-d", DB, "-F", format, "-f"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One of our binaries, when built (`cargo test --workspace` builds them all).
fn built(p: &Path) -> Option<PathBuf> {
    if p.exists() {
        Some(p.to_path_buf())
    } else {
        eprintln!("skipping its scenarios: {} is not built", p.display());
        None
    }
}

/// The PG* variables that point a command at the server, captured once.
#[derive(Clone)]
struct Env(Vec<(String, String)>, Vec<String>);

impl Env {
    fn apply(&self, c: &mut Command) {
        for k in &self.1 {
            c.env_remove(k);
        }
        for (k, v) in &self.0 {
            c.env(k, v);
        }
    }
}

fn env_of(server: &TestServer) -> Env {
    let probe = server.tool("true");
    let set = probe
        .get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                v?.to_string_lossy().into_owned(),
            ))
        })
        .chain([("PGDATABASE".to_string(), DB.to_string())])
        .collect();
    let removed = probe
        .get_envs()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    Env(set, removed)
}

/// Every scenario: a clean run for the reference, then SIGKILL and SIGTERM at each state and
/// at `delays` delays spread over the clean run.
pub fn run_all(server: &TestServer, bins: &Bins, delays: u32, seed: u64) -> Tally {
    let base = server.scratch().join(format!("kill-{seed}"));
    make_inputs(server, &base.join("inputs"));
    let mut tally = Tally::default();
    for (s, scenario) in scenarios(server, bins, &base.join("inputs"))
        .iter()
        .enumerate()
    {
        let reference = match reference(scenario, &base.join(format!("ref{s}"))) {
            Ok(r) => r,
            Err(e) => {
                tally.violations.push(format!("{}: {e}", scenario.name));
                continue;
            }
        };
        let mut points: Vec<Point> = scenario
            .states
            .iter()
            .map(|(n, _)| Point::State(n))
            .collect();
        points.extend(
            spread(reference.took, delays, seed + s as u64)
                .into_iter()
                .map(Point::After),
        );
        for (p, point) in points.iter().enumerate() {
            for stop in [Stop::Kill, Stop::Term] {
                let dir = base.join(format!("t{s}-{p}-{stop:?}"));
                trial(scenario, &dir, stop, point, &reference, &mut tally);
            }
        }
    }
    tally
}
