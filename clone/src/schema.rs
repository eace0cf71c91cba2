//! STEP 2 and STEP 4: the schema, from the source's own pg_dump on the snapshot, rewritten for
//! the target and applied by the target's pg_restore in two sections around the data.
//!
//! Why pg_restore rather than our own statement runner: pg_dump's archive already orders every
//! object by its dependencies and tags each with its section, and pg_restore applies it with
//! the exact semantics users know (pgcopydb clones schemas the same way). Pre-data runs as
//! `--single-transaction`, so a kill leaves either the whole schema or none of it — which is
//! what lets `--resume` tell the two apart by looking. Post-data runs `-j N`, pg_restore's own
//! scheduler building indexes and constraints in parallel with its lock-conflict rules. The
//! next step is the workspace's shared restore engine once it leaves the cbrestore crate,
//! which would also start post-data items per table as tables finish.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use archive::custom::rewrite_toc;
use archive::{CustomArchive, TocEntry};
use cluster::{Client, ConnParams, ServerInfo};
use distfix::policy::Decision;

use crate::interrupt::TempPath;
use crate::tools::{self, Program};
use crate::CloneError;

/// pg_dump's selection and ownership flags, passed through.
#[derive(Debug, Clone, Default)]
pub struct DumpFlags {
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub no_owner: bool,
    pub no_acl: bool,
}

/// The schema of the source at the snapshot, as a custom archive in a private temporary file
/// (schema only: kilobytes to a few megabytes, removed when dropped).
pub fn dump(
    pg_dump: &Program,
    source: &ConnParams,
    snapshot_id: &str,
    flags: &DumpFlags,
) -> Result<TempPath, CloneError> {
    let file = temp_file()?;
    let mut cmd = tools::command(pg_dump, source);
    cmd.args(["--format=custom", "--schema-only"])
        .arg(format!("--snapshot={snapshot_id}"))
        .arg("--file")
        .arg(file.path());
    if pg_dump.major >= 12 {
        cmd.arg("--no-sync");
    }
    for (flag, values) in [
        ("--table", &flags.tables),
        ("--exclude-table", &flags.exclude_tables),
        ("--schema", &flags.schemas),
        ("--exclude-schema", &flags.exclude_schemas),
    ] {
        for v in values {
            cmd.arg(format!("{flag}={v}"));
        }
    }
    if flags.no_owner {
        cmd.arg("--no-owner");
    }
    if flags.no_acl {
        cmd.arg("--no-acl");
    }
    tools::run(cmd, "pg_dump --schema-only on the source")?;
    Ok(file)
}

/// A private temporary file (registered with the signal facility, so a signal removes it).
fn temp_file() -> Result<TempPath, CloneError> {
    Ok(crate::interrupt::temp_file(".cbclone-schema-")?.1)
}

/// What the rewrite did, for the report.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// Cloudberry target: the DISTRIBUTED clause decided for each table.
    pub decisions: Vec<Decision>,
    /// PostgreSQL target of an MPP source: what the translation changed or skipped, one line
    /// each (`translated TABLE public.t: ...`).
    pub translated: Vec<String>,
}

/// The archive rewritten for the target's dialect, when it needs to be:
/// - Cloudberry/Greenplum target: DISTRIBUTED clauses chosen by cbdistfix's rules (the same
///   `--policy/--default/--on-conflict`) from the source's keys and, as `cbdistfix --stats`,
///   its `pg_stats` (read by `stats_client`, inside the snapshot). Clauses an MPP source's
///   dump already has are kept.
/// - PostgreSQL target of an MPP source: `distfix::translate`, the workspace's one
///   Greenplum→PostgreSQL translation (distribution clauses, append-optimized storage options
///   and access methods, column encodings, gp_* grants), so a clone translates exactly as
///   `cbdistfix --target postgres` and cbrestore do.
pub fn rewrite_for_target(
    schema: TempPath,
    source: &ServerInfo,
    target: &ServerInfo,
    stats_client: &mut Client,
    rules: &distfix::rules::RuleArgs,
) -> Result<(TempPath, Rewritten), CloneError> {
    let bad = |e: &dyn std::fmt::Display| CloneError::Rewrite(e.to_string());
    if !target.flavor.is_mpp() && rules.any() {
        // Before anything reaches the target: a rule given for nothing is a mistake to say,
        // not to ignore.
        return Err(CloneError::Usage(
            "--policy, --default and --on-conflict choose DISTRIBUTED clauses: the target is PostgreSQL, which has none".into(),
        ));
    }
    if !target.flavor.is_mpp() && !source.flavor.is_mpp() {
        return Ok((schema, Rewritten::default()));
    }
    let archive = CustomArchive::open(schema.path()).map_err(|e| bad(&e))?;
    let (entries, rewritten) = if target.flavor.is_mpp() {
        let catalog = distfix::archive::collect(&archive.entries).map_err(|e| bad(&e))?;
        // Statistics only guide the default choice; a source without pg_stats for a table
        // (never analyzed) falls back to the keys alone.
        let stats = distfix::stats::fetch(stats_client).unwrap_or_else(|_| HashMap::new());
        let plan = rules.plan(&catalog, &stats, false).map_err(|e| bad(&e))?;
        let (entries, _) = distfix::archive::apply(&archive.entries, &plan).map_err(|e| bad(&e))?;
        (
            entries,
            Rewritten {
                decisions: plan.decisions,
                translated: Vec::new(),
            },
        )
    } else {
        let mut tr = distfix::translate::Translator::new();
        let entries = distfix::translate::translate_entries(&archive.entries, &mut tr)
            .map_err(|e| bad(&e))?;
        (
            entries,
            Rewritten {
                decisions: Vec::new(),
                translated: tr.report().iter().map(|r| r.to_string()).collect(),
            },
        )
    };
    let out = temp_file()?;
    rewrite_toc(&archive, &entries, out.path()).map_err(|e| bad(&e))?;
    Ok((out, rewritten))
}

