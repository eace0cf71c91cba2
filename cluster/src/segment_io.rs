//! Statements in which every MPP segment reads or writes its own files, on its own host.
//!
//! Grammar (checked in the Greenplum-7 stand-in's `gram.y` and Apache Cloudberry's): `ON SEGMENT`
//! is an item of the *old* unparenthesised option list only (`COPY t TO 'f' ON SEGMENT CSV`), so
//! `WITH (FORMAT csv) ON SEGMENT` is a syntax error. Both grammars accept any name in the
//! parenthesised list, and `COPY` reads `on_segment` there exactly as the keyword form sets it,
//! so we always write `WITH (<options>, on_segment true)`: one spelling for every option.
//!
//! `<SEGID>` in a path or program is replaced by the content id, `<SEG_DATA_DIR>` by the
//! segment's data directory. The programs run as the database server's OS user on each segment
//! host, so the role needs superuser or `pg_execute_server_program` / `pg_write_server_files` /
//! `pg_read_server_files`; [`run`] turns the server's "Permission denied" and "No such file"
//! into a message that says so.

use postgres::Client;

use crate::{quote, ClusterError};

/// What a segment's COPY reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd<'a> {
    /// A server file; must contain `<SEGID>`.
    File(&'a str),
    /// A shell command run by each segment (its stdin or stdout is the COPY stream).
    Program(&'a str),
}

impl SegmentEnd<'_> {
    fn sql(&self) -> String {
        match self {
            SegmentEnd::File(p) => quote::literal(p),
            SegmentEnd::Program(p) => format!("PROGRAM {}", quote::literal(p)),
        }
    }
}

