//! The kill harness (issue 14): cbdump in each format, cbcopyout and cbdistfix stopped with
//! SIGKILL and SIGTERM at states of their run (a staging directory made, data bytes written,
//! pg_dump's TOC written) and at delays spread over a clean run; after each, the output is
//! complete and equal to the clean run's or absent, and after SIGTERM no temporary path
//! remains (`testkit::kill` says the contract). Prints the counts. A longer soak with hundreds
//! of kills: `cbtools-bench soak`.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::kill::{self, Point, Reference, Scenario, Stop, Tally};
use testkit::TestServer;

const DB: &str = "shop";

fn server() -> TestServer {
    let server = TestServer::start();
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
    server
}

/// The scenarios the harness runs on `server`; `inputs` holds cbdistfix's inputs.
pub fn scenarios(server: &TestServer, inputs: &Path) -> Vec<Scenario> {
    let pg_restore = server.install().bin("pg_restore");
    let mut v = Vec::new();
    for format in ["d", "c", "p"] {
        let env = env_of(server);
        let pg_restore = pg_restore.clone();
        v.push(Scenario {
            name: format!("cbdump -F {format}"),
            command: Box::new(move |dir: &Path| {
                let mut c = Command::new(env!("CARGO_BIN_EXE_cbdump"));
                env.apply(&mut c);
                c.args(["-F", format, "-j", "2", "-f"]).arg(dir.join("out"));
                c
            }),
            fingerprint: Box::new(move |out: &Path| {
                if format == "p" {
                    kill::fingerprint_file(out)
                } else {
                    kill::fingerprint_archive(&pg_restore, out)
                }
            }),
            states: vec![
                (
                    "staging",
                    Box::new(|d: &Path| kill::staging_has(d, ".out.cbdump-", None)),
                ),
                (
                    "copy",
                    Box::new(|d: &Path| kill::staging_has(d, ".out.cbdump-", Some("data"))),
                ),
                (
                    "schema",
                    Box::new(|d: &Path| {
                        kill::staging_has(d, ".out.cbdump-", Some("schema/toc.dat"))
                    }),
                ),
            ],
            file_set: false,
        });
    }
    if let Some(cbcopyout) = built("cbcopyout") {
        let env = env_of(server);
        v.push(Scenario {
            name: "cbcopyout -o DIR".into(),
            command: Box::new(move |dir: &Path| {
                let mut c = Command::new(&cbcopyout);
                env.apply(&mut c);
                c.args(["-t", "public.*", "-j", "2", "--chunk-size", "1M", "-o"])
                    .arg(format!("{}/out/", dir.display()));
                c
            }),
            fingerprint: Box::new(|out: &Path| kill::fingerprint_dir(out)),
            states: vec![
                (
                    "staging",
                    Box::new(|d: &Path| kill::staging_has(&d.join("out"), ".cbcopyout-", None)),
                ),
                (
                    "copy",
                    Box::new(|d: &Path| kill::staging_has(&d.join("out"), ".cbcopyout-", Some(""))),
                ),
            ],
            file_set: true,
        });
    }
    if let Some(cbdistfix) = built("cbdistfix") {
        for (kind, input) in [
            ("plain", "in.sql"),
            ("custom", "in.dump"),
            ("directory", "in.dir"),
        ] {
            let (cbdistfix, input) = (cbdistfix.clone(), inputs.join(input));
            v.push(Scenario {
                name: format!("cbdistfix {kind}"),
                command: Box::new(move |dir: &Path| {
                    let mut c = Command::new(&cbdistfix);
                    c.arg(&input).arg("-o").arg(dir.join("out"));
                    c
                }),
                fingerprint: Box::new(move |out: &Path| match kind {
                    "directory" => kill::fingerprint_dir(out),
                    _ => kill::fingerprint_file(out),
                }),
                states: vec![(
                    "temporary",
                    Box::new(|d: &Path| kill::staging_has(d, ".cbdistfix-", None)),
                )],
                file_set: false,
            });
        }
    }
    v
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

/// One of our other binaries, when built (`cargo test --workspace` builds them all).
fn built(name: &str) -> Option<PathBuf> {
    let p = testkit::workspace_bin(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping the {name} scenarios: {} is not built",
            p.display()
        );
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
fn run_all(server: &TestServer, delays: u32, seed: u64) -> Tally {
    let base = server.scratch().join("kill");
    make_inputs(server, &base.join("inputs"));
    let mut tally = Tally::default();
    for (s, scenario) in scenarios(server, &base.join("inputs")).iter().enumerate() {
        let reference: Reference = kill::reference(scenario, &base.join(format!("ref{s}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut points: Vec<Point> = scenario
            .states
            .iter()
            .map(|(n, _)| Point::State(n))
            .collect();
        points.extend(
            kill::spread(reference.took, delays, seed + s as u64)
                .into_iter()
                .map(Point::After),
        );
        for (p, point) in points.iter().enumerate() {
            for stop in [Stop::Kill, Stop::Term] {
                let dir = base.join(format!("t{s}-{p}-{stop:?}"));
                kill::trial(scenario, &dir, stop, point, &reference, &mut tally);
            }
        }
    }
    tally
}

#[test]
fn killed_anywhere_the_output_is_complete_or_absent() {
    let server = server();
    let tally = run_all(&server, 2, 14);
    tally.print();
    assert!(tally.kills > 0);
    assert!(tally.violations.is_empty(), "{:#?}", tally.violations);
}
