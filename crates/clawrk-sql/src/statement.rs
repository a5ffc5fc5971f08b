//! A statement assembled at run time (its number of rows varies), whose bind values render as each
//! backend's placeholders (`$n` or `?`): diesel writes the placeholders, never string formatting.

use crate::id::{DbId, Id};
use crate::{Db, MultiBackend};
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text, Untyped};

enum Part {
    Sql(&'static str),
    Id(DbId),
    BigInt(i64),
    Text(String),
}

/// SQL text interleaved with bind values.
#[derive(Default)]
pub(crate) struct Statement(Vec<Part>);

impl Statement {
    pub fn sql(mut self, s: &'static str) -> Self {
        self.0.push(Part::Sql(s));
        self
    }
    pub fn id(mut self, v: impl Into<DbId>) -> Self {
        self.0.push(Part::Id(v.into()));
        self
    }
    pub fn bigint(mut self, v: i64) -> Self {
        self.0.push(Part::BigInt(v));
        self
    }
    pub fn text(mut self, v: impl Into<String>) -> Self {
        self.0.push(Part::Text(v.into()));
        self
    }
}

impl QueryFragment<MultiBackend> for Statement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // Its text depends on its length alone (values are always binds), so diesel keeps one
        // prepared statement per length: a change writes a few lines, a verdict one per criterion.
        for p in &self.0 {
            match p {
                Part::Sql(s) => out.push_sql(s),
                Part::Id(v) => out.push_bind_param::<Id, _>(v)?,
                Part::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                Part::Text(v) => out.push_bind_param::<Text, _>(v)?,
            }
        }
        Ok(())
    }
}

impl QueryId for Statement {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement {
    type SqlType = Untyped;
}

impl diesel::RunQueryDsl<Db> for Statement {}

/// A statement kept prepared on its connection. diesel declines to cache every UPDATE, upsert
/// and SQL fragment, because some of those put values into their text; the statements wrapped
/// here never do (their text depends on their shape alone, with a handful of shapes each), so
/// PostgreSQL parses and plans each once per connection instead of on every run. A profile of a
/// job's lifecycle had parsing and planning at a fifth of the database's time.
///
/// Only the load path keeps the wrapper's word: diesel's count path (`execute`) wraps the statement
/// in a reference that asks its parts again, so wrapped writes return a column and count the rows
/// they load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared<Q>(pub Q);

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

// Keyed by its SQL text (no static id): one prepared statement per shape.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, C> diesel::RunQueryDsl<C> for Prepared<Q> {}
