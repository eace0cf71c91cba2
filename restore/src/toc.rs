//! What pg_restore issues for a TOC entry, and which entries it restores, read from
//! `pg_backup_archiver.c` (`_printTocEntry`, `_getObjectDescription`, `_tocEntryRequired`,
//! `identify_locking_dependencies`) and `pg_backup_db.c` (`IssueCommandPerBlob`,
//! `IssueACLPerBlob`).

use std::collections::{HashMap, HashSet};

use archive::TocEntry;
use cluster::quote;

/// pg_restore's selection (`_tocEntryRequired`): `-t -n -N -I -P -T`, `-L`, `--section`,
/// `-a/-s`, `-x`, the `--no-*` family; plus `--exclude-table-name`, which pg_restore lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    /// `-t`: table names (exact, as pg_restore).
    pub tables: Vec<String>,
    /// `-n`: schema names.
    pub schemas: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub exclude_schemas: Vec<String>,
    /// `-I`: index names.
    pub indexes: Vec<String>,
    /// `-P`: functions, aggregates and procedures, as `name(argument types)`.
    pub functions: Vec<String>,
    /// `-T/--trigger`: trigger names.
    pub triggers: Vec<String>,
    /// `--section`: the sections restored (none given: all).
    pub sections: Vec<Section>,
    /// `-L`: the dump ids of the list file's lines.
    pub use_list: Option<Vec<i32>>,
    pub schema_only: bool,
    pub data_only: bool,
    pub no_acl: bool,
    pub no_comments: bool,
    pub no_publications: bool,
    pub no_subscriptions: bool,
    pub no_security_labels: bool,
    /// `--no-tablespaces`: no `SET default_tablespace` (see [`Selection::strip`]).
    pub no_tablespaces: bool,
    /// `--no-table-access-method`: no `SET default_table_access_method`.
    pub no_table_access_method: bool,
    /// `-C`: the comment, security label and ACL of the database are restored (they name it,
    /// as pg_restore restores them only with the database).
    pub create: bool,
}

/// A section of an archive, as `--section` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Section {
    PreData,
    Data,
    PostData,
}

impl Section {
    fn of(section: i64) -> Option<Section> {
        match section {
            s if s == archive::toc::SECTION_PRE_DATA as i64 => Some(Section::PreData),
            s if s == archive::toc::SECTION_DATA as i64 => Some(Section::Data),
            s if s == archive::toc::SECTION_POST_DATA as i64 => Some(Section::PostData),
            _ => None,
        }
    }
}

/// `desc` values of entries restored after the main pass, as pg_restore does.
pub fn is_acl(desc: &str) -> bool {
    matches!(desc, "ACL" | "DEFAULT ACL" | "ACL LANGUAGE")
}

/// Entries that set session state every connection needs.
pub fn is_session(desc: &str) -> bool {
    matches!(desc, "ENCODING" | "STDSTRINGS" | "SEARCHPATH")
}

/// Entries pg_restore counts as data (`-a` takes them, `-s` leaves them).
fn is_data(e: &TocEntry) -> bool {
    let desc = e.desc();
    matches!(
        desc.as_ref(),
        "TABLE DATA" | "SEQUENCE SET" | "BLOBS" | "BLOB DATA" | "BLOB" | "BLOB METADATA"
    ) || (matches!(desc.as_ref(), "ACL" | "COMMENT" | "SECURITY LABEL")
        && e.tag().starts_with("LARGE OBJECT"))
}

/// Kinds that `-t` names.
fn is_tableish(desc: &str) -> bool {
    matches!(
        desc,
        "TABLE"
            | "TABLE DATA"
            | "VIEW"
            | "MATERIALIZED VIEW"
            | "MATERIALIZED VIEW DATA"
            | "SEQUENCE"
            | "SEQUENCE SET"
            | "FOREIGN TABLE"
    )
}

fn is_routine(desc: &str) -> bool {
    matches!(desc, "FUNCTION" | "AGGREGATE" | "PROCEDURE")
}

/// Entries that belong to another one (pg_restore restores them with their parent in a
/// selective restore, and all of them otherwise).
fn is_dependent(desc: &str) -> bool {
    matches!(
        desc,
        "ACL" | "COMMENT" | "SECURITY LABEL" | "STATISTICS DATA"
    )
}

