//! Roles and permissions: RBAC as data.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{permissions, role_permissions, roles, user_roles};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = roles)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Its holders must have a second factor ([`crate::totp`]).
    pub require_totp: bool,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = permissions)]
pub struct Permission {
    pub id: i64,
    pub name: String,
    pub description: String,
}

pub fn list_permissions(conn: &mut DbConn) -> QueryResult<Vec<Permission>> {
    permissions::table
        .select(Permission::as_select())
        .order(permissions::name.asc())
        .load(conn)
}

pub fn list_roles(conn: &mut DbConn) -> QueryResult<Vec<Role>> {
    roles::table
        .select(Role::as_select())
        .order(roles::name.asc())
        .load(conn)
}

pub fn find_role(conn: &mut DbConn, id: i64) -> QueryResult<Role> {
    roles::table.find(id).select(Role::as_select()).first(conn)
}

/// `(role id, permission name)` for every role.
pub fn role_permission_names(conn: &mut DbConn) -> QueryResult<Vec<(i64, String)>> {
    role_permissions::table
        .inner_join(permissions::table)
        .select((role_permissions::role_id, permissions::name))
        .order(permissions::name.asc())
        .load(conn)
}

/// Role ids for the given names; names that do not exist are simply absent.
pub fn role_ids_by_name(conn: &mut DbConn, names: &[String]) -> QueryResult<Vec<(i64, String)>> {
    roles::table
        .filter(roles::name.eq_any(names))
        .select((roles::id, roles::name))
        .load(conn)
}

/// Permission ids for the given names.
pub fn permission_ids_by_name(
    conn: &mut DbConn,
    names: &[String],
) -> QueryResult<Vec<(i64, String)>> {
    permissions::table
        .filter(permissions::name.eq_any(names))
        .select((permissions::id, permissions::name))
        .load(conn)
}

pub fn insert_role(conn: &mut DbConn, name: &str, description: &str) -> QueryResult<i64> {
    diesel::insert_into(roles::table)
        .values((roles::name.eq(name), roles::description.eq(description)))
        .returning(roles::id)
        .get_result(conn)
}

pub fn insert_permission(conn: &mut DbConn, name: &str, description: &str) -> QueryResult<i64> {
    diesel::insert_into(permissions::table)
        .values((
            permissions::name.eq(name),
            permissions::description.eq(description),
        ))
        .returning(permissions::id)
        .get_result(conn)
}

pub fn set_role_require_totp(conn: &mut DbConn, id: i64, require: bool) -> QueryResult<usize> {
    diesel::update(roles::table.find(id))
        .set(roles::require_totp.eq(require))
        .execute(conn)
}

pub fn update_role_description(
    conn: &mut DbConn,
    id: i64,
    description: &str,
) -> QueryResult<usize> {
    diesel::update(roles::table.find(id))
        .set(roles::description.eq(description))
        .execute(conn)
}

/// Replaces a role's permissions.
pub fn set_role_permissions(
    conn: &mut DbConn,
    role_id: i64,
    permission_ids: &[i64],
) -> QueryResult<()> {
    diesel::delete(role_permissions::table.filter(role_permissions::role_id.eq(role_id)))
        .execute(conn)?;
    for permission_id in permission_ids {
        diesel::insert_into(role_permissions::table)
            .values((
                role_permissions::role_id.eq(role_id),
                role_permissions::permission_id.eq(permission_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn role_user_count(conn: &mut DbConn, role_id: i64) -> QueryResult<i64> {
    user_roles::table
        .filter(user_roles::role_id.eq(role_id))
        .count()
        .get_result(conn)
}

pub fn delete_role(conn: &mut DbConn, role_id: i64) -> QueryResult<usize> {
    diesel::delete(role_permissions::table.filter(role_permissions::role_id.eq(role_id)))
        .execute(conn)?;
    diesel::delete(roles::table.find(role_id)).execute(conn)
}
