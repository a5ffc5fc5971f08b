//! The store contract suite on a real SQLite file (one fresh file per test).

use async_trait::async_trait;
use clawrk_sqlite::SqliteStore;
use clawrk_store_tests::{Harness, contract_tests};
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};

struct Sqlite;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn names(c: &mut SqliteConnection, sql: &str) -> Vec<String> {
    sql_query(sql)
        .load::<Name>(c)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

#[async_trait]
impl Harness for Sqlite {
    type Runner = SqliteStore;

    async fn fresh(&self) -> SqliteStore {
        let dir = tempfile::tempdir().unwrap();
        // The directory lives as long as the test process; the OS cleans /tmp.
        let path = dir.keep().join("clawrk.db");
        SqliteStore::open(path).unwrap()
    }

    async fn number(&self, store: &SqliteStore, sql: String) -> i64 {
        store
            .with_connection(move |c| sql_query(sql).get_result::<Total>(c).unwrap().n)
            .await
            .unwrap()
    }

    async fn names(&self, store: &SqliteStore, sql: String) -> Vec<String> {
        store
            .with_connection(move |c| names(c, &sql))
            .await
            .unwrap()
    }
}

static HARNESS: Sqlite = Sqlite;

contract_tests!(&HARNESS);
