//! The per-table decision (doc section 2, issue 3 "Choosing the clause"): explicit policy,
//! then the key every unique object can hold, then conflicts, then defaults. Whole partition and
//! inheritance trees are decided once, at their root.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, RelKind, Relation, UniqueObject};
use crate::clause::Clause;
use crate::names::{quote_ident, QualName};
use crate::parse::UniqueKind;
use crate::stats::TableStats;
use crate::types::is_hashable;

/// What to do for a table without unique objects and without a policy entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultRule {
    /// The first column with a hash opclass (or, with stats, the highest-cardinality one).
    FirstHashable,
    Random,
    /// Replicated when the table has fewer rows than this, else as `FirstHashable`.
    ReplicatedBelow(u64),
}

/// A `--default`, `--on-conflict` or policy-file value that names no rule; each message quotes
/// the value and lists what would do (clap prints it after "invalid value ... for '--default
/// <RULE>'", a policy file after "policy file: ").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleValueError {
    #[error("unknown default {0:?}: use first-hashable, random or replicated-below=ROWS")]
    Default(String),
    #[error("unknown conflict policy {0:?}: use fail, replicated or demote-unique")]
    OnConflict(String),
    #[error("bad distribution {0:?}: use hash(col, ...), random or replicated")]
    Distribution(String),
    #[error("bad column list in {0:?}")]
    Columns(String),
}

impl FromStr for DefaultRule {
    type Err = RuleValueError;
    fn from_str(s: &str) -> Result<Self, RuleValueError> {
        match s {
            "first-hashable" => Ok(DefaultRule::FirstHashable),
            "random" => Ok(DefaultRule::Random),
            _ => s
                .strip_prefix("replicated-below=")
                .and_then(|n| n.parse().ok())
                .map(DefaultRule::ReplicatedBelow)
                .ok_or_else(|| RuleValueError::Default(s.into())),
        }
    }
}

/// What to do when the unique objects of a table have no common hashable column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    Fail,
    Replicated,
    /// Keep the primary key (or the first unique object), turn the others into plain indexes.
    DemoteUnique,
}

impl FromStr for OnConflict {
    type Err = RuleValueError;
    fn from_str(s: &str) -> Result<Self, RuleValueError> {
        match s {
            "fail" => Ok(OnConflict::Fail),
            "replicated" => Ok(OnConflict::Replicated),
            "demote-unique" => Ok(OnConflict::DemoteUnique),
            _ => Err(RuleValueError::OnConflict(s.into())),
        }
    }
}

/// An explicit choice from a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Column names in catalog (folded) form.
    Hash(Vec<String>),
    Random,
    Replicated,
}

impl FromStr for Choice {
    type Err = RuleValueError;
    fn from_str(s: &str) -> Result<Self, RuleValueError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "random" | "randomly" => return Ok(Choice::Random),
            "replicated" => return Ok(Choice::Replicated),
            _ => {}
        }
        let inner = t
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("hash("))
            .and_then(|_| t[5..].strip_suffix(')'))
            .ok_or_else(|| RuleValueError::Distribution(s.into()))?;
        hash_columns(inner)
            .map(Choice::Hash)
            .ok_or_else(|| RuleValueError::Columns(s.into()))
    }
}

/// The column names (catalog form) of `hash(...)`'s comma-separated list, or `None` for a list
/// that is empty, ends with a comma or holds anything but names.
fn hash_columns(inner: &str) -> Option<Vec<String>> {
    let tokens = crate::lexer::tokenize(inner.as_bytes(), true).ok()?;
    let mut cols = Vec::new();
    let mut expect_name = true;
    for tk in tokens.iter().filter(|t| !t.kind.is_trivia()) {
        let bytes = &inner.as_bytes()[tk.start..tk.end];
        if expect_name {
            cols.push(crate::names::identifier(tk.kind, bytes)?);
            expect_name = false;
        } else if bytes == b"," {
            expect_name = true;
        } else {
            return None;
        }
    }
    (!cols.is_empty() && !expect_name).then_some(cols)
}

