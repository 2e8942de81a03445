//! Statements written once for both connections of a SQLite file (sqlx's
//! and the inline one, see `inline`) and for PostgreSQL: the values a
//! statement binds ([`Value`], for its `$n` placeholders) and the columns of
//! a result row ([`Columns`]), whichever driver produced it.

use rusqlite::types::{ToSql, ToSqlOutput};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::StoreError;

/// A value bound to the `$n` placeholder of a statement (`values[n - 1]`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Value<'a> {
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// A 64-bit integer.
    Int(i64),
    /// A boolean (an integer in SQLite).
    Bool(bool),
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Value::Text(s) => s.to_sql(),
            Value::OptText(s) => s.to_sql(),
            Value::Int(i) => i.to_sql(),
            Value::Bool(b) => b.to_sql(),
        }
    }
}

/// Binds `values` to sqlx's `query`, `$1` first.
pub(super) fn bind_values<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    values: &[Value<'q>],
) -> Query<'q, Any, AnyArguments<'q>> {
    for value in values {
        query = match *value {
            Value::Text(s) => query.bind(s),
            Value::OptText(s) => query.bind(s),
            Value::Int(i) => query.bind(i),
            Value::Bool(b) => query.bind(b),
        };
    }
    query
}

/// The columns of one result row, by position.
pub(super) trait Columns {
    /// An integer column.
    fn int(&self, index: usize) -> Result<i64, StoreError>;
    /// A text column.
    fn text(&self, index: usize) -> Result<String, StoreError>;
    /// A text column that may be NULL.
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError>;
}

impl Columns for AnyRow {
    fn int(&self, index: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(index)?)
    }

    fn text(&self, index: usize) -> Result<String, StoreError> {
        Ok(self.try_get(index)?)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(index)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, index: usize) -> Result<i64, StoreError> {
        self.get(index).map_err(column_error)
    }

    fn text(&self, index: usize) -> Result<String, StoreError> {
        self.get(index).map_err(column_error)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        self.get(index).map_err(column_error)
    }
}

fn column_error(e: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Decodes one result row.
pub(super) type Decode<T> = fn(&dyn Columns) -> Result<T, StoreError>;