/// Which section pg_restore applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    PreData,
    PostData,
}

/// Runs the target's pg_restore for one section: pre-data in one transaction, post-data with
/// `jobs` parallel connections, optionally restricted to a `-L` list. `-O`/`-x` are given to
/// pg_restore too: pg_dump ignores `--no-owner` when it writes an archive.
pub fn restore(
    pg_restore: &Program,
    target: &ConnParams,
    archive: &Path,
    section: Section,
    jobs: usize,
    list: Option<&Path>,
    flags: &DumpFlags,
) -> Result<(), CloneError> {
    let mut cmd = tools::command(pg_restore, target);
    cmd.arg("--exit-on-error");
    if flags.no_owner {
        cmd.arg("--no-owner");
    }
    if flags.no_acl {
        cmd.arg("--no-acl");
    }
    match section {
        Section::PreData => {
            cmd.args(["--section=pre-data", "--single-transaction"]);
        }
        Section::PostData => {
            cmd.arg("--section=post-data")
                .arg(format!("--jobs={}", jobs.max(1)));
        }
    }
    if let Some(list) = list {
        cmd.arg("--use-list").arg(list);
    }
    cmd.arg(archive);
    let what = match section {
        Section::PreData => "pg_restore --section=pre-data on the target",
        Section::PostData => "pg_restore --section=post-data on the target",
    };
    tools::run(cmd, what)
}

/// The post-data entries that concern one table alone — its indexes and its primary key,
/// unique and exclusion constraints — by `schema.table`. They can be built as soon as that
/// table's rows are in, while other tables are still copying (foreign keys, which need two
/// tables, and index attachments wait for the final pass).
pub fn per_table_entries(archive: &Path) -> Result<HashMap<String, Vec<i32>>, CloneError> {
    let a = CustomArchive::open(archive).map_err(|e| CloneError::Rewrite(e.to_string()))?;
    let tables: HashMap<i32, String> = a
        .entries
        .iter()
        .filter(|e| e.desc() == "TABLE")
        .map(|e| (e.dump_id, cluster::quote::display(&e.namespace(), &e.tag())))
        .collect();
    let mut out: HashMap<String, Vec<i32>> = HashMap::new();
    for e in &a.entries {
        let own = e.section == archive::toc::SECTION_POST_DATA as i64
            && matches!(e.desc().as_ref(), "INDEX" | "CONSTRAINT");
        let on: Vec<&String> = e
            .dependencies()
            .iter()
            .filter_map(|d| tables.get(d))
            .collect();
        if own && on.len() == 1 {
            out.entry(on[0].clone()).or_default().push(e.dump_id);
        }
    }
    Ok(out)
}

/// A `-L` list of the archive's entries without `skip` (built early, per table) and, for a
/// resumed run (`target` given), without the post-data objects an interrupted pg_restore
/// already created (indexes, constraints, triggers, rules, policies), which would otherwise
/// fail with "already exists". What remains is safe to run again (grants, comments, index
/// attachments, which are no-ops when done).
pub fn post_data_remaining(
    archive: &Path,
    mut target: Option<&mut Client>,
    skip: &std::collections::BTreeSet<i32>,
) -> Result<TempPath, CloneError> {
    let a = CustomArchive::open(archive).map_err(|e| CloneError::Rewrite(e.to_string()))?;
    let mut text = String::new();
    for e in &a.entries {
        if skip.contains(&e.dump_id) {
            continue;
        }
        if let Some(target) = target.as_deref_mut() {
            if e.section == archive::toc::SECTION_POST_DATA as i64 && exists(target, e)? {
                continue;
            }
        }
        text.push_str(&format!("{};\n", e.dump_id));
    }
    write_list(&text)
}

/// A `-L` list of exactly these entries.
pub fn list_of(ids: &[i32]) -> Result<TempPath, CloneError> {
    let text: String = ids.iter().map(|id| format!("{id};\n")).collect();
    write_list(&text)
}

fn write_list(text: &str) -> Result<TempPath, CloneError> {
    let (mut file, list) = crate::interrupt::temp_file(".cbclone-list-")?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.flush())
        .map_err(CloneError::io("writing a pg_restore list"))?;
    Ok(list)
}

/// Whether the object a post-data entry creates is already on the target.
fn exists(target: &mut Client, e: &TocEntry) -> Result<bool, CloneError> {
    let on_table = |catalog: &str, rel: &str, name: &str| {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {catalog} x JOIN pg_class r ON r.oid = x.{rel} \
               JOIN pg_namespace n ON n.oid = r.relnamespace \
              WHERE n.nspname = $1 AND r.relname || ' ' || x.{name} = $2)"
        )
    };
    let sql = match e.desc().as_ref() {
        "INDEX" => {
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2)"
                .to_string()
        }
        "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" => {
            on_table("pg_constraint", "conrelid", "conname")
        }
        "TRIGGER" => on_table("pg_trigger", "tgrelid", "tgname"),
        "RULE" => on_table("pg_rewrite", "ev_class", "rulename"),
        "POLICY" => on_table("pg_policy", "polrelid", "polname"),
        _ => return Ok(false),
    };
    let ns = e.namespace().into_owned();
    let tag = e.tag().into_owned();
    Ok(target
        .query_one(&sql, &[&ns, &tag])
        .map_err(CloneError::query(format!("looking for {} {tag}", e.desc())))?
        .get(0))
}
