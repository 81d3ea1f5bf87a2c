//! `column IN (values)` as one bound parameter, so that the statement's text does not depend
//! on how many values there are.
//!
//! diesel's `eq_any(vec)` writes one placeholder per value, and so marks its statement as unsafe
//! to cache: every search, every page of rows by id and every lookup of needs was prepared from
//! scratch, about a tenth of the server's time in a search (bench/README.md, seventh session).
//! Here the values are one parameter: a JSON array read by `json_each` on SQLite, an array
//! compared with `= ANY` on PostgreSQL. The statement is prepared once per connection and kept.
//! A single value is written `column = ?` (also one statement, kept as well): the planner then
//! knows there is one value, and, for instance, counts distinct rows in index order instead of
//! sorting them.

use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, Bool, HasSqlType, SingleValue, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, expression::is_aggregate};
use serde::Serialize;

use super::MultiBackend;

/// `column IN (values)`; build it with [`in_list`].
#[derive(Debug, Clone)]
pub struct InList<C, T> {
    column: C,
    values: Vec<T>,
    /// The values as a JSON array, for SQLite.
    json: String,
}

/// `column IN (values)` with the values bound as one parameter (see the module).
pub fn in_list<C, T>(column: C, values: Vec<T>) -> InList<C, T>
where
    T: Serialize,
{
    // A Vec of integers or strings always serializes.
    let json = serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
    InList {
        column,
        values,
        json,
    }
}

impl<C, T> Expression for InList<C, T> {
    type SqlType = Bool;
}

impl<C, T, QS> AppearsOnTable<QS> for InList<C, T>
where
    C: AppearsOnTable<QS>,
    Self: Expression,
{
}

impl<C, T, QS> SelectableExpression<QS> for InList<C, T>
where
    C: SelectableExpression<QS>,
    Self: AppearsOnTable<QS>,
{
}

impl<C, T> ValidGrouping<()> for InList<C, T> {
    type IsAggregate = is_aggregate::Never;
}

impl<C, T> QueryId for InList<C, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C, T, ST> QueryFragment<Sqlite> for InList<C, T>
where
    C: QueryFragment<Sqlite> + Expression<SqlType = ST>,
    ST: SingleValue,
    Sqlite: HasSqlType<ST>,
    T: ToSql<ST, Sqlite>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        if let [value] = self.values.as_slice() {
            out.push_sql(" = ");
            return out.push_bind_param::<ST, T>(value);
        }
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, String>(&self.json)?;
        out.push_sql("))");
        Ok(())
    }
}

impl<C, T, ST> QueryFragment<Pg> for InList<C, T>
where
    C: QueryFragment<Pg> + Expression<SqlType = ST>,
    ST: SingleValue,
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg>,
    Vec<T>: ToSql<Array<ST>, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        if let [value] = self.values.as_slice() {
            out.push_sql(" = ");
            return out.push_bind_param::<ST, T>(value);
        }
        out.push_sql(" = ANY(");
        out.push_bind_param::<Array<ST>, Vec<T>>(&self.values)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<C, T> QueryFragment<MultiBackend> for InList<C, T>
where
    Self: QueryFragment<Sqlite> + QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        MultiBackend::walk_variant_ast(self, pass)
    }
}