/// `--policy FILE`:
///
/// ```toml
/// [defaults]
/// default = "first-hashable"      # or "random", "replicated-below=10000"
/// on_conflict = "demote-unique"   # or "fail", "replicated"
///
/// [tables]
/// "public.orders" = "hash(customer_id, id)"
/// 'app."Weird;Name"' = "replicated"
///
/// [[patterns]]
/// match = "audit.*"
/// distribution = "random"
/// ```
#[derive(Clone, Debug, Default)]
pub struct PolicyFile {
    pub default: Option<DefaultRule>,
    pub on_conflict: Option<OnConflict>,
    pub tables: Vec<(QualName, Choice)>,
    /// Globs (`*`, `?`) over `schema.table` in catalog form, in file order.
    pub patterns: Vec<(String, Choice)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    defaults: Option<RawDefaults>,
    #[serde(default)]
    tables: toml::Table,
    #[serde(default)]
    patterns: Vec<RawPattern>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    default: Option<String>,
    on_conflict: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    #[serde(rename = "match")]
    pattern: String,
    distribution: String,
}

impl PolicyFile {
    pub fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        let bad = |m: String| PolicyError::File(m);
        let bad_value = PolicyError::Value;
        let raw: RawPolicy = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut out = PolicyFile::default();
        if let Some(d) = raw.defaults {
            out.default = d
                .default
                .map(|s| s.parse())
                .transpose()
                .map_err(bad_value)?;
            out.on_conflict = d
                .on_conflict
                .map(|s| s.parse())
                .transpose()
                .map_err(bad_value)?;
        }
        for (key, value) in raw.tables {
            let name = QualName::parse(&key, "public")
                .ok_or_else(|| bad(format!("bad table name {key:?}")))?;
            let text = value
                .as_str()
                .ok_or_else(|| bad(format!("value for {key:?} must be a string")))?;
            out.tables.push((name, text.parse().map_err(bad_value)?));
        }
        for p in raw.patterns {
            out.patterns
                .push((p.pattern, p.distribution.parse().map_err(bad_value)?));
        }
        Ok(out)
    }

    fn choice_for(&self, name: &QualName) -> Option<&Choice> {
        if let Some((_, c)) = self.tables.iter().find(|(n, _)| n == name) {
            return Some(c);
        }
        let full = format!("{}.{}", name.schema, name.name);
        self.patterns
            .iter()
            .find(|(p, _)| glob(p.as_bytes(), full.as_bytes()))
            .map(|(_, c)| c)
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Options from the command line (policy-file defaults apply where these are not given).
#[derive(Clone, Debug)]
pub struct Options {
    pub default: Option<DefaultRule>,
    pub on_conflict: Option<OnConflict>,
    /// Replace clauses the dump already has.
    pub force: bool,
}

/// Why a table got its clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Policy,
    PrimaryKey,
    Unique,
    Stats,
    Default,
    Conflict,
    /// The dump already had a clause (kept without `--force`).
    Existing,
    /// A partition or inheritance child: same clause as its root.
    Parent,
    /// Created with `PARTITION OF`: the grammar allows no clause; it inherits the parent's.
    PartitionOf,
}

/// The outcome for one relation.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub table: String,
    /// `None` for `PARTITION OF` children.
    pub clause: Option<Clause>,
    pub reason: Reason,
    pub detail: String,
    /// Unique constraints / indexes rewritten into plain indexes.
    pub demoted: Vec<String>,
    pub line: u64,
}

/// What pass 2 does to a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Add (or, with `--force`, replace) the clause of a CREATE TABLE / MATERIALIZED VIEW.
    SetClause(Clause),
    /// Rewrite a UNIQUE constraint or unique index into a plain index.
    Demote,
}