fn column_list(columns: Option<&[String]>) -> String {
    columns
        .map(|c| {
            format!(
                " ({})",
                c.iter()
                    .map(|x| quote::ident(x))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .unwrap_or_default()
}

fn with_on_segment(options: &str) -> String {
    if options.trim().is_empty() {
        " WITH (on_segment true)".into()
    } else {
        format!(" WITH ({options}, on_segment true)")
    }
}

/// `COPY <rel> [(<cols>)] TO <end> WITH (<options>, on_segment true)`: each segment writes the
/// rows it stores (a replicated table: all of them).
pub fn copy_to_sql(
    relation: &str,
    columns: Option<&[String]>,
    end: SegmentEnd<'_>,
    options: &str,
) -> String {
    format!(
        "COPY {relation}{} TO {}{}",
        column_list(columns),
        end.sql(),
        with_on_segment(options)
    )
}

/// `COPY <rel> [(<cols>)] FROM <end> WITH (<options>, on_segment true)`: each segment loads what
/// its own file or program gives. Rows must belong to the segment that reads them (the server
/// checks unless `gp_enable_segment_copy_checking` is off), so this is for a set taken from a
/// cluster of the same shape; see [`web_table_sql`] for any other.
pub fn copy_from_sql(
    relation: &str,
    columns: Option<&[String]>,
    end: SegmentEnd<'_>,
    options: &str,
) -> String {
    format!(
        "COPY {relation}{} FROM {}{}",
        column_list(columns),
        end.sql(),
        with_on_segment(options)
    )
}

/// `CREATE EXTERNAL WEB TEMP TABLE <name> (<columns>) EXECUTE '<command>' ON ALL FORMAT 'csv'
/// (DELIMITER ',')`: every primary runs `command` (with `$GP_SEGMENT_ID` set) and the rows it
/// prints are read there; `INSERT INTO target SELECT * FROM <name>` then sends each row through
/// the interconnect to the segment the target's policy picks, so any source shape loads into
/// any target shape without a row passing through the coordinator. `columns` are
/// `(name, type)` pairs; the table lives until the session ends.
pub fn web_table_sql(name: &str, columns: &[(String, String)], command: &str) -> String {
    let cols = columns
        .iter()
        .map(|(n, t)| format!("{} {t}", quote::ident(n)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE EXTERNAL WEB TEMP TABLE {} ({cols}) EXECUTE {} ON ALL FORMAT 'csv' (DELIMITER ',')",
        quote::ident(name),
        quote::literal(command)
    )
}

/// A word for the segments' shell, single-quoted.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs the shell `command` once on every primary segment, as the server's OS user on its
/// host; `<SEGID>` and `<SEG_DATA_DIR>` in it are replaced by the server, as in a COPY path.
/// Used to make the directories the segments write into and to clean up what they wrote (on
/// the segment hosts, owned by that user: this process can neither see nor remove it).
///
/// It is `COPY (SELECT 1 FROM gp_dist_random('gp_id')) TO PROGRAM ... ON SEGMENT`: one row per
/// segment, no DDL, so it runs inside a read-only snapshot transaction and needs only what
/// `COPY ... TO PROGRAM` needs. An `EXECUTE ... ON ALL` web table did the same with a CREATE
/// and a DROP and took 0.23-0.31 s on the stand-in where this took 0.08-0.28 s. The command's
/// exit status is the statement's (its stderr is in the server's message).
pub fn run_on_every_segment(
    client: &mut Client,
    command: &str,
    what: &str,
) -> Result<(), ClusterError> {
    // The program must read its one row, or the server's write may find the pipe closed.
    let program = format!("({command}); s=$?; cat >/dev/null; exit $s");
    let sql = copy_to_sql(
        "(SELECT 1 FROM gp_dist_random('gp_id'))",
        None,
        SegmentEnd::Program(&program),
        "",
    );
    run(client, &sql, what).map(|_| ())
}

/// Removes on every segment host the files `files` name and every file whose name starts
/// with one of `prefixes` (paths with `<SEGID>` / `<SEG_DATA_DIR>`, taken literally otherwise),
/// then the directories `dirs` name if they are empty, in the order given. What is not there
/// is no error.
pub fn remove_on_every_segment(
    client: &mut Client,
    files: &[String],
    prefixes: &[String],
    dirs: &[String],
    what: &str,
) -> Result<(), ClusterError> {
    let words: Vec<String> = files
        .iter()
        .map(|f| shell_quote(f))
        .chain(prefixes.iter().map(|p| format!("{}*", shell_quote(p))))
        .collect();
    let mut command = String::new();
    for chunk in words.chunks(100) {
        command.push_str(&format!("rm -f -- {}; ", chunk.join(" ")));
    }
    for d in dirs {
        command.push_str(&format!("rmdir -- {} 2>/dev/null; ", shell_quote(d)));
    }
    command.push_str("true");
    run_on_every_segment(client, &command, what)
}

/// Runs one segment statement; returns the command tag's row count. `what` names the table or
/// step for the message.
pub fn run(client: &mut Client, sql: &str, what: &str) -> Result<u64, ClusterError> {
    client.execute(sql, &[]).map_err(|cause| {
        let message = crate::error::server_message(&cause);
        let hint = segment_hint(&message);
        ClusterError::Query {
            what: what.to_string(),
            message: format!("{message}{hint}"),
            cause,
        }
    })
}

/// What a user must fix when a segment could not reach its files.
fn segment_hint(message: &str) -> &'static str {
    if message.contains("Permission denied") {
        " — the segments run this as the database server's OS user on each segment host: the \
         directory must exist there and be writable (or readable, for a restore) by that user \
         (e.g. `mkdir -p DIR && chown gpadmin DIR` on every host)"
    } else if message.contains("No such file") {
        " — each segment looks for its files on its own host under the same path: copy or mount \
         the set there"
    } else if message.contains("must be superuser")
        || message.contains("pg_execute_server_program")
        || message.contains("pg_write_server_files")
        || message.contains("pg_read_server_files")
    {
        " — reading and writing server files needs a superuser or a role granted \
         pg_read_server_files / pg_write_server_files / pg_execute_server_program"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        assert_eq!(
            copy_to_sql(
                "\"s\".\"t\"",
                Some(&["a".to_string(), "B c".to_string()]),
                SegmentEnd::File("/data/out_<SEGID>.csv"),
                "FORMAT csv"
            ),
            "COPY \"s\".\"t\" (\"a\", \"B c\") TO '/data/out_<SEGID>.csv' WITH (FORMAT csv, on_segment true)"
        );
        assert_eq!(
            copy_to_sql(
                "t",
                None,
                SegmentEnd::Program("gzip -c > 'x\\y<SEGID>'"),
                ""
            ),
            "COPY t TO PROGRAM E'gzip -c > ''x\\\\y<SEGID>''' WITH (on_segment true)"
        );
        assert_eq!(
            copy_from_sql("t", None, SegmentEnd::Program("cat f<SEGID>"), "FORMAT csv"),
            "COPY t FROM PROGRAM 'cat f<SEGID>' WITH (FORMAT csv, on_segment true)"
        );
        assert_eq!(
            web_table_sql("w", &[("a".into(), "integer".into())], "cat x"),
            "CREATE EXTERNAL WEB TEMP TABLE \"w\" (\"a\" integer) EXECUTE 'cat x' ON ALL FORMAT 'csv' (DELIMITER ',')"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert!(segment_hint("ERROR: mkdir: Permission denied").contains("OS user"));
    }
}
