//! The MPP statements of a restore in which every segment reads its own backup files
//! (`cbrestore --on-segment`): no row passes through the coordinator.
//!
//! Two ways to load a table, both measured on the Greenplum-7 stand-in (3 segments on one
//! 2-core host, 2M rows of int/text/numeric/timestamptz):
//! - [`copy_on_segment`]: `COPY t FROM PROGRAM '<read>' WITH (FORMAT csv, ..., on_segment
//!   true)`; each segment loads what its program prints into itself (2.87 s). The server checks
//!   that every row belongs to the segment reading it (`gp_enable_segment_copy_checking`, left
//!   on), so this is for files cut by the same policy on the same number of segments, and for
//!   randomly distributed tables (any row fits anywhere). A misplaced row fails the statement at
//!   once: [`is_misplaced_row`] tells the caller to roll back and use the other way.
//! - [`insert_from_segments`]: a `CREATE EXTERNAL WEB TEMP TABLE ... EXECUTE '<read>' ON ALL`
//!   and `INSERT INTO t SELECT ... FROM` it: each segment prints its files' rows and the
//!   interconnect sends every row to the segment the target's policy picks (5.13 s): any source
//!   shape into any target shape, replicated targets included.
//!
//! `<read>` is one shell command for all segments, built by [`segment_command`]: a `case` on the
//! segment's id that decompresses exactly the files that segment was given. (`ON SEGMENT n` is
//! not in the stand-in's grammar for web tables; `ON ALL` with a `case` gives each segment its
//! own work and costs nothing on the others.) COPY programs see the id as the `<SEGID>` the server
//! substitutes, web-table commands as `$GP_SEGMENT_ID`; both are spelled by [`Selector`].
//!
//! The programs run as the database server's OS user on each segment host: the role needs
//! superuser, or `pg_execute_server_program` plus the right to create `EXECUTE` external tables
//! ([`check_rights`]); the files must be readable by that OS user there ([`probe`]).

use std::collections::{BTreeMap, BTreeSet};

use postgres::{Client, GenericClient};

pub use crate::segment_io::SegmentEnd;
use crate::{quote, ClusterError};

/// Why a segment load could not run.
#[derive(Debug, thiserror::Error)]
pub enum SegmentLoadError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The target cannot do it (rights, columns); the message says what to change.
    #[error("{0}")]
    Refused(String),
}

/// Where the MPP catalogs live: `pg_catalog`, or look-alike tables named by
/// `CBTOOLS_MPP_CATALOG_SCHEMA` (as [`crate::mpp::MppCatalog::from_env`]).
#[derive(Debug, Clone)]
pub struct LoadCatalog {
    schema: String,
}

impl Default for LoadCatalog {
    fn default() -> Self {
        LoadCatalog {
            schema: "pg_catalog".into(),
        }
    }
}

/// A target table's distribution and how many segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicy {
    pub kind: crate::mpp::Distribution,
    /// `gp_distribution_policy.numsegments`: a table may live on fewer segments than the
    /// cluster has (after an expansion that did not redistribute it).
    pub numsegments: u32,
}

/// How a segment's command names the segment it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// A `COPY ... ON SEGMENT` program: the server replaces `<SEGID>` before running it.
    CopyProgram,
    /// An external web table's command: the server sets `$GP_SEGMENT_ID`.
    WebTable,
}

impl Selector {
    fn word(self) -> &'static str {
        match self {
            Selector::CopyProgram => "<SEGID>",
            Selector::WebTable => "\"$GP_SEGMENT_ID\"",
        }
    }
}

/// Which source contents each of `target` segments reads: content `c` goes to segment
/// `c mod target`, so segment `i` reads `i, i + target, i + 2·target, ...` (gprestore's
/// `--resize-cluster` rule). The files of content `c` must therefore be on the host of target
/// segment `c mod target`.
pub fn assign(source_contents: u32, target: u32) -> BTreeMap<u32, Vec<u32>> {
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    if target == 0 {
        return out;
    }
    for c in 0..source_contents {
        out.entry(c % target).or_default().push(c);
    }
    out
}

pub use crate::segment_io::shell_quote;