/// A comment, security label or ACL of the database itself (`DATABASE name`), which only
/// `-C` restores (`_tocEntryRequired`).
pub fn is_on_database(e: &TocEntry) -> bool {
    matches!(e.desc().as_ref(), "ACL" | "COMMENT" | "SECURITY LABEL")
        && e.tag().starts_with("DATABASE ")
}

/// The entries a `--no-*` flag leaves out.
fn left_out_by_no_flags(s: &Selection, desc: &str) -> bool {
    (s.no_acl && is_acl(desc))
        || (s.no_comments && desc == "COMMENT")
        || (s.no_publications
            && matches!(
                desc,
                "PUBLICATION" | "PUBLICATION TABLE" | "PUBLICATION TABLES IN SCHEMA"
            ))
        || (s.no_security_labels && desc == "SECURITY LABEL")
        || (s.no_subscriptions && matches!(desc, "SUBSCRIPTION" | "SUBSCRIPTION TABLE"))
}

impl Selection {
    /// Whether any of `-t -n -N -I -P -T` narrows the restore (pg_restore's selective mode, in
    /// which comments, ACLs and security labels follow their object).
    fn selective(&self) -> bool {
        !self.schemas.is_empty() || !self.exclude_schemas.is_empty() || self.named_kinds()
    }

    /// pg_restore's `selTypes`: `-t`, `-I`, `-P` or `-T` given.
    fn named_kinds(&self) -> bool {
        !(self.tables.is_empty()
            && self.indexes.is_empty()
            && self.functions.is_empty()
            && self.triggers.is_empty())
    }

    /// The dump ids pg_restore would restore, in one pass in TOC order as
    /// `ProcessArchiveRestoreOptions` marks them: an entry without a section belongs to the
    /// section of the entry before it; a comment, ACL or security label of a selective
    /// restore goes with its object.
    pub fn select(&self, entries: &[TocEntry]) -> HashSet<i32> {
        let mut wanted = HashSet::new();
        // What a dependent entry may follow: wanted entries other than ACLs (a column's ACL
        // depends on its table's ACL too, which does not count).
        let mut parents = HashSet::new();
        // Tables `--exclude-table-name` leaves out, and what depends on them (their indexes,
        // constraints, triggers), which could only fail without them.
        let mut excluded = HashSet::new();
        let mut current = Some(Section::PreData);
        for e in entries {
            if e.section != archive::toc::SECTION_NONE as i64 {
                current = Section::of(e.section);
            }
            if self.excludes_table(e) || e.dependencies().iter().any(|d| excluded.contains(d)) {
                excluded.insert(e.dump_id);
                continue;
            }
            if self.required(e, current, &parents) {
                wanted.insert(e.dump_id);
                if !e.is("ACL") {
                    parents.insert(e.dump_id);
                }
            }
        }
        wanted
    }

    fn excludes_table(&self, e: &TocEntry) -> bool {
        is_tableish(&e.desc()) && self.exclude_tables.iter().any(|t| *t == e.tag())
    }

    fn required(&self, e: &TocEntry, section: Option<Section>, parents: &HashSet<i32>) -> bool {
        let desc = e.desc();
        if is_session(&desc) || desc == "DATABASE" || desc == "DATABASE PROPERTIES" {
            return false;
        }
        if left_out_by_no_flags(self, &desc) {
            return false;
        }
        if !self.sections.is_empty() && !section.is_some_and(|s| self.sections.contains(&s)) {
            return false;
        }
        if let Some(ids) = &self.use_list {
            if !ids.contains(&e.dump_id) {
                return false;
            }
        }
        if (self.schema_only && is_data(e)) || (self.data_only && !is_data(e)) {
            return false;
        }
        if is_on_database(e) {
            return self.create;
        }
        if is_dependent(&desc) {
            // Without selectivity everything goes, ownerless entries (ACLs of built-in
            // objects) included; with it, only those of an object being restored.
            return !self.selective() || e.dependencies().iter().any(|d| parents.contains(d));
        }
        self.standalone_wanted(e, &desc)
    }

    /// `-n -N -t -I -P -T` on an entry that stands alone.
    fn standalone_wanted(&self, e: &TocEntry, desc: &str) -> bool {
        let ns = e.namespace();
        if !self.schemas.is_empty() && (ns.is_empty() || !self.schemas.iter().any(|s| *s == ns)) {
            return false;
        }
        if !ns.is_empty() && self.exclude_schemas.iter().any(|s| *s == ns) {
            return false;
        }
        let tag = e.tag();
        let named = |list: &[String]| list.iter().any(|t| *t == tag);
        if !self.named_kinds() {
            return true;
        }
        if is_tableish(desc) {
            named(&self.tables)
        } else if desc == "INDEX" {
            named(&self.indexes)
        } else if is_routine(desc) {
            named(&self.functions)
        } else if desc == "TRIGGER" {
            named(&self.triggers)
        } else {
            false
        }
    }

