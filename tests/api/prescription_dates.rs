//! The date of a prescription is checked against the clinician's calendar, not the server's UTC
//! clock: east of Greenwich a clinician's "today" is UTC's tomorrow for part of every day (from
//! 21:00 UTC in Moscow, from 14:00 UTC in Vladivostok), and such a prescription was refused as
//! "dated in the future".

use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use client_crypto::Sex;
use palreg_server::routes::prescriptions::latest_prescription_date;
use palreg_tests::clinic::{clinic, passport, record, ref_id};
use palreg_tests::{Backend, on_both_backends, spawn_app};
use serde_json::json;

fn at(s: &str) -> NaiveDateTime {
    s.parse().unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn the_latest_date_is_todays_date_somewhere_on_earth() {
    // 00:30 of the 29th in Moscow (UTC+3).
    assert_eq!(
        latest_prescription_date(at("2026-11-28T21:30:00")),
        day("2026-11-29")
    );
    // 09:00 of the 29th in Vladivostok (UTC+10).
    assert_eq!(
        latest_prescription_date(at("2026-11-28T23:00:00")),
        day("2026-11-29")
    );
    // 22:00 of the 28th in UTC+14, the easternmost zone: nobody is on the 29th yet.
    assert_eq!(
        latest_prescription_date(at("2026-11-28T08:00:00")),
        day("2026-11-28")
    );
    assert_eq!(
        latest_prescription_date(at("2026-11-28T10:00:00")),
        day("2026-11-29")
    );
}

fn a_prescription_dated_by_an_eastern_calendar_is_accepted(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let (_, body) = c.new_patient(
        &passport("Орлова", "Вера", "1950-03-03", Sex::Female),
        record(&app, &c.a.token, 1950),
    );
    let patient = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(patient.status, 201, "{:?}", patient.body);
    let pid = patient.body["id"].as_i64().unwrap();
    let morphine = ref_id(&app, &c.a.token, "medicaments", "MOR-TAB-10");
    let rx = |on: NaiveDate| json!({"patient_id": pid, "prescribed_on": on.to_string(), "medicament_id": morphine, "dose": 10, "dose_unit": "mg", "route": "oral", "frequency": "every 4 hours", "quantity": 60, "start_on": on.to_string()});

    // UTC's tomorrow is some clinician's today from 10:00 UTC on.
    let now = Utc::now().naive_utc();
    let latest = latest_prescription_date(now);
    assert!(latest >= now.date());
    let r = app.post("/api/v1/prescriptions", Some(&c.a.token), &rx(latest));
    assert_eq!(r.status, 201, "{latest}: {:?}", r.body);
    let id = r.body["id"].as_i64().unwrap();

    // An edit keeps that date.
    let mut edit = rx(latest);
    edit.as_object_mut().unwrap().remove("patient_id");
    edit["version"] = json!(1);
    let r = app.put(
        &format!("/api/v1/prescriptions/{id}"),
        Some(&c.a.token),
        &edit,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);

    // The day after is in the future everywhere.
    let r = app.post(
        "/api/v1/prescriptions",
        Some(&c.a.token),
        &rx(latest + Duration::days(1)),
    );
    assert_eq!((r.status, r.error_code()), (400, "invalid_dates"));
}

on_both_backends!(a_prescription_dated_by_an_eastern_calendar_is_accepted);
