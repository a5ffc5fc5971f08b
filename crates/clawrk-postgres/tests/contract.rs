//! The store contract suite on a real PostgreSQL server (one fresh database per test).

use async_trait::async_trait;
use clawrk_domain::ports::{TxFn, TxRunner};
use clawrk_postgres::PgStore;
use clawrk_postgres::testing::TestDatabase;
use clawrk_store_tests::{Harness, contract_tests};
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use std::sync::Arc;

struct Postgres;

/// The store with the database it lives in (dropped with the last clone).
#[derive(Clone)]
struct TestStore {
    store: PgStore,
    url: String,
    _db: Arc<TestDatabase>,
}

#[async_trait]
impl TxRunner for TestStore {
    async fn run<T: Send + 'static>(&self, f: TxFn<T>) -> clawrk_domain::error::Result<T> {
        self.store.run(f).await
    }
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

fn names(c: &mut PgConnection, sql: &str) -> Vec<String> {
    sql_query(sql)
        .load::<Name>(c)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

#[async_trait]
impl Harness for Postgres {
    type Runner = TestStore;

    async fn fresh(&self) -> TestStore {
        let db = tokio::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
        let store = PgStore::connect(&db.url, 16).unwrap();
        TestStore {
            store,
            url: db.url.clone(),
            _db: Arc::new(db),
        }
    }

    async fn number(&self, s: &TestStore, sql: String) -> i64 {
        s.store
            .with_connection(move |c| sql_query(sql).get_result::<Total>(c).unwrap().n)
            .await
            .unwrap()
    }

    async fn names(&self, s: &TestStore, sql: String) -> Vec<String> {
        s.store
            .with_connection(move |c| names(c, &sql))
            .await
            .unwrap()
    }
}

static HARNESS: Postgres = Postgres;

contract_tests!(&HARNESS);

/// A log line appended through one instance wakes a watcher of another instance on the same
/// database (LISTEN/NOTIFY), long before the watcher's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_reach_other_instances() {
    use clawrk_domain::job::LogLevel;
    use clawrk_domain::ports::{LogWatch, Store};
    use clawrk_store_tests::Fixture;
    use std::time::{Duration, Instant};
    let f = Fixture::new(&HARNESS).await;
    let u = f.user("sender", 1_000).await;
    let job = f.job(u.id, 500).await.id;
    // A second instance: its own pool and listener on the same database.
    let other = PgStore::connect(&f.store.runner().url, 2).unwrap();
    let watch = other.watch();
    // Let the listener connect and LISTEN.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let waiter = tokio::spawn(async move { watch.wait(job, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.store
        .append_log(job, LogLevel::Info, "hello".into(), f.now())
        .await
        .unwrap();
    waiter.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the watcher was not woken by the notification"
    );
}
