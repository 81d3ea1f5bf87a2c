//! `+column`: the column's value, which SQLite will not use to choose an index (its documented
//! way to keep a term out of the plan's index choice). The value is the same, PostgreSQL reads
//! it as the column, and the statement stays cacheable, where diesel's `sql` literal would
//! mark it as unsafe to cache and so prepared again at every request.

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};

/// `+column`; build it with [`unindexed`].
#[derive(Debug, Clone, Copy)]
pub struct Unindexed<C>(C);

/// The column's value, kept out of SQLite's choice of an index (see the module).
pub fn unindexed<C: Expression>(column: C) -> Unindexed<C> {
    Unindexed(column)
}

impl<C: Expression> Expression for Unindexed<C> {
    type SqlType = C::SqlType;
}

impl<C, QS> AppearsOnTable<QS> for Unindexed<C>
where
    C: AppearsOnTable<QS>,
    Self: Expression,
{
}

impl<C, QS> SelectableExpression<QS> for Unindexed<C>
where
    C: SelectableExpression<QS>,
    Self: AppearsOnTable<QS>,
{
}

impl<C: ValidGrouping<()>> ValidGrouping<()> for Unindexed<C> {
    type IsAggregate = C::IsAggregate;
}

impl<C: QueryId> QueryId for Unindexed<C> {
    type QueryId = Unindexed<C::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = C::HAS_STATIC_QUERY_ID;
}

impl<C, DB> QueryFragment<DB> for Unindexed<C>
where
    DB: Backend,
    C: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("+");
        self.0.walk_ast(out.reborrow())
    }
}
