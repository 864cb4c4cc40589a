//! Database settings and pool construction.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::{Error, Result, secret::EncryptionKeys};

/// The database a service connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgSettings {
    /// `postgres://user@host:port/database`; the database is created at
    /// start when it does not exist.
    pub url: String,
    /// Maximum connections in the pool. Every in-flight delivery holds one
    /// only while it reads or records, never while it waits on HTTP.
    pub pool_size: usize,
    /// Seal the webhooks' signing tokens at rest (`HOOKLINE_ENCRYPTION_KEYS`);
    /// the first key seals, every key opens. Unset: a public development key.
    pub encryption_keys: EncryptionKeys,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/hookline".to_owned(),
            pool_size: 16,
            encryption_keys: EncryptionKeys::default(),
        }
    }
}

impl PgSettings {
    /// The parsed driver configuration.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config> {
        let mut config: tokio_postgres::Config =
            self.url.parse().map_err(|e: tokio_postgres::Error| Error::InvalidUrl(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("hookline");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        Ok(config)
    }

    /// The name of the database in the URL (`postgres` when none is given).
    pub fn database_name(&self) -> Result<String> {
        let config = self.pg_config()?;
        Ok(config
            .get_dbname()
            .map(str::to_owned)
            .or_else(|| config.get_user().map(str::to_owned))
            .unwrap_or_else(|| "postgres".to_owned()))
    }

    /// A new connection pool. Connections are opened lazily.
    pub fn pool(&self) -> Result<Pool> {
        let manager =
            Manager::from_config(self.pg_config()?, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        Ok(Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .build()?)
    }
}

impl PgSettings {
    /// Reads `HOOKLINE_DATABASE_URL` and `HOOKLINE_DATABASE_POOL_SIZE`.
    pub fn from_vars(vars: &hookline_core::config::Vars) -> Result<Self, hookline_core::config::ConfigError> {
        let default = Self::default();
        let settings = Self {
            url: vars.string("HOOKLINE_DATABASE_URL", &default.url),
            pool_size: vars.positive("HOOKLINE_DATABASE_POOL_SIZE", default.pool_size)?,
            encryption_keys: match vars.get("HOOKLINE_ENCRYPTION_KEYS") {
                Some(text) => EncryptionKeys::parse(text)
                    .map_err(|e| hookline_core::config::ConfigError::new("HOOKLINE_ENCRYPTION_KEYS", e))?,
                None => EncryptionKeys::default(),
            },
        };
        settings.pg_config().map_err(|e| hookline_core::config::ConfigError::new("HOOKLINE_DATABASE_URL", e))?;
        Ok(settings)
    }
}