/// `case <id> in 0) <program> 'f0' 'f3';; 1) ...;; esac`: each segment runs `program` on its
/// own files (gzip, zstd and cat all concatenate the files they are given); a segment without
/// files prints nothing and succeeds.
pub fn segment_command(
    selector: Selector,
    program: &str,
    files: &BTreeMap<i32, Vec<String>>,
) -> String {
    let mut s = format!("case {} in", selector.word());
    for (segment, paths) in files.iter().filter(|(_, p)| !p.is_empty()) {
        let words: Vec<String> = paths.iter().map(|p| shell_quote(p)).collect();
        s.push_str(&format!(" {segment}) {program} {};;", words.join(" ")));
    }
    s.push_str(" esac");
    s
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote::ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// CSV as gpbackup writes it (`,`, `"`, NULL = empty unquoted field) in `encoding`.
fn csv_options(encoding: Option<&str>) -> String {
    match encoding {
        Some(e) => format!("FORMAT csv, DELIMITER ',', ENCODING {}", quote::literal(e)),
        None => "FORMAT csv, DELIMITER ','".into(),
    }
}

/// `COPY <rel> (<cols>) FROM [PROGRAM] '<source>' WITH (FORMAT csv, ..., on_segment true)`
/// ([`crate::segment_io::copy_from_sql`] spells `ON SEGMENT` the way both grammars take it).
pub fn copy_on_segment_sql(
    relation: &str,
    columns: &[String],
    source: SegmentEnd<'_>,
    encoding: Option<&str>,
) -> String {
    crate::segment_io::copy_from_sql(
        relation,
        (!columns.is_empty()).then_some(columns),
        source,
        &csv_options(encoding),
    )
}

/// [`crate::segment_io::web_table_sql`] (gpbackup's CSV, `ON ALL`) in the files' encoding.
pub fn web_table_sql(
    name: &str,
    columns: &[(String, String)],
    command: &str,
    encoding: Option<&str>,
) -> String {
    let sql = crate::segment_io::web_table_sql(name, columns, command);
    match encoding {
        Some(e) => format!("{sql} ENCODING {}", quote::literal(e)),
        None => sql,
    }
}

/// `INSERT INTO <rel> (<cols>) SELECT <cols> FROM <web>`.
pub fn insert_select_sql(relation: &str, columns: &[String], web: &str) -> String {
    let cols = column_list(columns);
    format!(
        "INSERT INTO {relation} ({cols}) SELECT {cols} FROM {}",
        quote::ident(web)
    )
}

fn query_error(what: &str) -> impl FnOnce(postgres::Error) -> ClusterError + '_ {
    move |cause| {
        let message = crate::error::server_message(&cause);
        let hint = load_hint(&message);
        ClusterError::Query {
            what: what.to_string(),
            message: format!("{message}{hint}"),
            cause,
        }
    }
}

/// What a user must fix when the segments could not read their files.
fn load_hint(message: &str) -> &'static str {
    if message.contains("Permission denied") {
        " — the segments read the files as the database server's OS user on each segment host: \
         the files and their directories must be readable by that user there"
    } else if message.contains("No such file") {
        " — each segment reads its files on its own host: source content c's files must be on \
         the host of segment (c mod the number of segments), under the --on-segment path"
    } else if message.contains("must be superuser") || message.contains("permission denied") {
        " — the segments run programs: this needs a superuser, or a role granted \
         pg_execute_server_program that may create EXECUTE external tables"
    } else {
        ""
    }
}

/// The server refused a row in [`copy_on_segment`] because the target's policy puts it on
/// another segment: the files were cut by another policy or segment count.
pub fn is_misplaced_row(e: &ClusterError) -> bool {
    match e {
        ClusterError::Query { message, .. } => {
            message.contains("doesn't belong to segment")
                || message.contains("does not belong to segment")
        }
        _ => false,
    }
}

/// Each segment loads its file (`SegmentEnd::File`, `<SEGID>` replaced by the server: an
/// uncompressed set read in place, no program and no pipe) or what its part of a command prints
/// (`SegmentEnd::Program`); returns the rows the server counted (for a replicated table, summed
/// over segments).
pub fn copy_on_segment<C: GenericClient>(
    client: &mut C,
    relation: &str,
    columns: &[String],
    source: SegmentEnd<'_>,
    encoding: Option<&str>,
) -> Result<u64, ClusterError> {
    let sql = copy_on_segment_sql(relation, columns, source, encoding);
    client
        .execute(sql.as_str(), &[])
        .map_err(query_error(&format!("loading {relation} on the segments")))
}

