//! The embedded migrations on a real server: up → down → up gives the same schema, and several
//! instances migrating at once (under the advisory lock) all succeed.

use clawrk_postgres::testing::TestDatabase;
use clawrk_postgres::{MIGRATIONS, migrate};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Tables, columns, constraints and indexes of the public schema, as sorted text.
fn schema(c: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
             || ' ' || COALESCE(column_default, '') AS line \
         FROM information_schema.columns WHERE table_schema = 'public' \
           AND table_name <> '__diesel_schema_migrations' \
         UNION ALL \
         SELECT 'constraint ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
           AND conrelid::regclass::text <> '__diesel_schema_migrations' \
         UNION ALL \
         SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
           AND tablename <> '__diesel_schema_migrations' \
         ORDER BY 1",
    )
    .load::<Line>(c)
    .unwrap()
    .into_iter()
    .map(|l| l.line)
    .collect()
}

#[test]
fn up_down_up_gives_the_same_schema() {
    let db = TestDatabase::create().unwrap_or_else(|e| panic!("{e}"));
    let mut c = PgConnection::establish(&db.url).unwrap();
    let first = schema(&mut c);
    assert!(
        first
            .iter()
            .any(|l| l.starts_with("index CREATE INDEX jobs_queued"))
    );
    assert!(first.iter().any(|l| l.contains("balance_cents >= 0")));
    c.revert_all_migrations(MIGRATIONS).unwrap();
    assert!(schema(&mut c).is_empty(), "down left something behind");
    c.run_pending_migrations(MIGRATIONS).unwrap();
    assert_eq!(schema(&mut c), first);
}

#[test]
fn concurrent_instances_migrate_once() {
    let db = TestDatabase::create().unwrap_or_else(|e| panic!("{e}"));
    let mut c = PgConnection::establish(&db.url).unwrap();
    let expected = schema(&mut c);
    c.revert_all_migrations(MIGRATIONS).unwrap();
    drop(c);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || migrate(&url))
        })
        .collect();
    let ran: usize = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .sum();
    // Every migration of `migrations/postgres` runs exactly once across the instances.
    let all = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(ran, all);
    let mut c = PgConnection::establish(&db.url).unwrap();
    assert_eq!(schema(&mut c), expected);
}
