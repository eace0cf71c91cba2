//! The objects that are neither schema nor table rows: sequence positions, large objects and
//! materialized views' contents.

use cluster::catalog::Relation;
use cluster::{quote, Client};

use crate::state::{Event, State};
use crate::tables::Filters;
use crate::CloneError;

/// A sequence whose position is copied.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub qualified: String,
    pub display: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// The sequences pg_dump would take with the same flags: those owned by a selected table
/// (serial and identity columns, as pg_dump's getOwnedSeqs), plus, without `-t`, every sequence
/// of the selected schemas not excluded by `-T`; with `-t`, the sequences its patterns name.
pub fn sequences(
    leader: &mut Client,
    filters: &Filters,
    selected: &[Relation],
) -> Result<Vec<Sequence>, CloneError> {
    let rows = leader
        .query(
            "SELECT n.nspname::text, c.relname::text, \
                    (SELECT d.refobjid FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                        AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass \
                        AND d.deptype IN ('a', 'i') LIMIT 1) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                AND n.nspname !~ '^pg_toast' ORDER BY 1, 2",
            &[],
        )
        .map_err(CloneError::query("listing sequences"))?;
    let sel = &filters.selection;
    let mut out = Vec::new();
    for r in rows {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        let owner: Option<u32> = r.get(2);
        let owned = owner.is_some_and(|o| selected.iter().any(|t| t.oid == o));
        let by_pattern = if sel.tables.is_empty() {
            (sel.schemas.is_empty() || sel.schemas.iter().any(|p| p.matches(&schema)))
                && !sel.exclude_schemas.iter().any(|p| p.matches(&schema))
                && !sel.exclude_tables.iter().any(|p| p.matches(&schema, &name))
        } else {
            sel.tables.iter().any(|p| p.matches(&schema, &name))
        };
        if !(owned || by_pattern) {
            continue;
        }
        let qualified = quote::qualified(&schema, &name);
        let v = leader
            .query_one(
                &format!("SELECT last_value, is_called FROM {qualified}"),
                &[],
            )
            .map_err(CloneError::query(format!(
                "reading sequence {schema}.{name}"
            )))?;
        out.push(Sequence {
            qualified,
            display: format!("{schema}.{name}"),
            last_value: v.get(0),
            is_called: v.get(1),
        });
    }
    Ok(out)
}

/// Sets every sequence on the target (setval is idempotent: a resumed run simply does it
/// again). Sequences the target lacks (excluded from the schema) are skipped.
pub fn set_sequences(target: &mut Client, seqs: &[Sequence]) -> Result<usize, CloneError> {
    let mut n = 0;
    for s in seqs {
        let lit = quote::literal(&s.qualified);
        let exists: bool = target
            .query_one(&format!("SELECT to_regclass({lit}) IS NOT NULL"), &[])
            .map_err(CloneError::query(format!(
                "looking for sequence {}",
                s.display
            )))?
            .get(0);
        if !exists {
            continue;
        }
        target
            .execute(
                &format!("SELECT pg_catalog.setval({lit}, $1, $2)"),
                &[&s.last_value, &s.is_called],
            )
            .map_err(CloneError::query(format!("setting sequence {}", s.display)))?;
        n += 1;
    }
    Ok(n)
}

/// Large objects read in pieces of this size: memory stays at one piece per object.
const LO_PIECE: i32 = 1 << 20;

/// Copies every large object (same OID, owner and grants unless `-O`/`-x`) in one target
/// transaction, logged like a chunk so a resumed run knows whether it committed.
pub fn copy_large_objects(
    source: &mut Client,
    target: &mut Client,
    state: &State,
    no_owner: bool,
    no_acl: bool,
) -> Result<u64, CloneError> {
    let objects = source
        .query(
            "SELECT oid, pg_get_userbyid(lomowner)::text FROM pg_largeobject_metadata ORDER BY oid",
            &[],
        )
        .map_err(CloneError::query("listing large objects"))?;
    if objects.is_empty() {
        return Ok(0);
    }
    let mut tx = target
        .transaction()
        .map_err(CloneError::query("starting the large objects' transaction"))?;
    for o in &objects {
        let (oid, owner): (u32, String) = (o.get(0), o.get(1));
        let what = format!("copying large object {oid}");
        tx.execute("SELECT lo_create($1)", &[&oid])
            .map_err(CloneError::query(what.clone()))?;
        let mut offset = 0i64;
        loop {
            let piece: Vec<u8> = source
                .query_one("SELECT lo_get($1, $2, $3)", &[&oid, &offset, &LO_PIECE])
                .map_err(CloneError::query(what.clone()))?
                .get(0);
            if piece.is_empty() {
                break;
            }
            tx.execute("SELECT lo_put($1, $2, $3)", &[&oid, &offset, &piece])
                .map_err(CloneError::query(what.clone()))?;
            offset += piece.len() as i64;
        }
        if !no_owner {
            tx.batch_execute(&format!(
                "ALTER LARGE OBJECT {oid} OWNER TO {}",
                quote::ident(&owner)
            ))
            .map_err(CloneError::query(what.clone()))?;
        }
    }
    if !no_acl {
        for g in large_object_grants(source)? {
            tx.batch_execute(&g)
                .map_err(CloneError::query("granting on large objects"))?;
        }
    }
    let xid: String = tx
        .query_one("SELECT txid_current()::text", &[])
        .map_err(CloneError::query("large objects"))?
        .get(0);
    state.record(Event::BlobsPending { xid })?;
    tx.commit()
        .map_err(CloneError::query("committing the large objects"))?;
    state.record(Event::Blobs)?;
    Ok(objects.len() as u64)
}

/// `GRANT ... ON LARGE OBJECT` for every privilege the source grants to others than the owner.
fn large_object_grants(source: &mut Client) -> Result<Vec<String>, CloneError> {
    let rows = source
        .query(
            "SELECT m.oid, a.privilege_type::text, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END \
               FROM pg_largeobject_metadata m, aclexplode(m.lomacl) a \
              WHERE a.grantee <> m.lomowner ORDER BY 1, 2",
            &[],
        )
        .map_err(CloneError::query("reading large objects' grants"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (oid, privilege, grantee): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
            format!("GRANT {privilege} ON LARGE OBJECT {oid} TO {grantee}")
        })
        .collect())
}

/// Refreshes the materialized views that are populated on the source, views that read other
/// views after those: a refresh that fails because a view it reads is not populated yet is
/// retried after the others, as long as each round makes progress.
pub fn refresh_matviews(
    source: &mut Client,
    target: &mut Client,
    views: &[Relation],
) -> Result<usize, CloneError> {
    let mut pending: Vec<&Relation> = Vec::new();
    for v in views {
        let populated: bool = source
            .query_one(
                "SELECT relispopulated FROM pg_class WHERE oid = $1",
                &[&v.oid],
            )
            .map_err(CloneError::query(format!("reading {}", v.display())))?
            .get(0);
        if populated {
            pending.push(v);
        }
    }
    let total = pending.len();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for v in &pending {
            let sql = format!("REFRESH MATERIALIZED VIEW {}", v.qualified());
            if let Err(e) = target.batch_execute(&sql) {
                last_error = Some((v.display(), cluster::error::server_message(&e)));
                failed.push(*v);
            }
        }
        if failed.len() == pending.len() {
            let (view, message) = last_error.expect("a failure was recorded");
            return Err(CloneError::Query {
                what: format!("refreshing materialized view {view}"),
                message,
            });
        }
        pending = failed;
    }
    Ok(total)
}