    /// `--strict-names`: every name given to `-n -t -I -P -T` must match an entry, or the
    /// error pg_restore gives (`table "x" not found`).
    pub fn check_strict_names(&self, entries: &[TocEntry]) -> Result<(), NotFound> {
        let lists: [(&str, &[String]); 5] = [
            ("schema", &self.schemas),
            ("table", &self.tables),
            ("index", &self.indexes),
            ("function", &self.functions),
            ("trigger", &self.triggers),
        ];
        for (kind, names) in lists {
            if let Some(name) = names
                .iter()
                .find(|n| !entries.iter().any(|e| names_entry(kind, n, e)))
            {
                return Err(NotFound {
                    kind,
                    name: name.clone(),
                });
            }
        }
        Ok(())
    }

    /// `--no-tablespaces` and `--no-table-access-method`: the entries without the placement
    /// pg_restore would not set (no `SET default_tablespace`, no `Tablespace:` in a script's
    /// comments).
    pub fn strip(&self, entries: &mut [TocEntry]) {
        for e in entries {
            if self.no_tablespaces {
                e.tablespace = None;
            }
            if self.no_table_access_method {
                e.tableam = None;
            }
        }
    }
}

impl Selection {
    /// `-L`: the entries in the list's order, as pg_restore's `SortTocFromFile` leaves its TOC
    /// (each listed entry moved to the end in turn): the unlisted ones (never restored) first in
    /// TOC order, then the listed ones in the list's order. A serial restore, `-f` and `-l`
    /// follow it; a parallel one starts from it, within what dependencies allow. Selection
    /// ([`Selection::select`]) runs on this order too, as pg_restore's does.
    pub fn sort_by_list(&self, entries: &mut [TocEntry]) {
        let Some(ids) = &self.use_list else {
            return;
        };
        let rank: HashMap<i32, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i + 1)).collect();
        // Stable: the unlisted keep their TOC order.
        entries.sort_by_key(|e| rank.get(&e.dump_id).copied().unwrap_or(0));
    }
}

/// `\connect` to `dbname` as pg_restore writes it in a script (`appendPsqlMetaConnect`): the
/// quoted name when it has only letters, digits, `_` and `.`, else a quoted connection string.
pub fn connect_line(dbname: &str) -> String {
    let simple = dbname
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if simple && !dbname.is_empty() {
        return format!("\\connect {}\n", quote::name(dbname));
    }
    let value = dbname.replace('\\', "\\\\").replace('\'', "\\'");
    format!(
        "\\connect -reuse-previous=on {}\n",
        quote::ident(&format!("dbname='{value}'"))
    )
}

/// `--strict-names`: a name given to `-n -t -I -P -T` that no entry has.
#[derive(Debug, thiserror::Error)]
#[error("{kind} \"{name}\" not found")]
pub struct NotFound {
    pub kind: &'static str,
    pub name: String,
}

/// Whether `name`, given for a `kind` of `--strict-names`, names entry `e`.
fn names_entry(kind: &str, name: &str, e: &TocEntry) -> bool {
    let desc = e.desc();
    match kind {
        "schema" => e.namespace() == name,
        "table" => is_tableish(&desc) && e.tag() == name,
        "index" => desc == "INDEX" && e.tag() == name,
        "function" => is_routine(&desc) && e.tag() == name,
        _ => desc == "TRIGGER" && e.tag() == name,
    }
}

/// `-L FILE`: the dump ids of a list in `pg_restore -l`'s format (`;` starts a comment), and a
/// warning for each line that names none or names one twice, as pg_restore ignores them.
pub fn read_use_list(text: &str) -> (Vec<i32>, Vec<String>) {
    let mut ids = Vec::new();
    let mut ignored = Vec::new();
    for line in text.lines() {
        let before_comment = line.split(';').next().unwrap_or("");
        if before_comment.trim().is_empty() {
            continue;
        }
        let digits: String = before_comment
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits.parse::<i32>() {
            Ok(id) if id > 0 && !ids.contains(&id) => ids.push(id),
            _ => ignored.push(line.to_string()),
        }
    }
    (ids, ignored)
}

