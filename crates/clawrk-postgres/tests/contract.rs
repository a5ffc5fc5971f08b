//! The store contract suite on a real PostgreSQL server (one fresh database per test), plus what
//! only this store does: wake-ups across instances.

use async_trait::async_trait;
use clawrk_domain::ports::Store;
use clawrk_postgres::PgStore;
use clawrk_postgres::testing::TestDatabase;
use clawrk_store_tests::Harness;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use std::sync::Arc;

struct Postgres;

/// The store with the database it lives in (dropped with the last clone).
#[derive(Clone)]
struct Handle {
    store: PgStore,
    url: String,
    _db: Arc<TestDatabase>,
}

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
impl Harness for Postgres {
    type Handle = Handle;

    async fn fresh(&self) -> (Arc<dyn Store>, Handle) {
        let db = tokio::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
        let store = PgStore::connect(&db.url, 16).unwrap();
        let handle = Handle {
            store: store.clone(),
            url: db.url.clone(),
            _db: Arc::new(db),
        };
        (Arc::new(store), handle)
    }

    async fn number(&self, h: &Handle, sql: String) -> i64 {
        h.store
            .with_connection(move |c| sql_query(sql).get_result::<Total>(c).unwrap().n)
            .await
            .unwrap()
    }

    async fn names(&self, h: &Handle, sql: String) -> Vec<String> {
        h.store
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

static HARNESS: Postgres = Postgres;

include!("../../clawrk-store-tests/src/contracts.rs");

/// A log line written through one instance wakes a watcher of another instance on the same
/// database (LISTEN/NOTIFY), long before the watcher's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_reach_other_instances() {
    let f = Fixture::new(&HARNESS).await;
    let u = f.user("sender", 1_000).await;
    let job = f.job(u.id, 500).await.id;
    // A second instance: its own pool and listener on the same database.
    let other = PgStore::connect(&f.db.url, 2).unwrap();
    let watch = other.watch();
    // Let the listener connect and LISTEN.
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.assert_cancel_wakes(
        u.id,
        job,
        &*watch,
        "the watcher was not woken by the notification",
    )
    .await;
    other.shutdown();
}

/// A log line written through an instance wakes that instance's own watchers after the commit,
/// without its listener: here the listener is stopped before the change, so no notification can
/// reach the watcher, and it must still wake long before its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_wake_this_instance_without_the_listener() {
    let f = Fixture::new(&HARNESS).await;
    let u = f.user("sender", 1_000).await;
    let job = f.job(u.id, 500).await.id;
    let watch = f.db.store.watch();
    watch.stop();
    f.assert_cancel_wakes(
        u.id,
        job,
        &*watch,
        "the change did not wake this instance's watcher",
    )
    .await;
}
