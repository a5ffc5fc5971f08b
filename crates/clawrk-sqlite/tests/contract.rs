//! The store contract suite on a real SQLite file (one fresh file per test), plus what only this
//! store does: STRICT tables, and wake-ups of its own watchers.

use async_trait::async_trait;
use clawrk_domain::ports::Store;
use clawrk_sqlite::SqliteStore;
use clawrk_store_tests::Harness;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use std::sync::Arc;

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

#[async_trait]
impl Harness for Sqlite {
    type Handle = SqliteStore;

    async fn fresh(&self) -> (Arc<dyn Store>, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        // The directory lives as long as the test process; the OS cleans /tmp.
        let path = dir.keep().join("clawrk.db");
        let store = SqliteStore::open(path).unwrap();
        (Arc::new(store.clone()), store)
    }

    async fn number(&self, store: &SqliteStore, sql: String) -> i64 {
        store
            .with_connection(move |c| sql_query(sql).get_result::<Total>(c).unwrap().n)
            .await
            .unwrap()
    }

    async fn names(&self, store: &SqliteStore, sql: String) -> Vec<String> {
        store
            .with_connection(move |c| {
                sql_query(sql)
                    .load::<Name>(c)
                    .unwrap()
                    .into_iter()
                    .map(|n| n.name)
                    .collect()
            })
            .await
            .unwrap()
    }
}

static HARNESS: Sqlite = Sqlite;

include!("../../clawrk-store-tests/src/contracts.rs");

/// The ledger's columns hold integers only: a value that is not one is refused by the table
/// instead of being stored as a REAL (which would break the sum of all balances).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_columns_hold_only_integers() {
    let f = Fixture::new(&HARNESS).await;
    let u = f.user("u", 1_000).await;
    let account = format!("wallet:{}", u.id);
    let refused =
        f.db.with_connection(move |c| {
            diesel::sql_query(format!(
                "UPDATE balances SET balance_cents = 9.5e18 * 2 WHERE account = '{account}'"
            ))
            .execute(c)
        })
        .await
        .unwrap();
    assert!(refused.is_err(), "a REAL was stored in an INTEGER column");
    assert_eq!(f.balance(u.id).await, 1_000);
    f.check(&HARNESS).await;
}

/// A commit touching a job's log wakes this store's watchers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_wake_local_watchers() {
    let f = Fixture::new(&HARNESS).await;
    let u = f.user("sender", 1_000).await;
    let job = f.job(u.id, 500).await.id;
    let watch = f.db.watch();
    f.assert_cancel_wakes(
        u.id,
        job,
        &*watch,
        "the commit did not wake the store's watcher",
    )
    .await;
}

/// Another process holding the write lock longer than the busy timeout makes a write fail as
/// unavailable (503) after that timeout, not hang; once the lock is gone, writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_file_answers_unavailable_after_the_busy_timeout() {
    use clawrk_domain::error::DomainError;
    use clawrk_domain::money::Cents;
    use diesel::connection::SimpleConnection;
    use std::time::Instant;
    let path = tempfile::tempdir().unwrap().keep().join("clawrk.db");
    let store = SqliteStore::open_with(&path, Duration::from_secs(1)).unwrap();
    let f: Fixture<Sqlite> = Fixture::on(Arc::new(store.clone()), store);
    let u = f.user("payer", 0).await;
    let mut other = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = f.market.topup(u.id, Cents(500)).await.unwrap_err();
    assert!(matches!(err, DomainError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    other.batch_execute("ROLLBACK").unwrap();
    f.market.topup(u.id, Cents(500)).await.unwrap();
    assert_eq!(f.balance(u.id).await, 500);
    f.check(&HARNESS).await;
}