/// The object an `ALTER ... OWNER TO` names, as `_getObjectDescription` builds it: the kind and
/// the quoted (qualified) name, or for routines and operators the signature from the entry's
/// DROP statement, which is the only unambiguous name of an overloaded one.
pub fn object_description(e: &TocEntry, pg17: bool) -> Option<String> {
    let desc = e.desc();
    let tag = e.tag();
    let ns = e.namespace();
    match desc.as_ref() {
        "COLLATION"
        | "CONVERSION"
        | "DOMAIN"
        | "FOREIGN TABLE"
        | "MATERIALIZED VIEW"
        | "SEQUENCE"
        | "STATISTICS"
        | "TABLE"
        | "TEXT SEARCH DICTIONARY"
        | "TEXT SEARCH CONFIGURATION"
        | "TYPE"
        | "VIEW"
        | "DATABASE"
        | "PROCEDURAL LANGUAGE"
        | "SCHEMA"
        | "EVENT TRIGGER"
        | "FOREIGN DATA WRAPPER"
        | "SERVER"
        | "PUBLICATION"
        | "SUBSCRIPTION" => {
            let name = if ns.is_empty() {
                quote::name(&tag)
            } else {
                quote::display(&ns, &tag)
            };
            // pg_restore 16 and earlier: ALTER TABLE for views and sequences.
            let kind = match desc.as_ref() {
                "VIEW" | "SEQUENCE" | "MATERIALIZED VIEW" if !pg17 => "TABLE",
                d => d,
            };
            Some(format!("{kind} {name}"))
        }
        "BLOB" => Some(format!("LARGE OBJECT {tag}")),
        "AGGREGATE" | "FUNCTION" | "OPERATOR" | "OPERATOR CLASS" | "OPERATOR FAMILY"
        | "PROCEDURE" => {
            let drop = e.drop_stmt();
            let body = drop.strip_prefix("DROP ")?;
            Some(body.trim_end_matches(['\n', ';']).to_string())
        }
        _ => None,
    }
}

/// The large objects a `BLOB METADATA` entry lists: its definition is their OIDs, one a line.
fn blob_oids(e: &TocEntry) -> Vec<String> {
    e.defn()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `cmd_begin OID cmd_end;` for every large object of a `BLOB METADATA` entry.
fn per_blob(blobs: &TocEntry, cmd_begin: &str, cmd_end: &str) -> String {
    let mut out = String::new();
    for oid in blob_oids(blobs) {
        out.push_str(&format!("{cmd_begin}{oid}{cmd_end};\n"));
    }
    out
}

/// A `LARGE OBJECTS` ACL entry holds its GRANT/REVOKE commands once, written for the first
/// object of its group: each is split around `LARGE OBJECT <oid>` and issued for every object
/// of the `BLOB METADATA` entry it depends on.
fn acl_per_blob(acl: &TocEntry, blobs: &TocEntry) -> String {
    let text = acl.defn();
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut start, mut second, mut in_quotes, mut i) = (0usize, None, false, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            in_quotes = !in_quotes;
        }
        if in_quotes {
            i += 1;
            continue;
        }
        if text[i..].starts_with("LARGE OBJECT ") {
            let first_end = i + "LARGE OBJECT ".len();
            let mut j = first_end;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            second = Some((first_end, j));
            i = j;
        } else if c == b';' {
            if let Some((first_end, second_start)) = second.take() {
                out.push_str(&per_blob(
                    blobs,
                    &text[start..first_end],
                    &text[second_start..i],
                ));
            }
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    out
}

/// How pg_restore spells what it issues: `-O`, and the pg_restore version written for (the
/// one of the pg_dump that made the archive): pg_restore 17 and later (archive format 1.16 on)
/// name views, sequences and materialized views as such in owner statements (16 and earlier
/// said `ALTER TABLE`) and set `transaction_timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    pub no_owner: bool,
    pub pg17: bool,
}

/// What pg_restore issues for an entry on a connection: the placement it needs (see
/// [`Placement`], set every time: a batch or a worker's connection has no known state), the
/// definition, the owner statement.
pub fn entry_sql<'a>(
    e: &TocEntry,
    style: Style,
    find: impl Fn(i32) -> Option<&'a TocEntry>,
) -> String {
    let mut sql = Placement::default().select(e).replace(";\n\n", ";\n");
    let parts = EntryParts::of(e, style, find);
    sql.push_str(&parts.body);
    if let Some(owner) = &parts.owner {
        if e.is("BLOB METADATA") {
            sql.push_str(owner);
        } else {
            sql.push_str(&format!("\n{owner}\n"));
        }
    }
    sql.push_str(&parts.tail);
    sql
}

