//! Catalog facts about the tables whose data we dump that pg_dump's schema TOC does not give us.
//!
//! - Tables belonging to an extension are pg_dump's business: it dumps the data of an
//!   extension's configuration tables (with the extension's own filter) and nothing of the
//!   others, so we must neither exclude nor dump them.
//! - With `--data-only` pg_dump writes no TABLE entries to take tag, owner and dependency from,
//!   and orders the data so referenced tables load first (pg_dump.c `getTableDataFKConstraints`):
//!   owners and foreign keys come from the catalog.

use std::collections::{HashMap, HashSet};

use postgres::Client;

use cluster::ClusterError;

/// pg_class oids of the relations that are members of an extension.
pub fn extension_members(client: &mut Client) -> Result<HashSet<u32>, ClusterError> {
    let rows = client
        .query(
            "SELECT objid FROM pg_catalog.pg_depend \
              WHERE classid = 'pg_catalog.pg_class'::regclass AND deptype = 'e'",
            &[],
        )
        .map_err(ClusterError::query("listing extension members"))?;
    Ok(rows.iter().map(|r| r.get::<_, u32>(0)).collect())
}

/// Owner role of every relation, by oid.
pub fn owners(client: &mut Client) -> Result<HashMap<u32, String>, ClusterError> {
    let rows = client
        .query(
            "SELECT oid, pg_catalog.pg_get_userbyid(relowner)::text FROM pg_catalog.pg_class \
              WHERE relkind IN ('r', 'p')",
            &[],
        )
        .map_err(ClusterError::query("reading table owners"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A table and its COPY column list spelled as pg_dump spells them in `copyStmt`: quoted only
/// where needed (the server's `quote_ident`, the rule pg_dump's `fmtId` follows), generated
/// columns left out. A table without columns gets an empty list, as pg_dump writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget {
    pub table: String,
    pub columns: String,
}

impl CopyTarget {
    pub fn read(
        client: &mut Client,
        schema: &str,
        name: &str,
        columns: &[String],
    ) -> Result<CopyTarget, ClusterError> {
        let mut names = vec![schema.to_string(), name.to_string()];
        names.extend(columns.iter().cloned());
        let quoted: Vec<String> = client
            .query(
                "SELECT pg_catalog.quote_ident(x) FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i",
                &[&names],
            )
            .map_err(ClusterError::query(format!("quoting the names of {schema}.{name}")))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(CopyTarget {
            table: format!("{}.{}", quoted[0], quoted[1]),
            columns: quoted[2..].join(", "),
        })
    }

    /// `(a, b)`, or nothing for a table without columns.
    pub fn column_clause(&self) -> String {
        if self.columns.is_empty() {
            String::new()
        } else {
            format!("({})", self.columns)
        }
    }

    /// pg_dump's `copyStmt`, byte for byte.
    pub fn copy_from_stdin(&self) -> String {
        format!("COPY {} {} FROM stdin;\n", self.table, self.column_clause())
    }
}

/// (referencing, referenced) table oids of every foreign key between two different tables.
pub fn foreign_keys(client: &mut Client) -> Result<Vec<(u32, u32)>, ClusterError> {
    let rows = client
        .query(
            "SELECT DISTINCT conrelid, confrelid FROM pg_catalog.pg_constraint \
              WHERE contype = 'f' AND conrelid <> confrelid",
            &[],
        )
        .map_err(ClusterError::query("reading foreign keys"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `items` reordered so that every item comes after the items it references (`edges` are
/// (referencing, referenced) keys), otherwise keeping the given order. Items on a cycle keep
/// their order and are returned in the second list, as pg_dump warns about them.
pub fn referenced_first<T, K: Copy + Eq + std::hash::Hash>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
    edges: &[(K, K)],
) -> (Vec<T>, Vec<K>) {
    let keys: HashSet<K> = items.iter().map(&key).collect();
    let mut pending: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut placed: HashSet<K> = HashSet::new();
    let mut out = Vec::with_capacity(pending.len());
    loop {
        let mut progress = false;
        for slot in pending.iter_mut() {
            let Some(item) = slot.as_ref() else { continue };
            let k = key(item);
            let ready = edges
                .iter()
                .filter(|(from, to)| *from == k && keys.contains(to) && *to != k)
                .all(|(_, to)| placed.contains(to));
            if ready {
                placed.insert(k);
                out.push(slot.take().expect("present"));
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    let cyclic: Vec<K> = pending.iter().flatten().map(&key).collect();
    out.extend(pending.into_iter().flatten());
    (out, cyclic)
}

#[cfg(test)]
mod tests {
    use super::referenced_first;

    #[test]
    fn copy_statements_are_pg_dumps() {
        let t = super::CopyTarget {
            table: "public.\"Odd\"\"Name\"".into(),
            columns: "id, \"select\"".into(),
        };
        assert_eq!(
            t.copy_from_stdin(),
            "COPY public.\"Odd\"\"Name\" (id, \"select\") FROM stdin;\n"
        );
        let empty = super::CopyTarget {
            table: "public.nothing".into(),
            columns: String::new(),
        };
        assert_eq!(
            empty.copy_from_stdin(),
            "COPY public.nothing  FROM stdin;\n"
        );
    }

    #[test]
    fn referenced_tables_come_first_and_cycles_are_reported() {
        // 1 -> 3 (1 references 3), 3 -> 2.
        let (order, cyclic) = referenced_first(vec![1, 2, 3, 4], |x| *x, &[(1, 3), (3, 2)]);
        assert_eq!(order, vec![2, 3, 4, 1]);
        assert!(cyclic.is_empty());
        let (order, cyclic) = referenced_first(vec![1, 2, 5], |x| *x, &[(1, 2), (2, 1), (5, 9)]);
        assert_eq!(order, vec![5, 1, 2]);
        assert_eq!(cyclic, vec![1, 2]);
    }
}