/// Each segment prints its part of `command` through a temporary web table and the rows go to
/// the segments `relation`'s policy picks; the web table is dropped before returning. Returns
/// the rows inserted.
pub fn insert_from_segments<C: GenericClient>(
    client: &mut C,
    relation: &str,
    columns: &[(String, String)],
    command: &str,
    encoding: Option<&str>,
) -> Result<u64, ClusterError> {
    let web = "cbrestore_segment_files";
    let what = format!("loading {relation} through an external web table");
    client
        .batch_execute(&format!(
            "DROP EXTERNAL TABLE IF EXISTS {}",
            quote::ident(web)
        ))
        .map_err(query_error(&what))?;
    client
        .batch_execute(&web_table_sql(web, columns, command, encoding))
        .map_err(query_error(&what))?;
    let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
    let rows = client
        .execute(insert_select_sql(relation, &names, web).as_str(), &[])
        .map_err(query_error(&what))?;
    client
        .batch_execute(&format!("DROP EXTERNAL TABLE {}", quote::ident(web)))
        .map_err(query_error(&what))?;
    Ok(rows)
}

/// What the role may do on the segments, read once by [`check_rights`].
#[derive(Debug, Clone, Copy)]
pub struct Rights {
    /// May call the file functions ([`probe`] lists the files with them).
    pub superuser: bool,
}

/// Refuses a role that cannot make the segments run programs, before anything is restored.
pub fn check_rights(client: &mut Client) -> Result<Rights, SegmentLoadError> {
    let row = client
        .query_one(
            "SELECT r.rolsuper, pg_catalog.pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') \
               FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .map_err(ClusterError::query("checking the role's rights"))?;
    let (superuser, programs): (bool, bool) = (row.get(0), row.get(1));
    if superuser || programs {
        return Ok(Rights { superuser });
    }
    Err(SegmentLoadError::Refused(
        "the segments must run programs to read their backup files (COPY ... FROM PROGRAM, \
         EXECUTE external web tables): connect as a superuser, or as a role granted \
         pg_execute_server_program that may create EXECUTE external tables"
            .into(),
    ))
}

impl LoadCatalog {
    /// `pg_catalog`, unless `CBTOOLS_MPP_CATALOG_SCHEMA` names a schema of look-alike tables.
    pub fn from_env() -> LoadCatalog {
        match std::env::var("CBTOOLS_MPP_CATALOG_SCHEMA") {
            Ok(s) if !s.is_empty() => LoadCatalog::in_schema(&s),
            _ => LoadCatalog::default(),
        }
    }

    pub fn in_schema(schema: &str) -> LoadCatalog {
        LoadCatalog {
            schema: schema.to_string(),
        }
    }

    /// The policy of `relation` (a quoted, qualified name); `None` when it has no policy row.
    pub fn policy<C: GenericClient>(
        &self,
        client: &mut C,
        relation: &str,
    ) -> Result<Option<TablePolicy>, ClusterError> {
        let sql = format!(
            "SELECT p.policytype::text, p.numsegments::int4, \
                    ARRAY(SELECT a.attname::text \
                            FROM unnest(p.distkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                            JOIN pg_catalog.pg_attribute a \
                              ON a.attrelid = p.localoid AND a.attnum = k.attnum \
                           ORDER BY k.ord) \
               FROM {} p WHERE p.localoid = $1::text::pg_catalog.regclass",
            quote::qualified(&self.schema, "gp_distribution_policy")
        );
        let row = client
            .query_opt(sql.as_str(), &[&relation])
            .map_err(ClusterError::query(format!(
                "reading the policy of {relation}"
            )))?;
        Ok(row.map(|r| {
            let kind: String = r.get(0);
            let numsegments: i32 = r.get(1);
            let cols: Vec<String> = r.get(2);
            let kind = if kind == "r" {
                crate::mpp::Distribution::Replicated
            } else if cols.is_empty() {
                crate::mpp::Distribution::Random
            } else {
                crate::mpp::Distribution::Hash(cols)
            };
            TablePolicy {
                kind,
                numsegments: numsegments.max(0) as u32,
            }
        }))
    }
}

/// `(name, type)` of `columns` of `relation`, in the order given, for a web table that prints
/// them: types as `format_type` spells them (qualified when not on the search path).
pub fn column_types<C: GenericClient>(
    client: &mut C,
    relation: &str,
    columns: &[String],
) -> Result<Vec<(String, String)>, SegmentLoadError> {
    let rows = client
        .query(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod) \
               FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid = $1::text::pg_catalog.regclass AND a.attnum > 0 \
                AND NOT a.attisdropped ORDER BY a.attnum",
            &[&relation],
        )
        .map_err(ClusterError::query(format!(
            "reading the columns of {relation}"
        )))?;
    let types: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let names: Vec<String> = if columns.is_empty() {
        rows.iter().map(|r| r.get(0)).collect()
    } else {
        columns.to_vec()
    };
    names
        .into_iter()
        .map(|n| match types.get(&n) {
            Some(t) => Ok((n, t.clone())),
            None => Err(SegmentLoadError::Refused(format!(
                "{relation} has no column {} that the backup set has rows for",
                quote::ident(&n)
            ))),
        })
        .collect()
}