/// An entry as `pg_restore -f` writes it (`_printTocEntry`): the placement statements that
/// change, the `header` comment, the definition and the owner statement, each followed by an
/// empty line.
pub fn script_entry<'a>(
    e: &TocEntry,
    style: Style,
    find: impl Fn(i32) -> Option<&'a TocEntry>,
    placement: &mut Placement,
    header: &str,
) -> String {
    let mut text = placement.select(e);
    text.push_str(header);
    let parts = EntryParts::of(e, style, find);
    // `IssueCommandPerBlob` ends its statements with an empty line of its own.
    let end = if e.is("BLOB METADATA") { "" } else { "\n\n" };
    if !parts.body.is_empty() {
        text.push_str(&parts.body);
        text.push_str(end);
    }
    if let Some(owner) = &parts.owner {
        text.push_str(owner);
        text.push_str(end);
    }
    text.push_str(&parts.tail);
    text
}

/// An entry's statements but its placement.
struct EntryParts {
    /// The definition (or what pg_restore issues instead of it).
    body: String,
    /// `ALTER ... OWNER TO ...;` (one per large object of a `BLOB METADATA` entry).
    owner: Option<String>,
    /// A partitioned table's access method, which it does not take from the default.
    tail: String,
}

impl EntryParts {
    fn of<'a>(e: &TocEntry, style: Style, find: impl Fn(i32) -> Option<&'a TocEntry>) -> Self {
        let no_owner = style.no_owner;
        let desc = e.desc();
        let body = if no_owner && desc == "SCHEMA" && !e.defn().starts_with("--") {
            format!("CREATE SCHEMA {};\n", quote::name(&e.tag()))
        } else if desc == "BLOB METADATA" {
            per_blob(e, "SELECT pg_catalog.lo_create('", "')") + "\n"
        } else if desc == "ACL" && e.tag().starts_with("LARGE OBJECTS") {
            let blobs = e.dependencies().first().and_then(|d| find(*d));
            blobs.map(|b| acl_per_blob(e, b)).unwrap_or_default()
        } else {
            e.defn().into_owned()
        };
        let owner = owner_sql(e, style);
        let mut tail = String::new();
        if e.relkind == i64::from(b'p') {
            if let Some(am) = e.tableam.as_ref().filter(|a| !a.is_empty()) {
                tail = format!(
                    "ALTER TABLE {} SET ACCESS METHOD {};\n",
                    quote::display(&e.namespace(), &e.tag()),
                    quote::name(&String::from_utf8_lossy(am))
                );
            }
        }
        EntryParts { body, owner, tail }
    }
}

/// The owner statement pg_restore issues after an entry (`ALTER <object> OWNER TO <owner>;`, one
/// per large object of a `BLOB METADATA` entry), unless `-O` or the entry has no owner or no
/// DROP (not separately ownable).
pub fn owner_sql(e: &TocEntry, style: Style) -> Option<String> {
    let owner = e.owner();
    if style.no_owner || owner.is_empty() || e.drop_stmt().is_empty() {
        return None;
    }
    if e.is("BLOB METADATA") {
        let end = format!(" OWNER TO {}", quote::name(&owner));
        return Some(per_blob(e, "ALTER LARGE OBJECT ", &end) + "\n");
    }
    object_description(e, style.pg17)
        .map(|o| format!("ALTER {o} OWNER TO {};", quote::name(&owner)))
}

/// Where pg_restore creates objects (`_selectTablespace`, `_selectTableAccessMethod`): the
/// `default_tablespace` and `default_table_access_method` last set, so that a script sets them
/// only where they change, as `pg_restore -f` does.
#[derive(Debug, Default)]
pub struct Placement {
    tablespace: Option<String>,
    tableam: Option<String>,
}

