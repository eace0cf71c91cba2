//! Pass 1: what the dump defines — relations, their columns and unique objects, partition and
//! inheritance edges, user types, and COPY row counts. Statements are identified by their
//! ordinal (0-based count of statements), which pass 2 counts the same way.

use std::collections::{BTreeMap, HashMap};

use crate::clause::Clause;
use crate::names::QualName;
use crate::parse::{Column, Stmt, TableKind, UniqueSpec};
use crate::types::UserTypes;

/// What kind of relation a CREATE statement made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelKind {
    Table,
    /// Created with `PARTITION OF parent`: no clause allowed.
    PartitionOf(QualName),
    MatView,
    /// Foreign/external tables and CREATE TABLE AS: never touched.
    Untouched,
}

#[derive(Clone, Debug)]
pub struct Relation {
    pub name: QualName,
    pub kind: RelKind,
    pub columns: Vec<Column>,
    pub inherits: Vec<QualName>,
    pub partitioned: bool,
    pub existing: Option<Clause>,
    /// Ordinal of the CREATE statement.
    pub stmt: u64,
    pub line: u64,
}

/// A unique object and the statement that creates it.
#[derive(Clone, Debug)]
pub struct UniqueObject {
    pub spec: UniqueSpec,
    /// Ordinal of the defining statement (the CREATE TABLE itself for inline constraints).
    pub stmt: u64,
    /// Whether the statement can be rewritten into a plain index.
    pub demotable: bool,
    /// Inline in CREATE TABLE (cannot be demoted separately).
    pub inline: bool,
}

/// Two CREATE statements for the same relation: several databases in one script.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {name} is created a second time (first at line {first_line}); scripts holding several databases are not supported, split them per database")]
pub struct DuplicateRelation {
    pub name: QualName,
    pub line: u64,
    pub first_line: u64,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub relations: BTreeMap<QualName, Relation>,
    pub uniques: HashMap<QualName, Vec<UniqueObject>>,
    /// (parent, child) from `ATTACH PARTITION` and `PARTITION OF`.
    pub partition_edges: Vec<(QualName, QualName)>,
    /// (parent, child) from `INHERITS` and `ALTER TABLE ... INHERIT`.
    pub inherit_edges: Vec<(QualName, QualName)>,
    pub user_types: UserTypes,
    /// Attributes of composite types, for tables created `OF` them.
    pub composites: HashMap<QualName, Vec<Column>>,
    /// Rows seen in COPY data, per table.
    pub copy_rows: HashMap<QualName, u64>,
}

impl Catalog {
    /// Record one parsed statement.
    pub fn add(&mut self, ordinal: u64, line: u64, stmt: &Stmt) -> Result<(), DuplicateRelation> {
        match stmt {
            Stmt::CreateTable(t) => self.add_table(ordinal, line, t)?,
            Stmt::CreateMatView(m) => self.insert(Relation {
                name: m.name.clone(),
                kind: RelKind::MatView,
                columns: self.typed_matview_columns(m),
                inherits: Vec::new(),
                partitioned: false,
                existing: m.existing.as_ref().map(|e| e.clause.clone()),
                stmt: ordinal,
                line,
            })?,
            Stmt::AddConstraint(a) => {
                self.add_unique(&a.table, &a.spec, ordinal, a.demoted.is_some(), false)
            }
            Stmt::UniqueIndex(u) => self.add_unique(&u.table, &u.spec, ordinal, true, false),
            Stmt::AttachPartition { parent, child } => {
                self.partition_edges.push((parent.clone(), child.clone()))
            }
            Stmt::Inherit { parent, child } => {
                self.inherit_edges.push((parent.clone(), child.clone()))
            }
            Stmt::CreateType {
                name,
                def,
                attributes,
            } => {
                self.user_types.insert(name.clone(), def.clone());
                if !attributes.is_empty() {
                    self.composites.insert(name.clone(), attributes.clone());
                }
            }
            Stmt::SearchPath(_) | Stmt::CopyFrom(_) | Stmt::Other => {}
        }
        Ok(())
    }

