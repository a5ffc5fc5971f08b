//! The one id type of the schema: `uuid` on PostgreSQL, `TEXT` on SQLite (its canonical lowercase
//! hyphenated form, which sorts like the UUID's bytes).

use crate::MultiBackend as Multi;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{HasSqlType, SqlType};
use diesel::sqlite::Sqlite;
use uuid::Uuid;

/// The SQL type of every id column.
#[derive(Clone, Copy, Debug, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Id;

/// A UUID as an [`Id`] column holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Id)]
pub struct DbId(pub Uuid);

impl<T: Into<Uuid>> From<T> for DbId {
    fn from(v: T) -> Self {
        DbId(v.into())
    }
}

impl ToSql<Id, Pg> for DbId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Id, Pg> for DbId {
    fn from_sql(v: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(v).map(DbId)
    }
}

impl ToSql<Id, Sqlite> for DbId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<Id, Sqlite> for DbId {
    fn from_sql(v: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let s = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(v)?;
        Ok(DbId(Uuid::parse_str(&s)?))
    }
}

impl HasSqlType<Id> for Multi {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        Multi::lookup_sql_type::<Id>(lookup)
    }
}

impl FromSql<Id, Multi> for DbId {
    fn from_sql(bytes: <Multi as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        bytes.from_sql::<DbId, Id>()
    }
}

impl ToSql<Id, Multi> for DbId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Multi>) -> serialize::Result {
        out.set_value((Id, self));
        Ok(IsNull::No)
    }
}