/// All decisions, and the edits keyed by statement ordinal.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    pub edits: HashMap<u64, Edit>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file: {0}")]
    File(String),
    /// Not a `source`: the message already quotes it, so anyhow's `{:#}` would say it twice.
    #[error("policy file: {0}")]
    Value(RuleValueError),
    #[error("policy file names table {0}, which the dump does not create")]
    UnknownTable(QualName),
    #[error("policy file: table {table} has no column \"{column}\"")]
    UnknownColumn { table: QualName, column: String },
    #[error("policy file: column \"{column}\" of {table} has no hash operator class ({ty}) and cannot be a distribution key")]
    Unhashable {
        table: QualName,
        column: String,
        ty: String,
    },
    #[error("policy file: column \"{column}\" of {table} is a generated column and cannot be a distribution key")]
    Generated { table: QualName, column: String },
    #[error("policy file names {child}, a partition or inheritance child; set the policy on its root {root}")]
    PolicyOnChild { child: QualName, root: QualName },
    #[error("line {line}: {table}: {detail}")]
    Conflict {
        table: QualName,
        line: u64,
        detail: String,
    },
    /// Every conflict of the dump, with the decisions made for the other relations (and one
    /// `Reason::Conflict` decision per conflict) so that a report can still be written.
    #[error("{} conflicts:\n{}", conflicts.len(), conflicts.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Conflicts {
        conflicts: Vec<PolicyError>,
        partial: Box<Plan>,
    },
}

