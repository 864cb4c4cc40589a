//! The store's error type.

/// Everything that can go wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be taken from the pool.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The pool could not be built from the settings.
    #[error("database pool configuration: {0}")]
    PoolConfig(#[from] deadpool_postgres::BuildError),
    /// A query or the connection failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(#[from] refinery::Error),
    /// The connection URL is not valid.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A token is sealed under a key that is not configured.
    #[error("a webhook token is sealed under encryption key `{0}`, which HOOKLINE_ENCRYPTION_KEYS does not list")]
    UnknownEncryptionKey(String),
    /// Sealing a token failed.
    #[error("encryption: {0}")]
    Crypto(&'static str),
    /// A row holds a value the domain types reject.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table the row came from.
        table: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when trying again later may succeed (the database is unreachable
    /// or restarting, a serialization conflict), false when it will not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Db(e) => {
                if e.is_closed() {
                    return true;
                }
                match e.code() {
                    // No SQLSTATE: the connection itself failed.
                    None => true,
                    Some(code) => {
                        let class = &code.code()[..2];
                        // 08 connection exception, 40 transaction rollback,
                        // 53 insufficient resources, 57 operator intervention.
                        matches!(class, "08" | "40" | "53" | "57")
                    }
                }
            }
            Self::PoolConfig(_)
            | Self::Migration(_)
            | Self::InvalidUrl(_)
            | Self::Corrupt { .. }
            | Self::UnknownEncryptionKey(_)
            | Self::Crypto(_) => false,
        }
    }

    /// True for a deadlock or serialization failure: the transaction was
    /// rolled back and may simply be run again.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Db(e) => e.code().is_some_and(|c| matches!(c.code(), "40P01" | "40001")),
            _ => false,
        }
    }

    /// A batch write that returned no result for one of its items.
    pub fn corrupt_batch(detail: impl std::fmt::Display) -> Self {
        Self::corrupt("batch", detail)
    }

    /// A stored event body that is not JSON (it always is when written).
    pub fn corrupt_body(delivery: impl std::fmt::Display) -> Self {
        Self::corrupt("events", format!("the body of delivery {delivery}'s event is not JSON"))
    }

    pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt { table, detail: detail.to_string() }
    }
}