    /// A CREATE TABLE: the relation, its partition/inheritance edges and its inline keys.
    fn add_table(
        &mut self,
        ordinal: u64,
        line: u64,
        t: &crate::parse::CreateTable,
    ) -> Result<(), DuplicateRelation> {
        let kind = match &t.kind {
            TableKind::Regular | TableKind::Typed(_) => RelKind::Table,
            TableKind::PartitionOf(p) => {
                self.partition_edges.push((p.clone(), t.name.clone()));
                RelKind::PartitionOf(p.clone())
            }
            TableKind::Foreign | TableKind::AsQuery => RelKind::Untouched,
        };
        for p in &t.inherits {
            self.inherit_edges.push((p.clone(), t.name.clone()));
        }
        for u in &t.uniques {
            self.add_unique(&t.name, u, ordinal, false, true);
        }
        let columns = self.table_columns(t);
        self.insert(Relation {
            name: t.name.clone(),
            kind,
            columns,
            inherits: t.inherits.clone(),
            partitioned: t.partitioned,
            existing: t.existing.as_ref().map(|e| e.clause.clone()),
            stmt: ordinal,
            line,
        })
    }

    /// A typed table's columns are its type's attributes (pg_dump writes the type first), so
    /// its keys are judged like any table's.
    fn table_columns(&self, t: &crate::parse::CreateTable) -> Vec<Column> {
        match &t.kind {
            TableKind::Typed(ty) if t.columns.is_empty() => ty
                .schema
                .as_ref()
                .and_then(|s| {
                    self.composites
                        .get(&QualName::new(s.clone(), ty.name.clone()))
                })
                .cloned()
                .unwrap_or_default(),
            _ => t.columns.clone(),
        }
    }

    fn add_unique(
        &mut self,
        table: &QualName,
        spec: &UniqueSpec,
        stmt: u64,
        demotable: bool,
        inline: bool,
    ) {
        self.uniques
            .entry(table.clone())
            .or_default()
            .push(UniqueObject {
                spec: spec.clone(),
                stmt,
                demotable,
                inline,
            });
    }

    /// A matview's output columns, typed where the query passes a column of the one relation it
    /// reads through unchanged (pg_dump writes them `t.a`); the others stay of unknown type.
    fn typed_matview_columns(&self, m: &crate::parse::CreateMatView) -> Vec<Column> {
        let mut columns = m.columns.clone();
        let Some((from, sources)) = &m.source else {
            return columns;
        };
        let Some(table) = self.relations.get(from) else {
            return columns;
        };
        for (col, src) in columns.iter_mut().zip(sources) {
            if let Some(src) = src {
                if let Some(tc) = table.columns.iter().find(|c| &c.name == src) {
                    col.type_ref = tc.type_ref.clone();
                }
            }
        }
        columns
    }

    fn insert(&mut self, rel: Relation) -> Result<(), DuplicateRelation> {
        if let Some(first) = self.relations.get(&rel.name) {
            return Err(DuplicateRelation {
                name: rel.name,
                line: rel.line,
                first_line: first.line,
            });
        }
        self.relations.insert(rel.name.clone(), rel);
        Ok(())
    }

    /// Count COPY rows for `table` (the terminator line excluded by the caller).
    pub fn add_rows(&mut self, table: &QualName, rows: u64) {
        *self.copy_rows.entry(table.clone()).or_default() += rows;
    }

    /// The parent a relation takes its clause from: partition parent first, else the first
    /// inheritance parent.
    pub fn parent_of(&self, child: &QualName) -> Option<&QualName> {
        self.partition_edges
            .iter()
            .find(|(_, c)| c == child)
            .or_else(|| self.inherit_edges.iter().find(|(_, c)| c == child))
            .map(|(p, _)| p)
    }

    /// The top of the partition/inheritance tree `name` belongs to.
    pub fn root_of<'a>(&'a self, name: &'a QualName) -> &'a QualName {
        let mut cur = name;
        for _ in 0..64 {
            match self.parent_of(cur) {
                Some(p) if self.relations.contains_key(p) => cur = p,
                _ => break,
            }
        }
        cur
    }
}