impl Placement {
    /// The `SET`s entry `e` needs that differ from what is set, each followed by an empty line.
    /// A partitioned table has no storage: its access method is set by its own statement.
    pub fn select(&mut self, e: &TocEntry) -> String {
        let mut sql = String::new();
        if let Some(ts) = &e.tablespace {
            let ts = String::from_utf8_lossy(ts).into_owned();
            if self.tablespace.as_ref() != Some(&ts) {
                let value = if ts.is_empty() {
                    "''".to_string()
                } else {
                    quote::name(&ts)
                };
                sql.push_str(&format!("SET default_tablespace = {value};\n\n"));
                self.tablespace = Some(ts);
            }
        }
        let partitioned = e.relkind == i64::from(b'p');
        if let Some(am) = e.tableam.as_ref().filter(|a| !a.is_empty() && !partitioned) {
            let am = String::from_utf8_lossy(am).into_owned();
            if self.tableam.as_ref() != Some(&am) {
                sql.push_str(&format!(
                    "SET default_table_access_method = {};\n\n",
                    quote::name(&am)
                ));
                self.tableam = Some(am);
            }
        }
        sql
    }
}

/// Whether `sql` does anything beyond the `SET`s [`entry_sql`] puts first.
pub fn has_body(e: &TocEntry) -> bool {
    !e.defn().trim().is_empty()
}

/// The `--clean` statement of `e`: its DROP, with `IF EXISTS` after the object kind when asked
/// (as `pg_restore --if-exists`); large objects' metadata drops each object that exists.
pub fn drop_sql(e: &TocEntry, if_exists: bool) -> Option<String> {
    if e.is("BLOB") && if_exists {
        // pg_restore's `DropLOIfExists`.
        return Some(format!("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = '{}';\n", e.tag()));
    }
    if e.is("BLOB METADATA") {
        // `IssueCommandPerBlob`: a statement per object, then an empty line (the entry's own
        // DROP is a placeholder).
        let mut out = if if_exists {
            per_blob(
                e,
                "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = '",
                "'",
            )
        } else {
            per_blob(e, "SELECT pg_catalog.lo_unlink('", "')")
        };
        out.push('\n');
        return Some(out);
    }
    let drop = e.drop_stmt();
    if drop.trim().is_empty() {
        return None;
    }
    Some(if if_exists {
        with_if_exists(&e.desc(), &drop)
    } else {
        drop.into_owned()
    })
}

/// `--if-exists`: `IF EXISTS` where pg_restore's `RestoreArchive` injects it: after
/// `ALTER TABLE` and after `DROP <kind>` (`DROP CONSTRAINT` for constraints), the kind being the
/// entry's `desc`; a column default, database properties, a view's `CREATE OR REPLACE` and a
/// comment (the public schema's) are left as they are, and so, with a warning, is a statement
/// without its `DROP <kind>`.
pub fn with_if_exists(desc: &str, drop: &str) -> String {
    if drop.starts_with("--") {
        return drop.to_string();
    }
    let (mut out, rest) = match drop.strip_prefix("ALTER TABLE") {
        Some(rest) => ("ALTER TABLE IF EXISTS".to_string(), rest),
        None => (String::new(), drop),
    };
    if desc == "DEFAULT"
        || desc == "DATABASE PROPERTIES"
        || rest.starts_with("CREATE OR REPLACE VIEW")
    {
        out.push_str(rest);
        return out;
    }
    let mark = if matches!(desc, "CONSTRAINT" | "CHECK CONSTRAINT" | "FK CONSTRAINT") {
        "DROP CONSTRAINT".to_string()
    } else {
        format!("DROP {desc}")
    };
    match rest.find(&mark) {
        Some(i) => {
            let at = i + mark.len();
            out.push_str(&format!("{} IF EXISTS{}", &rest[..at], &rest[at..]));
        }
        None => {
            logline::say!(
                "cbrestore: warning: could not find where to insert IF EXISTS in statement \"{}\"",
                drop.trim_end()
            );
            out.push_str(rest);
        }
    }
    out
}