/// Decide every relation of `catalog`.
pub fn decide(
    catalog: &Catalog,
    file: &PolicyFile,
    opts: &Options,
    stats: &HashMap<QualName, TableStats>,
) -> Result<Plan, PolicyError> {
    let ctx = Ctx {
        catalog,
        file,
        force: opts.force,
        default: opts
            .default
            .or(file.default)
            .unwrap_or(DefaultRule::FirstHashable),
        on_conflict: opts
            .on_conflict
            .or(file.on_conflict)
            .unwrap_or(OnConflict::Fail),
        stats,
    };
    ctx.validate_file()?;
    let mut children: HashMap<&QualName, Vec<&QualName>> = HashMap::new();
    for (p, c) in catalog.partition_edges.iter().chain(&catalog.inherit_edges) {
        if catalog.parent_of(c) == Some(p) {
            children.entry(p).or_default().push(c);
        }
    }
    let mut plan = Plan::default();
    let mut conflicts = Vec::new();
    for rel in catalog.relations.values() {
        if rel.kind == RelKind::Untouched || catalog.root_of(&rel.name) != &rel.name {
            continue;
        }
        let mut family = vec![rel];
        let mut seen: HashSet<&QualName> = HashSet::from([&rel.name]);
        let mut i = 0;
        while i < family.len() {
            for c in children.get(&family[i].name).into_iter().flatten() {
                if let Some(r) = catalog.relations.get(*c) {
                    if seen.insert(&r.name) {
                        family.push(r);
                    }
                }
            }
            i += 1;
        }
        // Every conflict is reported in one pass: a user fixes them all at once.
        match ctx.decide_family(&family, &mut plan) {
            Ok(()) => {}
            Err(e @ PolicyError::Conflict { .. }) => {
                plan.decisions.push(Decision {
                    table: rel.name.to_string(),
                    clause: None,
                    reason: Reason::Conflict,
                    detail: e.to_string(),
                    demoted: Vec::new(),
                    line: rel.line,
                });
                conflicts.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    if conflicts.is_empty() {
        Ok(plan)
    } else {
        Err(PolicyError::Conflicts {
            conflicts,
            partial: Box::new(plan),
        })
    }
}

struct Ctx<'a> {
    catalog: &'a Catalog,
    file: &'a PolicyFile,
    force: bool,
    default: DefaultRule,
    on_conflict: OnConflict,
    stats: &'a HashMap<QualName, TableStats>,
}

/// The clause chosen for a root, before it is applied to the family.
struct Chosen {
    clause: Clause,
    reason: Reason,
    detail: String,
    /// Statement ordinals of unique objects to demote, with their names.
    demote: Vec<(u64, String)>,
}

impl Ctx<'_> {
    fn validate_file(&self) -> Result<(), PolicyError> {
        for (name, choice) in &self.file.tables {
            let rel = self
                .catalog
                .relations
                .get(name)
                .filter(|r| r.kind != RelKind::Untouched)
                .ok_or_else(|| PolicyError::UnknownTable(name.clone()))?;
            let root = self.catalog.root_of(name);
            if root != name {
                return Err(PolicyError::PolicyOnChild {
                    child: name.clone(),
                    root: root.clone(),
                });
            }
            self.validate_choice(rel, choice)?;
        }
        for rel in self.catalog.relations.values() {
            if rel.kind == RelKind::Untouched || self.catalog.root_of(&rel.name) != &rel.name {
                continue;
            }
            if let Some(choice) = self.file.choice_for(&rel.name) {
                self.validate_choice(rel, choice)?;
            }
        }
        Ok(())
    }

    fn validate_choice(&self, rel: &Relation, choice: &Choice) -> Result<(), PolicyError> {
        let Choice::Hash(cols) = choice else {
            return Ok(());
        };
        for col in cols {
            let c = rel.columns.iter().find(|c| &c.name == col).ok_or_else(|| {
                PolicyError::UnknownColumn {
                    table: rel.name.clone(),
                    column: col.clone(),
                }
            })?;
            if c.generated {
                return Err(PolicyError::Generated {
                    table: rel.name.clone(),
                    column: col.clone(),
                });
            }
            if let Some(t) = &c.type_ref {
                if !is_hashable(t, &self.catalog.user_types) {
                    return Err(PolicyError::Unhashable {
                        table: rel.name.clone(),
                        column: col.clone(),
                        ty: t.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn uniques_of<'b>(&'b self, family: &[&Relation]) -> Vec<&'b UniqueObject> {
        let mut out: Vec<&UniqueObject> = family
            .iter()
            .flat_map(|r| self.catalog.uniques.get(&r.name).into_iter().flatten())
            .collect();
        out.sort_by_key(|u| u.stmt);
        out
    }

    /// Columns of the root usable as keys: hashable (or of unknown type, for matviews whose
    /// unique indexes vouch for them) and not generated.
    fn usable(&self, root: &Relation, col: &str, unknown_ok: bool) -> bool {
        root.columns.iter().any(|c| {
            c.name == col
                && !c.generated
                && match &c.type_ref {
                    Some(t) => is_hashable(t, &self.catalog.user_types),
                    None => unknown_ok || self.stats_hashable(root, col),
                }
        })
    }

    fn stats_hashable(&self, root: &Relation, col: &str) -> bool {
        self.stats
            .get(&root.name)
            .and_then(|s| s.columns.iter().find(|c| c.name == col))
            .and_then(|c| c.type_ref.as_ref())
            .is_some_and(|t| is_hashable(t, &self.catalog.user_types))
    }

    fn spelling(&self, root: &Relation, col: &str) -> String {
        root.columns
            .iter()
            .find(|c| c.name == col)
            .map(|c| c.spelling.clone())
            .unwrap_or_else(|| quote_ident(col))
    }

    fn hash(&self, root: &Relation, cols: &[String]) -> Clause {
        Clause::Hash(cols.iter().map(|c| self.spelling(root, c)).collect())
    }

    fn decide_family(&self, family: &[&Relation], plan: &mut Plan) -> Result<(), PolicyError> {
        let root = family[0];
        if let RelKind::PartitionOf(parent) = &root.kind {
            // Its parent is not in this dump: the grammar still allows no clause here.
            plan.decisions.push(Decision {
                table: root.name.to_string(),
                clause: None,
                reason: Reason::PartitionOf,
                detail: format!("partition of {parent} (not in this dump)"),
                demoted: Vec::new(),
                line: root.line,
            });
            return Ok(());
        }
        let single = family.len() == 1 && !root.partitioned && root.inherits.is_empty();
        let chosen = match (&root.existing, self.force) {
            (Some(existing), false) => Chosen {
                clause: existing.clone(),
                reason: Reason::Existing,
                detail: "clause already in the dump".into(),
                demote: Vec::new(),
            },
            _ => self.choose(root, family, single)?,
        };
        for (idx, rel) in family.iter().enumerate() {
            let (clause, reason, detail) = if idx == 0 {
                (
                    Some(chosen.clause.clone()),
                    chosen.reason,
                    chosen.detail.clone(),
                )
            } else if matches!(rel.kind, RelKind::PartitionOf(_)) {
                (
                    None,
                    Reason::PartitionOf,
                    format!("partition of {}", root.name),
                )
            } else if rel.existing.is_some() && !self.force {
                (
                    rel.existing.clone(),
                    Reason::Existing,
                    "clause already in the dump".into(),
                )
            } else {
                (
                    Some(chosen.clause.clone()),
                    Reason::Parent,
                    format!("same as {}", root.name),
                )
            };
            if let Some(c) = &clause {
                if rel.existing.as_ref() != Some(c) {
                    plan.edits.insert(rel.stmt, Edit::SetClause(c.clone()));
                }
            }
            plan.decisions.push(Decision {
                table: rel.name.to_string(),
                clause,
                reason,
                detail,
                demoted: if idx == 0 {
                    chosen.demote.iter().map(|(_, n)| n.clone()).collect()
                } else {
                    Vec::new()
                },
                line: rel.line,
            });
        }
        for (stmt, _) in &chosen.demote {
            plan.edits.insert(*stmt, Edit::Demote);
        }
        Ok(())
    }

    /// A table's clause: the policy file's entry when it has one, else the key common to its
    /// primary and unique keys, else the defaults (first hashable column or RANDOMLY).
    fn choose(
        &self,
        root: &Relation,
        family: &[&Relation],
        single: bool,
    ) -> Result<Chosen, PolicyError> {
        let uniques = self.uniques_of(family);
        if let Some(choice) = self.file.choice_for(&root.name) {
            return self.by_policy_file(root, choice, &uniques, single);
        }
        if !uniques.is_empty() {
            return self.by_unique_keys(root, &uniques, single);
        }
        self.default_choice(root, family, single)
    }

    /// The policy file's clause; a unique key it does not hold is a conflict, or demoted to a
    /// plain index with `--on-conflict demote-unique`.
    fn by_policy_file(
        &self,
        root: &Relation,
        choice: &Choice,
        uniques: &[&UniqueObject],
        single: bool,
    ) -> Result<Chosen, PolicyError> {
        let (clause, key) = match choice {
            Choice::Hash(cols) => (self.hash(root, cols), cols.clone()),
            Choice::Random => (Clause::Random, Vec::new()),
            Choice::Replicated if !single => {
                return Err(conflict(root,
                    "policy says replicated, but partitioned or inheritance tables cannot be replicated".into(),
                ))
            }
            Choice::Replicated => (Clause::Replicated, Vec::new()),
        };
        let mut demote = Vec::new();
        if *choice != Choice::Replicated {
            for u in uniques.iter().filter(|u| !holds(u, &key)) {
                if self.on_conflict != OnConflict::DemoteUnique {
                    return Err(conflict(root, format!(
                        "policy clause {clause} is incompatible with {} (use --on-conflict demote-unique or change the policy)",
                        describe(u)
                    )));
                }
                demote.push(self.demotable(root, u)?);
            }
        }
        Ok(Chosen {
            clause,
            reason: Reason::Policy,
            detail: "policy file".into(),
            demote,
        })
    }

    /// The hashable columns common to every unique key, in the primary key's order (or the
    /// first key's); when there are none, `--on-conflict` decides.
    fn by_unique_keys(
        &self,
        root: &Relation,
        uniques: &[&UniqueObject],
        single: bool,
    ) -> Result<Chosen, PolicyError> {
        let unknown_ok = root.kind == RelKind::MatView;
        let pk = uniques
            .iter()
            .find(|u| u.spec.kind == UniqueKind::PrimaryKey && is_root(u, root, self.catalog));
        let order_src = pk.copied().unwrap_or(uniques[0]);
        let key: Vec<String> = order_src
            .spec
            .columns
            .iter()
            .flatten()
            .filter(|c| {
                uniques
                    .iter()
                    .all(|u| u.spec.columns.iter().flatten().any(|x| x == *c))
            })
            .filter(|c| self.usable(root, c, unknown_ok))
            .cloned()
            .collect();
        if key.is_empty() {
            return self.on_key_conflict(root, uniques, order_src, single);
        }
        let reason = if order_src.spec.kind == UniqueKind::PrimaryKey {
            Reason::PrimaryKey
        } else {
            Reason::Unique
        };
        Ok(Chosen {
            clause: self.hash(root, &key),
            reason,
            detail: format!("common key of {}", names(uniques)),
            demote: Vec::new(),
        })
    }

    /// No column common to every unique key: fail, replicate, or keep `keeper` and demote the
    /// keys it does not hold, as `--on-conflict` says.
    fn on_key_conflict(
        &self,
        root: &Relation,
        uniques: &[&UniqueObject],
        keeper: &UniqueObject,
        single: bool,
    ) -> Result<Chosen, PolicyError> {
        let what = format!("no hashable column is common to {}", names(uniques));
        match self.on_conflict {
            OnConflict::Fail => Err(conflict(
                root,
                format!("{what} (use --on-conflict replicated|demote-unique or a policy entry)"),
            )),
            OnConflict::Replicated if !single => Err(conflict(
                root,
                format!("{what}, and partitioned or inheritance tables cannot be replicated"),
            )),
            OnConflict::Replicated => Ok(Chosen {
                clause: Clause::Replicated,
                reason: Reason::Conflict,
                detail: format!("{what}; replicated keeps every constraint"),
                demote: Vec::new(),
            }),
            OnConflict::DemoteUnique => {
                let unknown_ok = root.kind == RelKind::MatView;
                let key: Vec<String> = keeper
                    .spec
                    .columns
                    .iter()
                    .flatten()
                    .filter(|c| self.usable(root, c, unknown_ok))
                    .cloned()
                    .collect();
                if key.is_empty() {
                    return Err(conflict(
                        root,
                        format!(
                            "{what}, and {} has no hashable column to keep",
                            describe(keeper)
                        ),
                    ));
                }
                let mut demote = Vec::new();
                for u in uniques.iter().filter(|u| !holds(u, &key)) {
                    demote.push(self.demotable(root, u)?);
                }
                Ok(Chosen {
                    clause: self.hash(root, &key),
                    reason: Reason::Conflict,
                    detail: format!(
                        "{what}; kept {}, demoted the others to plain indexes",
                        describe(keeper)
                    ),
                    demote,
                })
            }
        }
    }

    fn demotable(&self, root: &Relation, u: &UniqueObject) -> Result<(u64, String), PolicyError> {
        if u.demotable {
            return Ok((u.stmt, u.spec.name.clone().unwrap_or_default()));
        }
        Err(PolicyError::Conflict {
            table: root.name.clone(),
            line: root.line,
            detail: format!(
                "{} conflicts with the key and cannot be demoted to a plain index",
                describe(u)
            ),
        })
    }

    fn default_choice(
        &self,
        root: &Relation,
        family: &[&Relation],
        single: bool,
    ) -> Result<Chosen, PolicyError> {
        let stats = self.stats.get(&root.name);
        let rows = stats.map(|s| s.rows).or_else(|| {
            let counted: Vec<u64> = family
                .iter()
                .filter_map(|r| self.catalog.copy_rows.get(&r.name).copied())
                .collect();
            (!counted.is_empty()).then(|| counted.iter().sum::<u64>() as f64)
        });
        let chosen = |clause, reason, detail: String| Chosen {
            clause,
            reason,
            detail,
            demote: Vec::new(),
        };
        match self.default {
            DefaultRule::Random => {
                return Ok(chosen(
                    Clause::Random,
                    Reason::Default,
                    "default random".into(),
                ))
            }
            DefaultRule::ReplicatedBelow(limit) => {
                if let Some(r) = rows {
                    if r < limit as f64 && single {
                        let reason = if stats.is_some() {
                            Reason::Stats
                        } else {
                            Reason::Default
                        };
                        return Ok(chosen(
                            Clause::Replicated,
                            reason,
                            format!("about {r:.0} rows, below {limit}"),
                        ));
                    }
                }
            }
            DefaultRule::FirstHashable => {}
        }
        if let Some(s) = stats {
            let best = s
                .columns
                .iter()
                .filter(|c| self.usable(root, &c.name, false))
                .map(|c| (c, c.distinct(s.rows) * (1.0 - c.null_frac)))
                .filter(|(_, score)| *score > 1.0)
                .fold(
                    None::<(&crate::stats::ColumnStat, f64)>,
                    |best, cur| match best {
                        Some(b) if b.1 >= cur.1 => Some(b),
                        _ => Some(cur),
                    },
                );
            if let Some((c, score)) = best {
                return Ok(chosen(
                    self.hash(root, std::slice::from_ref(&c.name)),
                    Reason::Stats,
                    format!("highest estimated distinct non-null values ({score:.0})"),
                ));
            }
        }
        match root
            .columns
            .iter()
            .find(|c| self.usable(root, &c.name, false))
        {
            Some(c) => Ok(chosen(
                self.hash(root, std::slice::from_ref(&c.name)),
                Reason::Default,
                "first hashable column".into(),
            )),
            None => Ok(chosen(
                Clause::Random,
                Reason::Default,
                "no column with a known hash operator class".into(),
            )),
        }
    }
}

fn is_root(u: &UniqueObject, root: &Relation, catalog: &Catalog) -> bool {
    catalog
        .uniques
        .get(&root.name)
        .is_some_and(|v| v.iter().any(|x| x.stmt == u.stmt))
}

/// Does the unique object contain every key column?
/// A table's distribution cannot be chosen: the statement's table and line, and why.
fn conflict(root: &Relation, detail: String) -> PolicyError {
    PolicyError::Conflict {
        table: root.name.clone(),
        line: root.line,
        detail,
    }
}

fn holds(u: &UniqueObject, key: &[String]) -> bool {
    !key.is_empty()
        && key
            .iter()
            .all(|k| u.spec.columns.iter().flatten().any(|c| c == k))
}

fn describe(u: &UniqueObject) -> String {
    let kind = match u.spec.kind {
        UniqueKind::PrimaryKey => "primary key",
        UniqueKind::Unique => "unique constraint",
        UniqueKind::Exclude => "exclusion constraint",
        UniqueKind::UniqueIndex => "unique index",
    };
    match &u.spec.name {
        Some(n) => format!("{kind} {n}"),
        None => kind.to_string(),
    }
}

fn names(uniques: &[&UniqueObject]) -> String {
    uniques
        .iter()
        .map(|u| describe(u))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts per reason, for the report.
pub fn counts(decisions: &[Decision]) -> BTreeMap<Reason, usize> {
    let mut m = BTreeMap::new();
    for d in decisions {
        *m.entry(d.reason).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_values_parse_or_say_what_would() {
        assert_eq!(
            "replicated-below=10".parse(),
            Ok(DefaultRule::ReplicatedBelow(10))
        );
        assert_eq!("demote-unique".parse(), Ok(OnConflict::DemoteUnique));
        let hash = Choice::Hash(vec!["a".into(), "B".into()]);
        assert_eq!(r#" HASH(a, "B") "#.parse(), Ok(hash));
        assert_eq!(
            "nope".parse::<DefaultRule>().unwrap_err().to_string(),
            "unknown default \"nope\": use first-hashable, random or replicated-below=ROWS"
        );
        assert_eq!(
            "x".parse::<OnConflict>().unwrap_err().to_string(),
            "unknown conflict policy \"x\": use fail, replicated or demote-unique"
        );
        assert_eq!(
            "hash(a".parse::<Choice>().unwrap_err().to_string(),
            "bad distribution \"hash(a\": use hash(col, ...), random or replicated"
        );
        for bad in ["hash()", "hash(a,)", "hash(a b)", "hash(\"a)"] {
            let e = bad.parse::<Choice>().unwrap_err();
            assert_eq!(e.to_string(), format!("bad column list in {bad:?}"));
        }
    }
}