/// What [`probe`] found: segment → the readable backup files in the directories it was given.
#[derive(Debug, Default)]
pub struct Probe {
    pub readable: BTreeMap<i32, BTreeSet<String>>,
}

/// Lists, on every segment, the readable `prefix*` files of the directories it was given.
///
/// A superuser's probe is one SELECT: `pg_ls_dir` in the target list of a scan of
/// `gp_dist_random('gp_id')` runs on every segment (a `ProjectSet` under the Gather Motion),
/// and `pg_read_binary_file(f, 0, 0, true)` opens each file as the server's OS user. Measured
/// on the stand-in in a new session: 1-5 ms, where the external web table took 90 ms (the
/// session's first temporary table is DDL dispatched to every segment with a two-phase commit).
/// Other roles (`pg_execute_server_program`, no file functions) keep the web table.
pub fn probe(
    client: &mut Client,
    rights: Rights,
    dirs: &BTreeMap<i32, Vec<String>>,
    prefix: &str,
) -> Result<Probe, ClusterError> {
    let what = "checking the backup files on every segment";
    let lines = if rights.superuser {
        probe_by_listing(client, dirs, prefix)
    } else {
        probe_by_web_table(client, dirs, prefix)
    }
    .map_err(query_error(what))?;
    let mut out = Probe::default();
    for (segment, file) in lines {
        out.readable.entry(segment).or_default().insert(file);
    }
    Ok(out)
}