/// The entries a post-data entry takes an exclusive lock on (pg_restore's `lockDeps`): every
/// TABLE or TABLE DATA among its dependencies, except for `CREATE INDEX`, which does not lock
/// out other readers; for `INDEX ATTACH` also the indexes it depends on. `desc_of` gives an
/// entry's kind by dump id.
pub fn lock_deps(e: &TocEntry, deps: &[i32], desc_of: impl Fn(i32) -> Option<String>) -> Vec<i32> {
    if e.section != archive::toc::SECTION_POST_DATA as i64 || e.is("INDEX") {
        return Vec::new();
    }
    // Beyond pg_restore: attaching partitions' indexes of one partitioned index, one at a
    // time. Two attaches in different branches of a tree that commit at once each see the
    // other's branch still invalid, and the root index stays invalid for good (a foreign key
    // to it then fails: "no unique constraint matching given keys", seen on the regression
    // database with -j 2). They share the root's index or constraint among their dependencies.
    let attach = e.is("INDEX ATTACH");
    deps.iter()
        .copied()
        .filter(|d| match desc_of(*d).as_deref() {
            Some("TABLE" | "TABLE DATA") => true,
            Some("INDEX" | "CONSTRAINT") => attach,
            _ => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(desc: &str, ns: &str, tag: &str, defn: &str, drop: &str, owner: &str) -> TocEntry {
        let b = |s: &str| Some(s.as_bytes().to_vec());
        TocEntry {
            dump_id: 7,
            had_dumper: 0,
            table_oid: b("0"),
            oid: b("0"),
            tag: b(tag),
            desc: b(desc),
            section: 2,
            defn: b(defn),
            drop_stmt: b(drop),
            copy_stmt: None,
            namespace: b(ns),
            tablespace: None,
            tableam: None,
            relkind: 0,
            owner: b(owner),
            with_oids: None,
            deps: vec![b"3".to_vec()],
            extra: archive::toc::Extra::File(None),
        }
    }

    #[test]
    fn use_lists_order_the_entries_like_sort_toc_from_file() {
        let mut entries: Vec<TocEntry> = (1..=5)
            .map(|i| {
                let mut e = entry("TABLE", "public", &format!("t{i}"), "", "", "o");
                e.dump_id = i;
                e
            })
            .collect();
        let selection = Selection {
            use_list: Some(vec![4, 2, 5]),
            ..Default::default()
        };
        selection.sort_by_list(&mut entries);
        let ids: Vec<i32> = entries.iter().map(|e| e.dump_id).collect();
        assert_eq!(ids, [1, 3, 4, 2, 5]);
        Selection::default().sort_by_list(&mut entries);
        assert_eq!(entries[2].dump_id, 4, "no list: the order stays");
    }

    #[test]
    fn use_lists_read_like_pg_restore() {
        let (ids, ignored) = read_use_list(
            ";\n; Archive: x\n216; 1259 16389 TABLE s1 a app_owner\n;3368; 0 0 COMMENT s1 TABLE a\n\n  7; 2615 SCHEMA - s2\nbad line\n216; again\n",
        );
        assert_eq!(ids, [216, 7]);
        assert_eq!(ignored, ["bad line", "216; again"]);
    }

    #[test]
    fn comments_and_acls_follow_their_object_in_a_selective_restore() {
        let mut table = entry(
            "TABLE",
            "s1",
            "a",
            "CREATE TABLE s1.a ();",
            "DROP TABLE s1.a;",
            "o",
        );
        table.dump_id = 3;
        table.deps.clear();
        let mut comment = entry("COMMENT", "s1", "TABLE a", "COMMENT ON ...;", "", "o");
        comment.dump_id = 8;
        comment.section = archive::toc::SECTION_NONE as i64;
        let mut other = entry(
            "TABLE",
            "s1",
            "b",
            "CREATE TABLE s1.b ();",
            "DROP TABLE s1.b;",
            "o",
        );
        other.dump_id = 9;
        other.deps.clear();
        let entries = [table, comment, other];
        let picked = |s: &Selection| {
            let mut ids: Vec<i32> = s.select(&entries).into_iter().collect();
            ids.sort();
            ids
        };
        assert_eq!(picked(&Selection::default()), [3, 8, 9]);
        let t = |name: &str| Selection {
            tables: vec![name.into()],
            ..Default::default()
        };
        assert_eq!(picked(&t("a")), [3, 8]);
        assert_eq!(picked(&t("b")), [9]);
        let no_comments = Selection {
            no_comments: true,
            ..t("a")
        };
        assert_eq!(picked(&no_comments), [3]);
        let excluded = Selection {
            exclude_tables: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(picked(&excluded), [9], "its comment goes with it");
        let strict = t("nosuch").check_strict_names(&entries).unwrap_err();
        assert_eq!(strict.to_string(), "table \"nosuch\" not found");
    }

    #[test]
    fn if_exists_is_inserted_like_pg_restore() {
        let cases = [
            (
                "TABLE",
                "DROP TABLE public.t;\n",
                "DROP TABLE IF EXISTS public.t;\n",
            ),
            (
                "CONSTRAINT",
                "ALTER TABLE ONLY public.t DROP CONSTRAINT t_pkey;\n",
                "ALTER TABLE IF EXISTS ONLY public.t DROP CONSTRAINT IF EXISTS t_pkey;\n",
            ),
            (
                "MATERIALIZED VIEW",
                "DROP MATERIALIZED VIEW s.mv;\n",
                "DROP MATERIALIZED VIEW IF EXISTS s.mv;\n",
            ),
            (
                "OPERATOR CLASS",
                "DROP OPERATOR CLASS public.c USING btree;\n",
                "DROP OPERATOR CLASS IF EXISTS public.c USING btree;\n",
            ),
            (
                "DATABASE",
                "DROP DATABASE src;\n",
                "DROP DATABASE IF EXISTS src;\n",
            ),
            (
                "DEFAULT",
                "ALTER TABLE public.t ALTER COLUMN id DROP DEFAULT;\n",
                "ALTER TABLE IF EXISTS public.t ALTER COLUMN id DROP DEFAULT;\n",
            ),
            (
                "SCHEMA",
                "-- *not* dropping schema\n",
                "-- *not* dropping schema\n",
            ),
        ];
        for (desc, drop, want) in cases {
            assert_eq!(with_if_exists(desc, drop), want, "{desc}");
        }
    }

    #[test]
    fn owners_of_overloaded_routines_come_from_their_drop() {
        let p = entry(
            "PROCEDURE",
            "public",
            "ptest10(OUT a integer, IN b integer, IN c integer)",
            "CREATE PROCEDURE ...;",
            "DROP PROCEDURE public.ptest10(OUT a integer, IN b integer, IN c integer);\n",
            "alice",
        );
        assert!(entry_sql(&p, Style::default(), |_| None).ends_with(
            "\nALTER PROCEDURE public.ptest10(OUT a integer, IN b integer, IN c integer) OWNER TO alice;\n"
        ));
        let t = entry(
            "TABLE",
            "Sales",
            "Big T",
            "CREATE ...;",
            "DROP TABLE x;",
            "Bob",
        );
        assert!(entry_sql(&t, Style::default(), |_| None)
            .ends_with("\nALTER TABLE \"Sales\".\"Big T\" OWNER TO \"Bob\";\n"));
        let v = entry(
            "VIEW",
            "public",
            "v",
            "CREATE VIEW ...;",
            "DROP VIEW x;",
            "select",
        );
        let pg17 = Style {
            no_owner: false,
            pg17: true,
        };
        assert!(
            entry_sql(&v, pg17, |_| None).ends_with("\nALTER VIEW public.v OWNER TO \"select\";\n")
        );
        assert!(entry_sql(&v, Style::default(), |_| None)
            .ends_with("\nALTER TABLE public.v OWNER TO \"select\";\n"));
        assert!(!entry_sql(
            &t,
            Style {
                no_owner: true,
                pg17: false
            },
            |_| None
        )
        .contains("OWNER"));
        // No DROP statement: not separately ownable, no owner statement.
        let c = entry("COMMENT", "public", "TABLE t", "COMMENT ...;", "", "alice");
        assert!(!entry_sql(&c, Style::default(), |_| None).contains("OWNER"));
    }

    #[test]
    fn large_objects_metadata_and_acls_per_object() {
        let meta = entry(
            "BLOB METADATA",
            "",
            "LARGE OBJECTS 16400..16401",
            "16400\n16401\n",
            "-- dummy",
            "alice",
        );
        assert_eq!(
            entry_sql(&meta, Style::default(), |_| None),
            "SELECT pg_catalog.lo_create('16400');\nSELECT pg_catalog.lo_create('16401');\n\n\
             ALTER LARGE OBJECT 16400 OWNER TO alice;\nALTER LARGE OBJECT 16401 OWNER TO alice;\n\n"
        );
        let acl = entry(
            "ACL",
            "",
            "LARGE OBJECTS 16400..16401",
            "GRANT SELECT ON LARGE OBJECT 16400 TO \"r;1\";\nREVOKE ALL ON LARGE OBJECT 16400 FROM PUBLIC;\n",
            "",
            "alice",
        );
        assert_eq!(
            entry_sql(&acl, Style::default(), |_| Some(&meta)),
            "GRANT SELECT ON LARGE OBJECT 16400 TO \"r;1\";\nGRANT SELECT ON LARGE OBJECT 16401 TO \"r;1\";\n\
             REVOKE ALL ON LARGE OBJECT 16400 FROM PUBLIC;\nREVOKE ALL ON LARGE OBJECT 16401 FROM PUBLIC;\n"
        );
        assert!(drop_sql(&meta, true)
            .unwrap()
            .contains("WHERE oid = '16401'"));
    }
}
