//! cbrestore's command line: pg_restore's flags where the meaning is the same, gprestore's for
//! backup sets, and what each input accepts.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::gpset::TargetChoice;
use crate::toc::Selection;
use cluster::args::Refused;
use cluster::ConnectionArgs;

/// Restore through the coordinator: pg_dump/cbdump custom and directory archives, and gpbackup
/// backup sets (every segment's files merged into one COPY per table, into a cluster of any
/// size or plain PostgreSQL).
#[derive(Parser, Debug)]
#[command(
    name = "cbrestore",
    version,
    disable_help_flag = true,
    after_help = "Exit status: 0 success; 1 failure (or errors skipped with --on-error-continue); 2 usage error; 130 interrupted.\n\
                  Examples:\n  cbrestore -d shop -j 4 shop.dump\n  cbrestore -d shop -j 4 --distribute --on-conflict replicated shop.dir/\n  \
                  cbrestore -d shop -j 4 /backups/gpseg-1 /backups/sdw1 /backups/sdw2\n  \
                  cbrestore -d shop --create-db --timestamp 20240102030405 /backups/all-hosts-copied-here/\n  \
                  cbrestore --to-sql shop.sql.gz --target postgres /backups/"
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// A pg_dump/cbdump custom archive file or directory archive, a plain SQL dump (.gz/.zst
    /// or not; - for stdin); or gpbackup backup directories (one root holding every host's
    /// files, or one root per host)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Archives: restore only this table (repeatable; as pg_restore -t)
    #[arg(short = 't', long = "table", value_name = "NAME")]
    pub table: Vec<String>,
    /// Archives: restore only objects in this schema (repeatable)
    #[arg(short = 'n', long = "schema", value_name = "NAME")]
    pub schema: Vec<String>,
    /// Archives: do not restore this table (repeatable; pg_restore has no such flag, and its
    /// -T is --trigger)
    #[arg(long = "exclude-table-name", value_name = "NAME")]
    pub exclude_table_name: Vec<String>,
    /// Archives: restore only this index (repeatable; as pg_restore -I)
    #[arg(short = 'I', long = "index", value_name = "NAME")]
    pub index: Vec<String>,
    /// Archives: restore only this function, aggregate or procedure, as NAME(ARGUMENT TYPES)
    /// (repeatable; as pg_restore -P)
    #[arg(short = 'P', long = "function", value_name = "NAME(ARGS)")]
    pub function: Vec<String>,
    /// Archives: restore only this trigger (repeatable; as pg_restore -T)
    #[arg(short = 'T', long = "trigger", value_name = "NAME")]
    pub trigger: Vec<String>,
    /// Archives: restore only the entries listed in FILE, a `cbrestore -l`/`pg_restore -l`
    /// listing edited (lines removed or commented out with `;`); the order stays the
    /// archive's
    #[arg(short = 'L', long = "use-list", value_name = "FILE")]
    pub use_list: Option<PathBuf>,
    /// Archives: restore only this section: pre-data, data or post-data (repeatable)
    #[arg(long = "section", value_name = "SECTION", value_enum, conflicts_with_all = ["data_only", "metadata_only"])]
    pub section: Vec<crate::toc::Section>,
    /// Archives: every name given to -n, -t, -I, -P and -T must match an entry
    #[arg(long = "strict-names")]
    pub strict_names: bool,
    /// Stop at the first error (the default; pg_restore's -e)
    #[arg(
        short = 'e',
        long = "exit-on-error",
        conflicts_with = "on_error_continue"
    )]
    pub exit_on_error: bool,
    /// Archives: the format the input must have: c (custom), d (directory); t (tar) is read
    /// as a directory once extracted. Detected from the input when not given
    #[arg(short = 'F', long = "format", value_name = "c|d|t", value_parser = ["c", "custom", "d", "directory", "t", "tar"])]
    pub format: Option<String>,
    /// Do not restore comments
    #[arg(long = "no-comments")]
    pub no_comments: bool,
    /// Do not restore publications
    #[arg(long = "no-publications")]
    pub no_publications: bool,
    /// Do not restore subscriptions
    #[arg(long = "no-subscriptions")]
    pub no_subscriptions: bool,
    /// Do not restore security labels
    #[arg(long = "no-security-labels")]
    pub no_security_labels: bool,
    /// Archives: do not restore tablespace assignments (every object in the default
    /// tablespace)
    #[arg(long = "no-tablespaces")]
    pub no_tablespaces: bool,
    /// Archives: do not restore table access methods (every table with the default)
    #[arg(long = "no-table-access-method")]
    pub no_table_access_method: bool,
    /// Archives, with -a: triggers (foreign keys' included) do not fire while the data loads
    /// (session_replication_role = replica; needs a superuser, as pg_restore's)
    #[arg(long = "disable-triggers")]
    pub disable_triggers: bool,
    /// Archives: drop objects before recreating them
    #[arg(short = 'c', long)]
    pub clean: bool,
    /// Archives: use IF EXISTS when dropping (with --clean)
    #[arg(long = "if-exists", requires = "clean")]
    pub if_exists: bool,
    /// Archives: create the database named in the archive (-d then names the database to connect to first)
    #[arg(short = 'C', long = "create")]
    pub create: bool,
    /// Archives: restore as one transaction (not with -j)
    #[arg(short = '1', long = "single-transaction")]
    pub single_transaction: bool,
    /// Archives: print the table of contents and exit
    #[arg(short = 'l', long = "list")]
    pub list: bool,
    /// Read the whole input without a server and exit: every table's data of an archive
    /// (decompression, cbdump's manifest checksums and row counts), every statement and COPY
    /// block of a script, every file and row count of a gpbackup set
    #[arg(long = "verify-only")]
    pub verify_only: bool,
    /// Write the SQL that would run to FILE (- for stdout) instead of running it
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Archives: ANALYZE the restored tables at the end
    #[arg(long)]
    pub analyze: bool,
    /// With -j: a table whose data takes more than SIZE in the archive or backup set (e.g. 1G)
    /// is loaded by its worker plus every worker that has nothing else to do, each with its own
    /// COPY, committed together. Smaller tables are emptied and copied with FREEZE in the
    /// load's own transaction instead (no hint-bit rewrite, no WAL with wal_level=minimal).
    #[arg(long = "split-tables-larger-than", value_name = "SIZE", value_parser = pipeline::size::bytes)]
    pub split_tables_larger_than: Option<u64>,
    /// Archives: add Cloudberry DISTRIBUTED clauses while restoring (cbdistfix rules)
    #[arg(long)]
    pub distribute: bool,
    /// With --distribute: the distribution rules (cbdistfix's)
    #[command(flatten)]
    pub rules: distfix::rules::RuleArgs,
    /// Archives: remove DISTRIBUTED clauses while restoring (Cloudberry dump into PostgreSQL)
    #[arg(long = "strip-distribution", conflicts_with = "distribute")]
    pub strip_distribution: bool,
    /// The backup set to restore when the paths hold several
    #[arg(long, value_name = "YYYYMMDDHHMMSS")]
    pub timestamp: Option<String>,
    /// Dialect of the target: detected from the server by default
    #[arg(long, value_enum, default_value = "auto")]
    pub target: TargetChoice,

    /// Restore only this table (schema.table; repeatable)
    #[arg(long = "include-table", value_name = "SCHEMA.TABLE")]
    pub include_table: Vec<String>,
    /// Tables to restore, one schema.table per line
    #[arg(long = "include-table-file", value_name = "FILE")]
    pub include_table_file: Vec<PathBuf>,
    /// Do not restore this table (repeatable)
    #[arg(long = "exclude-table", value_name = "SCHEMA.TABLE")]
    pub exclude_table: Vec<String>,
    /// Tables not to restore, one per line
    #[arg(long = "exclude-table-file", value_name = "FILE")]
    pub exclude_table_file: Vec<PathBuf>,
    /// Restore only this schema (repeatable)
    #[arg(long = "include-schema", value_name = "SCHEMA")]
    pub include_schema: Vec<String>,
    /// Schemas to restore, one per line
    #[arg(long = "include-schema-file", value_name = "FILE")]
    pub include_schema_file: Vec<PathBuf>,
    /// Do not restore objects in this schema (repeatable; archives, scripts and backup sets)
    #[arg(
        short = 'N',
        long = "exclude-schema",
        visible_alias = "exclude-schema-name",
        value_name = "SCHEMA"
    )]
    pub exclude_schema: Vec<String>,
    /// Schemas not to restore, one per line
    #[arg(long = "exclude-schema-file", value_name = "FILE")]
    pub exclude_schema_file: Vec<PathBuf>,

    /// Only the data (tables must exist; sequence values are restored too)
    #[arg(short = 'a', long = "data-only", conflicts_with = "metadata_only")]
    pub data_only: bool,
    /// Only the schema
    #[arg(short = 's', long = "metadata-only", visible_alias = "schema-only")]
    pub metadata_only: bool,
    /// Empty each table (in the load's transaction) before loading it
    #[arg(long = "truncate-table")]
    pub truncate_table: bool,
    /// Create the target database (-d names it) first
    #[arg(long = "create-db")]
    pub create_db: bool,
    /// Also restore roles, tablespaces and other global objects
    #[arg(long = "with-globals")]
    pub with_globals: bool,
    /// Record failed statements and tables in the report and go on
    #[arg(long = "on-error-continue")]
    pub on_error_continue: bool,
    /// Skip ALTER ... OWNER TO
    #[arg(short = 'O', long = "no-owner")]
    pub no_owner: bool,
    /// Skip GRANT and REVOKE
    #[arg(short = 'x', long = "no-privileges")]
    pub no_privileges: bool,

    /// Tables loaded at once, one connection each (archives and gpbackup sets; single-data-file
    /// sets load in order; a plain script runs in order on one connection)
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Continue an interrupted restore: steps it committed are skipped (the server is asked
    /// about the one a kill interrupted), the rest run again
    #[arg(long)]
    pub resume: bool,
    /// Where progress is recorded for --resume (default: a file in the state directory named
    /// after the input and the target)
    #[arg(long = "state-file", value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// The state directory (default: $XDG_STATE_HOME/cbtools, else ~/.local/state/cbtools)
    #[arg(long = "state-dir", value_name = "DIR", conflicts_with = "state_file")]
    pub state_dir: Option<PathBuf>,

    /// Write the whole set as one psql script instead of restoring (no server needed; .gz compresses)
    #[arg(long = "to-sql", value_name = "FILE[.gz]")]
    pub to_sql: Option<PathBuf>,
    /// Backup sets: every segment reads its own data files on its own host; no row passes
    /// through the coordinator (MPP targets). ROOT is each content's backup root as gpbackup's
    /// --backup-dir (files in ROOT/backups/<date>/<ts>/), <SEGID> and <SEG_DATA_DIR> replaced;
    /// give it as --on-segment=ROOT; default: derived from where PATH's coordinator files are
    #[arg(long = "on-segment", value_name = "ROOT", num_args = 0..=1, require_equals = true, default_missing_value = "", conflicts_with = "to_sql")]
    pub on_segment: Option<String>,

    /// Print a machine-readable report on stdout
    #[arg(long)]
    pub json: bool,
    /// Verbose messages on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[command(flatten)]
    pub progress: pipeline::progress::ProgressArgs,
    /// Print help
    #[arg(short = '?', long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// pg_restore's flags cbrestore does not take, each with what to do instead.
pub const REFUSED: &[Refused] = &[
    Refused::valued("superuser", "cbrestore does not switch users: connect as the superuser with -U (--disable-triggers needs one)").short('S'),
    Refused::switch("enable-row-security", "not supported: cbrestore loads with row_security off, as pg_restore's default; use pg_restore --enable-row-security"),
    Refused::switch("no-data-for-failed-tables", "not supported: cbrestore stops at the first error (so no data goes into a table whose CREATE failed) unless --on-error-continue; use pg_restore --no-data-for-failed-tables"),
    Refused::switch("use-set-session-authorization", "not supported: ownership is set with ALTER ... OWNER TO, or left out with -O"),
    Refused::valued("restrict-key", "not supported: the script cbrestore -f writes holds no \\restrict line"),
    Refused::valued("transaction-size", "cbrestore commits each entry and each table's data on its own (what --resume picks up from); for one transaction use -1"),
    Refused::valued("filter", "not supported: give -t, -n, -N, -I, -P and -T on the command line, or an edited listing with -L"),
    Refused::switch("no-data", "not supported: use -s/--schema-only"),
    Refused::switch("no-schema", "not supported: use -a/--data-only"),
    Refused::switch("no-statistics", "not supported by cbrestore; use pg_restore --no-statistics"),
    Refused::switch("statistics-only", "not supported by cbrestore; use pg_restore --statistics-only"),
    Refused::switch("with-statistics", "not supported by cbrestore; use pg_restore --with-statistics"),
    Refused::switch("no-policies", "not supported by cbrestore; use pg_restore --no-policies"),
];

/// cbrestore's command line as clap sees it (man page and completions are built from it).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The command line, or exit 2 with clap's usage message (refused flags included).
pub fn parse() -> Cli {
    cluster::args::parse(command(), REFUSED, Cli::check)
}

/// A command line that cannot work; exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

fn usage<T>(msg: impl Into<String>) -> Result<T, Usage> {
    Err(Usage(msg.into()))
}

/// Names from the command line plus those of the `-file` variants (one per line, `#` comments).
fn names(given: &[String], files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = given.to_vec();
    for f in files {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(out)
}

impl Cli {
    /// Checks that hold whatever the input.
    pub fn check(&self) -> Result<(), Usage> {
        if self.jobs == 0 {
            return usage("-j/--jobs must be at least 1");
        }
        if self.rules.any() && !self.distribute {
            return usage(
                "--policy, --default and --on-conflict are distribution rules: they need --distribute",
            );
        }
        let no_target = self.conn.dbname.is_none()
            && self.file.is_none()
            && self.to_sql.is_none()
            && !self.verify_only
            && !self.list;
        if no_target {
            return usage("one of -d/--dbname and -f/--file must be specified (as with pg_restore; --verify-only and -l need neither)");
        }
        Ok(())
    }

    /// gprestore's flags, which a pg_dump archive or a script does not take: each named with
    /// its pg_restore counterpart.
    pub fn refuse_gprestore_flags(&self, input: &str) -> Result<(), Usage> {
        let given: [(bool, &str, &str); 11] = [
            (
                !self.include_table.is_empty() || !self.include_table_file.is_empty(),
                "--include-table",
                "-t",
            ),
            (
                !self.exclude_table.is_empty() || !self.exclude_table_file.is_empty(),
                "--exclude-table",
                "--exclude-table-name",
            ),
            (
                !self.include_schema.is_empty() || !self.include_schema_file.is_empty(),
                "--include-schema",
                "-n",
            ),
            (
                !self.exclude_schema_file.is_empty(),
                "--exclude-schema-file",
                "-N",
            ),
            (self.create_db, "--create-db", "-C (archives)"),
            (self.truncate_table, "--truncate-table", "-c"),
            (
                self.with_globals,
                "--with-globals",
                "pg_dumpall's globals script",
            ),
            (self.timestamp.is_some(), "--timestamp", "nothing"),
            (self.to_sql.is_some(), "--to-sql", "-f"),
            (self.on_segment.is_some(), "--on-segment", "-j"),
            (
                self.target != TargetChoice::Auto,
                "--target",
                "--strip-distribution",
            ),
        ];
        match given.iter().find(|(on, _, _)| *on) {
            Some((_, flag, instead)) => usage(format!(
                "{flag} is a gprestore flag for backup sets; with {input} use {instead}"
            )),
            None => Ok(()),
        }
    }

    /// pg_restore's flags that a backup set does not take.
    pub fn refuse_archive_flags(&self) -> Result<(), Usage> {
        let given = [
            (self.clean, "-c/--clean", "--truncate-table"),
            (self.create, "-C/--create", "--create-db"),
            (
                self.single_transaction,
                "-1/--single-transaction",
                "nothing",
            ),
            (self.analyze, "--analyze", "nothing"),
            (self.list, "-l/--list", "nothing"),
            (self.file.is_some(), "-f/--file", "--to-sql"),
            (
                self.distribute || self.strip_distribution,
                "--distribute/--strip-distribution",
                "--target",
            ),
            (
                !self.exclude_table_name.is_empty(),
                "--exclude-table-name",
                "--exclude-table",
            ),
            (
                !(self.index.is_empty() && self.function.is_empty() && self.trigger.is_empty()),
                "-I/-P/-T",
                "--include-table",
            ),
            (self.use_list.is_some(), "-L/--use-list", "--include-table-file"),
            (!self.section.is_empty(), "--section", "-s or -a"),
            (self.strict_names, "--strict-names", "nothing"),
            (self.format.is_some(), "-F/--format", "nothing"),
            (
                self.no_comments
                    || self.no_publications
                    || self.no_subscriptions
                    || self.no_security_labels
                    || self.no_tablespaces
                    || self.no_table_access_method,
                "--no-comments/--no-publications/--no-subscriptions/--no-security-labels/--no-tablespaces/--no-table-access-method",
                "nothing",
            ),
            (self.disable_triggers, "--disable-triggers", "nothing"),
        ];
        match given.iter().find(|(on, _, _)| *on) {
            Some((_, flag, instead)) => usage(format!(
                "{flag} applies to pg_dump archives and scripts; with a gpbackup backup set use {instead}"
            )),
            None => Ok(()),
        }
    }

    /// gprestore's selection, with pg_restore's `-t -n -T -N` added.
    pub fn filter(&self) -> anyhow::Result<gpbackup::Filter> {
        let mut filter = gpbackup::Filter {
            include_schemas: names(&self.include_schema, &self.include_schema_file)?,
            exclude_schemas: names(&self.exclude_schema, &self.exclude_schema_file)?,
            include_tables: names(&self.include_table, &self.include_table_file)?,
            exclude_tables: names(&self.exclude_table, &self.exclude_table_file)?,
        };
        filter.include_tables.extend(self.table.iter().cloned());
        filter.include_schemas.extend(self.schema.iter().cloned());
        for t in filter.include_tables.iter().chain(&filter.exclude_tables) {
            if gpbackup::filter::split_fqn(t).is_none() {
                anyhow::bail!(
                    "table {t:?} must be schema-qualified (schema.table) for a gpbackup set"
                );
            }
        }
        Ok(filter)
    }

    pub fn distribution(&self) -> crate::dump::Distribution {
        use crate::dump::Distribution;
        if self.strip_distribution {
            Distribution::Strip
        } else if self.distribute {
            Distribution::Rewrite(self.rules.clone())
        } else {
            Distribution::Keep
        }
    }

    pub fn archive_options(
        &self,
        conn: cluster::ConnParams,
        selection: Selection,
    ) -> crate::dump::DumpRestoreOptions {
        crate::dump::DumpRestoreOptions {
            conn,
            input: self.paths[0].clone(),
            jobs: if self.file.is_some() { 1 } else { self.jobs },
            clean: self.clean,
            if_exists: self.if_exists,
            create: self.create,
            no_owner: self.no_owner,
            single_transaction: self.single_transaction,
            selection,
            on_error_continue: self.on_error_continue,
            resume: self.resume,
            state_file: self.state_file.clone(),
            state_dir: self.state_dir.clone(),
            analyze: self.analyze,
            split_larger_than: self.split_tables_larger_than,
            distribution: self.distribution(),
            script: self.file.clone(),
            verbose: self.verbose,
            progress: self.progress.progress,
            disable_triggers: self.disable_triggers && self.data_only,
        }
    }

    /// The selection for an archive's `entries`: `-L`'s listing read and checked against them
    /// (a line without an id is ignored with a warning, an unknown id is an error, as in
    /// pg_restore), and `--strict-names`.
    pub fn archive_selection(&self, entries: &[archive::TocEntry]) -> anyhow::Result<Selection> {
        let use_list = match &self.use_list {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let (ids, ignored) = crate::toc::read_use_list(&text);
                for line in ignored {
                    logline::say!(
                        "cbrestore: warning: {}: line ignored: {line}",
                        path.display()
                    );
                }
                if let Some(id) = ids
                    .iter()
                    .find(|id| !entries.iter().any(|e| e.dump_id == **id))
                {
                    anyhow::bail!("{}: could not find entry for ID {id}", path.display());
                }
                Some(ids)
            }
        };
        let selection = self.selection(use_list);
        if self.strict_names {
            selection
                .check_strict_names(entries)
                .map_err(anyhow::Error::msg)?;
        }
        Ok(selection)
    }

    /// `-F`: the input must be what it names (`found`: custom, directory or a plain script).
    pub fn check_format(&self, found: &str) -> anyhow::Result<()> {
        let Some(given) = self.format.as_deref() else {
            return Ok(());
        };
        let path = self.paths[0].display();
        let wanted = match given {
            "c" | "custom" => "custom",
            "d" | "directory" => "directory",
            _ => anyhow::bail!(
                "-F {given}: tar archives are read once extracted (tar -xf FILE -C DIR, then give DIR): an extracted tar archive is a directory archive"
            ),
        };
        if wanted != found {
            anyhow::bail!("-F {given}: {path} is not a {wanted} archive but a {found}");
        }
        Ok(())
    }

    /// pg_restore's archive-only flags, which a plain script does not take.
    pub fn refuse_script_flags(&self) -> Result<(), Usage> {
        let given = [
            (self.clean || self.create, "-c and -C"),
            (self.use_list.is_some(), "-L/--use-list"),
            (!self.section.is_empty(), "--section"),
            (self.strict_names, "--strict-names"),
            (self.no_tablespaces, "--no-tablespaces"),
            (self.no_table_access_method, "--no-table-access-method"),
            (self.disable_triggers, "--disable-triggers"),
        ];
        match given.iter().find(|(on, _)| *on) {
            Some((_, flag)) => usage(format!(
                "{flag} need a custom or directory archive (as with pg_restore); a plain script runs what pg_dump put in it"
            )),
            None => Ok(()),
        }
    }

    /// pg_restore's selection of archive entries; `use_list` is the dump ids `-L` read.
    pub fn selection(&self, use_list: Option<Vec<i32>>) -> Selection {
        Selection {
            tables: self.table.clone(),
            schemas: self.schema.clone(),
            exclude_tables: self.exclude_table_name.clone(),
            exclude_schemas: self.exclude_schema.clone(),
            indexes: self.index.clone(),
            functions: self.function.clone(),
            triggers: self.trigger.clone(),
            sections: self.section.clone(),
            use_list,
            schema_only: self.metadata_only,
            data_only: self.data_only,
            no_acl: self.no_privileges,
            no_comments: self.no_comments,
            no_publications: self.no_publications,
            no_subscriptions: self.no_subscriptions,
            no_security_labels: self.no_security_labels,
            no_tablespaces: self.no_tablespaces,
            no_table_access_method: self.no_table_access_method,
            create: self.create,
        }
    }

    pub fn plain_options(&self, conn: cluster::ConnParams) -> crate::plain::PlainRestoreOptions {
        crate::plain::PlainRestoreOptions {
            conn,
            input: self.paths[0].clone(),
            single_transaction: self.single_transaction,
            on_error_continue: self.on_error_continue,
            distribution: self.distribution(),
            script: self.file.clone(),
            list: self.list,
            verify_only: self.verify_only,
            selection: crate::plain::PlainSelection {
                tables: self.table.clone(),
                schemas: self.schema.clone(),
                exclude_tables: self.exclude_table_name.clone(),
                exclude_schemas: self.exclude_schema.clone(),
                indexes: self.index.clone(),
                functions: self.function.clone(),
                triggers: self.trigger.clone(),
                schema_only: self.metadata_only,
                data_only: self.data_only,
                no_comments: self.no_comments,
                no_publications: self.no_publications,
                no_subscriptions: self.no_subscriptions,
                no_security_labels: self.no_security_labels,
            },
            resume: self.resume,
            state_file: self.state_file.clone(),
            state_dir: self.state_dir.clone(),
            verbose: self.verbose,
            progress: self.progress.progress,
        }
    }

    pub fn gpset_options(
        &self,
        conn: cluster::ConnParams,
        filter: gpbackup::Filter,
    ) -> crate::gpset::GpRestoreOptions {
        crate::gpset::GpRestoreOptions {
            conn,
            roots: self.paths.clone(),
            timestamp: self.timestamp.clone(),
            target: self.target,
            filter,
            data_only: self.data_only,
            metadata_only: self.metadata_only,
            truncate_table: self.truncate_table,
            create_db: self.create_db,
            with_globals: self.with_globals,
            on_error_continue: self.on_error_continue,
            no_owner: self.no_owner,
            no_privileges: self.no_privileges,
            jobs: self.jobs,
            split_larger_than: self.split_tables_larger_than,
            resume: self.resume,
            state_file: self.state_file.clone(),
            state_dir: self.state_dir.clone(),
            verbose: self.verbose,
            progress: self.progress.progress,
        }
    }
}