/// (segment, file) of every readable `prefix*` file, listed by the segments' file functions.
fn probe_by_listing(
    client: &mut Client,
    dirs: &BTreeMap<i32, Vec<String>>,
    prefix: &str,
) -> Result<Vec<(i32, String)>, postgres::Error> {
    let mut cases = String::new();
    for (segment, list) in dirs {
        let words: Vec<String> = list.iter().map(|d| quote::literal(d)).collect();
        cases.push_str(&format!(
            " WHEN {segment} THEN ARRAY[{}]::pg_catalog.text[]",
            words.join(", ")
        ));
    }
    let sql = format!(
        "SELECT seg, path FROM (SELECT seg, d || '/' || f AS path, f FROM ( \
           SELECT seg, d, pg_catalog.pg_ls_dir(d, true, false) AS f FROM ( \
             SELECT gp_segment_id::int4 AS seg, pg_catalog.unnest(CASE gp_segment_id{cases} \
               ELSE ARRAY[]::pg_catalog.text[] END) AS d \
             FROM gp_dist_random('gp_id')) dirs) listed \
         WHERE pg_catalog.starts_with(f, {})) files \
         WHERE pg_catalog.pg_read_binary_file(path, 0, 0, true) IS NOT NULL",
        quote::literal(prefix)
    );
    let rows = client.query(sql.as_str(), &[])?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// (segment, file) of every readable `prefix*` file, printed by a shell on each segment through
/// an external web table (for roles that may run programs but not call the file functions).
fn probe_by_web_table(
    client: &mut Client,
    dirs: &BTreeMap<i32, Vec<String>>,
    prefix: &str,
) -> Result<Vec<(i32, String)>, postgres::Error> {
    let mut command = format!("case {} in", Selector::WebTable.word());
    for (segment, list) in dirs {
        let words: Vec<String> = list.iter().map(|d| shell_quote(d)).collect();
        command.push_str(&format!(
            " {segment}) for d in {}; do for f in \"$d\"/{}*; do \
             test -f \"$f\" && test -r \"$f\" && printf '%s\\n' \"$f\"; done; done;;",
            words.join(" "),
            shell_glob_quote(prefix)
        ));
    }
    command.push_str(" esac; exit 0");
    let web = quote::ident("cbrestore_segment_probe");
    // One message (its statements run in one implicit transaction, so the temporary table
    // never outlives it): 1 round trip instead of 4, the extended-protocol SELECT counting 2.
    let messages = client.simple_query(&format!(
        "DROP EXTERNAL TABLE IF EXISTS {web}; \
         CREATE EXTERNAL WEB TEMP TABLE {web} (line text) EXECUTE {} ON ALL FORMAT 'text' (DELIMITER E'\\x1f' ESCAPE 'off'); \
         SELECT gp_segment_id::int4, line FROM {web}; \
         DROP EXTERNAL TABLE {web}",
        quote::literal(&command),
    ))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some((
                r.get(0).and_then(|v| v.parse::<i32>().ok())?,
                r.get(1).unwrap_or_default().to_string(),
            )),
            _ => None,
        })
        .collect())
}

/// A file-name prefix for a shell glob: quoted, so only the `*` after it expands.
fn shell_glob_quote(prefix: &str) -> String {
    shell_quote(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_follows_content_mod_segments() {
        assert_eq!(
            assign(3, 2),
            BTreeMap::from([(0, vec![0, 2]), (1, vec![1])])
        );
        assert_eq!(assign(2, 3), BTreeMap::from([(0, vec![0]), (1, vec![1])]));
        assert_eq!(assign(3, 3).len(), 3);
        assert!(assign(3, 0).is_empty());
    }

    #[test]
    fn statements() {
        let files = BTreeMap::from([
            (
                0,
                vec!["/b/gpseg0/x_0.gz".to_string(), "/b/it's/x_2.gz".into()],
            ),
            (1, vec!["/b/gpseg1/x_1.gz".to_string()]),
            (2, vec![]),
        ]);
        let cmd = segment_command(Selector::CopyProgram, "gzip -dc", &files);
        assert_eq!(
            cmd,
            "case <SEGID> in 0) gzip -dc '/b/gpseg0/x_0.gz' '/b/it'\\''s/x_2.gz';; 1) gzip -dc '/b/gpseg1/x_1.gz';; esac"
        );
        assert_eq!(
            copy_on_segment_sql("\"s\".\"T\"", &["a".into(), "B c".into()], SegmentEnd::Program("cat 'f'"), Some("UTF8")),
            "COPY \"s\".\"T\" (\"a\", \"B c\") FROM PROGRAM 'cat ''f''' WITH (FORMAT csv, DELIMITER ',', ENCODING 'UTF8', on_segment true)"
        );
        let web = segment_command(Selector::WebTable, "cat", &files);
        assert!(
            web.starts_with("case \"$GP_SEGMENT_ID\" in 0) cat "),
            "{web}"
        );
        assert_eq!(
            web_table_sql("w", &[("a".into(), "integer".into())], "cat x", None),
            "CREATE EXTERNAL WEB TEMP TABLE \"w\" (\"a\" integer) EXECUTE 'cat x' ON ALL FORMAT 'csv' (DELIMITER ',')"
        );
        assert_eq!(
            insert_select_sql("\"s\".\"t\"", &["a".into(), "B".into()], "w"),
            "INSERT INTO \"s\".\"t\" (\"a\", \"B\") SELECT \"a\", \"B\" FROM \"w\""
        );
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(load_hint("ERROR: gzip: /x: No such file or directory").contains("mod"));
        assert!(load_hint("ERROR: must be superuser to COPY").contains("pg_execute_server_program"));
        assert_eq!(load_hint("ERROR: syntax error"), "");
    }
}
