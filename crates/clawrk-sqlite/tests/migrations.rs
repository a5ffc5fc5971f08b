//! The embedded migrations on a real SQLite file: a database made by an earlier version keeps its
//! data through the rebuild into STRICT tables (world and platform balances become ledger sums),
//! and up → down → up gives the same schema.

use clawrk_sqlite::{MIGRATIONS, SqliteStore};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    sql: String,
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn schema(c: &mut SqliteConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load::<Line>(c)
    .unwrap()
    .into_iter()
    .map(|l| l.sql)
    .collect()
}

fn n(c: &mut SqliteConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<N>(c).unwrap().n
}

#[test]
fn an_earlier_database_keeps_its_data_and_becomes_strict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawrk.db");
    {
        let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        c.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
        // The schema of the two first migrations, and data written by that version.
        c.run_next_migration(MIGRATIONS).unwrap();
        c.run_next_migration(MIGRATIONS).unwrap();
        c.batch_execute(
            "INSERT INTO users VALUES ('01900000-0000-7000-8000-000000000001', 'alice', 1);
             INSERT INTO transfers VALUES ('01900000-0000-7000-8000-000000000002', 'world',
                 'wallet:01900000-0000-7000-8000-000000000001', 700, 'topup', NULL, 2);
             INSERT INTO balances VALUES ('wallet:01900000-0000-7000-8000-000000000001', 700),
                 ('world', -700);",
        )
        .unwrap();
    }
    drop(SqliteStore::open(&path).unwrap());
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    assert_eq!(n(&mut c, "SELECT COUNT(*) AS n FROM users"), 1);
    assert_eq!(
        n(&mut c, "SELECT SUM(balance_cents) AS n FROM balances"),
        700
    );
    assert_eq!(
        n(
            &mut c,
            "SELECT COUNT(*) AS n FROM balances WHERE account = 'world'"
        ),
        0
    );
    let tables = schema(&mut c);
    assert!(
        tables
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .all(|s| s.ends_with("STRICT")),
        "{tables:#?}"
    );
    assert!(
        tables
            .iter()
            .any(|s| s.contains("jobs_record_presentation"))
    );
}

#[test]
fn up_down_up_gives_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clawrk.db");
    drop(SqliteStore::open(&path).unwrap());
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    c.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
    let first = schema(&mut c);
    c.revert_all_migrations(MIGRATIONS).unwrap();
    assert!(schema(&mut c).is_empty(), "down left something behind");
    c.run_pending_migrations(MIGRATIONS).unwrap();
    assert_eq!(schema(&mut c), first);
}
