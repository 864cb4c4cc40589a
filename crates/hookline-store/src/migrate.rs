//! Database creation and schema migrations.
//!
//! Migrations are the numbered files in `migrations/`, embedded in the binary.
//! They run under a Postgres advisory lock because the producer and every
//! worker migrate at start, possibly at the same moment.

use tokio_postgres::{NoTls, error::SqlState};

use crate::{PgSettings, Result};

refinery::embed_migrations!("migrations");

/// The advisory lock key that serialises migrations ("hookline" in ASCII).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6c69_6e65;

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error.message = %e, "migration connection closed");
        }
    });
    Ok(client)
}

/// Creates the database named in the settings when it does not exist yet, so
/// that a fresh machine needs no manual `createdb`.
pub async fn ensure_database(settings: &PgSettings) -> Result<()> {
    let config = settings.pg_config()?;
    match config.connect(NoTls).await {
        Ok(_) => return Ok(()),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(e.into()),
    }
    let name = settings.database_name()?;
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let client = connect(&maintenance).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        // Another service created it at the same moment: depending on timing
        // Postgres reports that as a duplicate database or as a unique
        // violation in its catalogue.
        Err(e) if matches!(e.code(), Some(c) if *c == SqlState::DUPLICATE_DATABASE || *c == SqlState::UNIQUE_VIOLATION) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs every pending migration under the advisory lock.
pub async fn run(settings: &PgSettings) -> Result<()> {
    let mut client = connect(&settings.pg_config()?).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let report = migrations::runner().set_abort_divergent(true).run_async(&mut client).await;
    // The lock is released with the session too; unlock explicitly anyway.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let report = report?;
    for migration in report.applied_migrations() {
        tracing::info!(version = migration.version(), name = migration.name(), "applied migration");
    }
    Ok(())
}
