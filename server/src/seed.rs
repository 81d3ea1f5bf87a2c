//! First-run seeding: permissions, the three built-in roles, the reference books
//! (`server/seed/*.csv`) and the first administrator. Runs in one transaction and only once.

use diesel::prelude::*;
use serde::de::DeserializeOwned;

use crate::auth::Permission;
use crate::db::DbConn;
use crate::db::models::{self, audit, rbac, refs, users};
use crate::db::schema::settings;

const SEEDED_FLAG: &str = "seeded_v1";

/// The built-in roles and their permissions.
pub const ROLES: [(&str, &str, &[Permission]); 3] = [
    ("admin", "Administrator: everything", &Permission::ALL),
    (
        "user",
        "Clinician: patients, medical records, reports of the own institution",
        &[
            Permission::Patients,
            Permission::MedicalRecords,
            Permission::Reporting,
        ],
    ),
    (
        "ministry",
        "Ministry analyst: summary reports across institutions",
        &[Permission::SummaryReporting],
    ),
];

/// What seeding did, for the start-up message.
#[derive(Debug, Default)]
pub struct Seeded {
    pub reference_rows: usize,
    /// The first administrator's password when it was generated (print it once).
    pub generated_admin_password: Option<String>,
    pub admin_created: bool,
}

fn rows<T: DeserializeOwned>(book: &str, data: &str) -> anyhow::Result<Vec<T>> {
    csv::Reader::from_reader(data.as_bytes())
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| anyhow::anyhow!("seed file {book}: {e}"))
}

macro_rules! seed_book {
    ($conn:expr, $count:expr, $module:ident, $input:ty, $file:literal) => {{
        let entries: Vec<$input> = rows($file, include_str!(concat!("../seed/", $file)))?;
        for entry in &entries {
            refs::$module::insert($conn, entry)?;
        }
        $count += entries.len();
    }};
}

/// Seeds an empty database; does nothing on one already seeded.
pub fn run(conn: &mut DbConn, admin_password: Option<&str>) -> anyhow::Result<Seeded> {
    conn.transaction(|conn| {
        let mut seeded = Seeded::default();
        let done: Option<String> = settings::table
            .filter(settings::name.eq(SEEDED_FLAG))
            .select(settings::value)
            .first(conn)
            .optional()?;
        if done.is_none() {
            let place = audit::reserve(conn)?;
            for p in Permission::ALL {
                rbac::insert_permission(conn, p.as_str(), p.description())?;
            }
            for (name, description, permissions) in ROLES {
                let id = rbac::insert_role(conn, name, description)?;
                let names: Vec<String> = permissions.iter().map(|p| p.as_str().into()).collect();
                let ids: Vec<i64> = rbac::permission_ids_by_name(conn, &names)?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                rbac::set_role_permissions(conn, id, &ids)?;
            }
            let mut count = 0;
            seed_book!(conn, count, district, refs::DistrictInput, "districts.csv");
            seed_book!(
                conn,
                count,
                diagnosis,
                refs::DiagnosisInput,
                "diagnoses.csv"
            );
            seed_book!(
                conn,
                count,
                medicament,
                refs::MedicamentInput,
                "medicaments.csv"
            );
            seed_book!(
                conn,
                count,
                care_form,
                refs::CareFormInput,
                "care_forms.csv"
            );
            seed_book!(
                conn,
                count,
                patient_status,
                refs::PatientStatusInput,
                "patient_statuses.csv"
            );
            seed_book!(conn, count, need, refs::NeedInput, "needs.csv");
            seeded.reference_rows = count;
            diesel::insert_into(settings::table)
                .values((settings::name.eq(SEEDED_FLAG), settings::value.eq("1")))
                .execute(conn)?;
            audit::complete(
                conn,
                place,
                audit::NewEntry {
                    action: "system.seed".into(),
                    object_type: "database".into(),
                    outcome: "ok".into(),
                    details: Some(serde_json::json!({"reference_rows": count}).to_string()),
                    ..Default::default()
                },
            )?;
        }
        if users::count(conn)? == 0 {
            let password = match admin_password {
                Some(p) => p.to_string(),
                None => {
                    let generated = crate::secrets::random_hex::<12>()?;
                    seeded.generated_admin_password = Some(generated.clone());
                    generated
                }
            };
            create_first_admin(conn, &password)?;
            seeded.admin_created = true;
        }
        Ok(seeded)
    })
}

fn create_first_admin(conn: &mut DbConn, password: &str) -> anyhow::Result<()> {
    let hash = crate::password::hash(password)?;
    let now = models::now();
    let place = audit::reserve(conn)?;
    let id = users::insert(
        conn,
        &users::NewUser {
            login: "admin",
            full_name: "Administrator",
            password_hash: &hash,
            institution_id: None,
            active: true,
            failed_logins: 0,
            created_at: now,
            updated_at: now,
        },
    )?;
    let role: Vec<i64> = rbac::role_ids_by_name(conn, &["admin".to_string()])?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    users::set_roles(conn, id, &role)?;
    audit::complete(
        conn,
        place,
        audit::NewEntry {
            action: "system.first_admin".into(),
            object_type: "user".into(),
            object_id: Some(id.to_string()),
            outcome: "ok".into(),
            ..Default::default()
        },
    )?;
    Ok(())
}
