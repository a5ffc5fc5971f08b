//! The store contract suite on a real SQLite file (one fresh file per test).

use async_trait::async_trait;
use clawrk_sqlite::SqliteStore;
use clawrk_store_tests::{Harness, Invariants, contract_tests};
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

    async fn invariants(&self, store: &SqliteStore) -> Invariants {
        store
            .with_connection(|c| Invariants {
                total: sql_query("SELECT COALESCE(SUM(balance_cents), 0) AS n FROM balances")
                    .get_result::<Total>(c)
                    .unwrap()
                    .n,
                negative: names(
                    c,
                    "SELECT account AS name FROM balances WHERE balance_cents < 0 AND account <> 'world'",
                ),
                unbalanced: names(
                    c,
                    "SELECT b.account AS name FROM balances b WHERE b.balance_cents <> \
                     COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE credit = b.account), 0) - \
                     COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE debit = b.account), 0)",
                ),
                escrow_mismatch: names(
                    c,
                    "SELECT j.id AS name FROM jobs j LEFT JOIN balances b ON b.account = 'escrow:' || j.id \
                     WHERE COALESCE(b.balance_cents, 0) <> CASE WHEN j.status IN \
                     ('queued', 'held', 'accepted', 'submitted') THEN j.price_cents ELSE 0 END",
                ),
            })
            .await
            .unwrap()
    }
    async fn rows(&self, s: &SqliteStore, table: &'static str) -> i64 {
        s.with_connection(move |c| {
            sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<Total>(c)
                .unwrap()
                .n
        })
        .await
        .unwrap()
    }
}

static HARNESS: Sqlite = Sqlite;

contract_tests!(&HARNESS);
