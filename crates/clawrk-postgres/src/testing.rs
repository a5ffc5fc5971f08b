//! Test support: a fresh PostgreSQL database per test, cloned from a template that is migrated once
//! per test process, and dropped when the test ends.
//!
//! The server is `TEST_DATABASE_URL` (default `postgres://postgres@localhost:5432/postgres`). When it
//! cannot be reached, [`TestDatabase::create`] fails with a message that says how to start it:
//! tests never skip silently.

use crate::MIGRATIONS;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use std::sync::OnceLock;

/// The default test server.
pub const DEFAULT_URL: &str = "postgres://postgres@localhost:5432/postgres";
const TEMPLATE: &str = "clawrk_test_template";
/// Serializes template upkeep and cloning across test processes.
const TEMPLATE_LOCK: i64 = 0x636c_6177_7274; // "clawrt"

/// A database that exists for as long as this value.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
    admin_url: String,
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

fn connect(url: &str) -> Result<PgConnection, String> {
    PgConnection::establish(url).map_err(|e| {
        format!(
            "PostgreSQL is needed by this test and is not reachable at {url}: {e}\n\
             Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) \
             or point TEST_DATABASE_URL at a server where the user may create databases."
        )
    })
}

static TEMPLATE_READY: OnceLock<Result<(), String>> = OnceLock::new();

impl TestDatabase {
    /// A new, migrated, empty database.
    pub fn create() -> Result<TestDatabase, String> {
        let admin_url = admin_url();
        let mut admin = connect(&admin_url)?;
        let sql =
            |c: &mut PgConnection, s: &str| c.batch_execute(s).map_err(|e| format!("{s}: {e}"));
        sql(
            &mut admin,
            &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"),
        )?;
        let result = (|| -> Result<String, String> {
            TEMPLATE_READY
                .get_or_init(|| {
                    #[derive(QueryableByName)]
                    struct Exists {
                        #[diesel(sql_type = diesel::sql_types::BigInt)]
                        n: i64,
                    }
                    let exists = diesel::sql_query(format!(
                        "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{TEMPLATE}'"
                    ))
                    .get_result::<Exists>(&mut admin)
                    .map_err(|e| e.to_string())?;
                    if exists.n == 0 {
                        sql(&mut admin, &format!("CREATE DATABASE {TEMPLATE}"))?;
                    }
                    let mut tpl = connect(&with_database(&admin_url, TEMPLATE))?;
                    tpl.run_pending_migrations(MIGRATIONS)
                        .map_err(|e| format!("migrating the test template: {e}"))?;
                    Ok(())
                })
                .clone()?;
            let name = format!("clawrk_test_{}", uuid::Uuid::now_v7().simple());
            sql(
                &mut admin,
                &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"),
            )?;
            Ok(name)
        })();
        sql(
            &mut admin,
            &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"),
        )?;
        let name = result?;
        Ok(TestDatabase {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
