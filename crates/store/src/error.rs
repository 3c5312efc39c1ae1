use std::fmt;

/// What can go wrong in the store, in terms the layers above can act on.
#[derive(thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique key is taken. `existing_id` names the row that holds it, where known.
    #[error("`{field}` is already taken")]
    Conflict {
        field: String,
        existing_id: Option<String>,
    },
    /// The row is referred to by others (messages, conversations) and cannot be deleted.
    #[error("still in use by other records")]
    InUse,
    /// A referenced row (a sender, a user) does not exist.
    #[error("`{field}` refers to {id}, which does not exist")]
    MissingReference { field: String, id: String },
    #[error("configuration: {0}")]
    Config(String),
    /// A stored value could not be read back into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A write batched with others failed; each writer in the batch hears why.
    #[error("a batched write failed: {0}")]
    Batch(String),
    /// A file beside the database (media) could not be written or read.
    #[error("file system")]
    Io(#[source] std::io::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl fmt::Debug for StoreError {
    // Debug prints the whole cause chain, so a logged error says why at every level.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            writeln!(f, "  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(db) = error.as_database_error() {
            if db.is_unique_violation() {
                return StoreError::Conflict {
                    field: unique_field(db.constraint(), db.message()),
                    existing_id: None,
                };
            }
            if db.is_foreign_key_violation() {
                return StoreError::InUse;
            }
        }
        match error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            other => StoreError::Database(other),
        }
    }
}

/// The column a unique violation is about. PostgreSQL names the index (`ux_contacts__phone`);
/// SQLite writes `UNIQUE constraint failed: contacts.phone`. Our unique indexes are named
/// `ux_<table>__<field>` so both lead to the same field.
fn unique_field(constraint: Option<&str>, message: &str) -> String {
    if let Some(name) = constraint {
        if let Some((_, field)) = name.split_once("__") {
            return field.to_owned();
        }
        return name.to_owned();
    }
    message
        .rsplit(['.', ' '])
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::unique_field;

    #[test]
    fn unique_violations_name_the_field_on_both_backends() {
        assert_eq!(unique_field(Some("ux_contacts__phone"), ""), "phone");
        assert_eq!(
            unique_field(None, "UNIQUE constraint failed: contacts.phone"),
            "phone"
        );
        assert_eq!(
            unique_field(
                None,
                "UNIQUE constraint failed: senders.provider_kind, senders.external_id"
            ),
            "external_id"
        );
    }
}
