//! The dates a clinician writes (a prescription, a registration, a discharge, an observation)
//! are checked against the clinician's calendar, not the server's UTC clock: east of Greenwich
//! a clinician's "today" is UTC's tomorrow for part of every day (from 21:00 UTC in Moscow, from
//! 14:00 UTC in Vladivostok), and such a prescription, and later such a registration, was
//! refused as "dated in the future" (the browser tests, in Moscow time, failed after 21:00 UTC).

use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use client_crypto::Sex;
use palreg_server::domain::latest_calendar_date;
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
    for (utc, latest, when) in [
        (
            "2026-11-28T21:30:00",
            "2026-11-29",
            "00:30 of the 29th in Moscow (UTC+3)",
        ),
        (
            "2026-11-28T23:00:00",
            "2026-11-29",
            "09:00 of the 29th in Vladivostok (UTC+10)",
        ),
        (
            "2026-11-28T08:00:00",
            "2026-11-28",
            "22:00 of the 28th in UTC+14, the easternmost",
        ),
        (
            "2026-11-28T10:00:00",
            "2026-11-29",
            "00:00 of the 29th in UTC+14",
        ),
    ] {
        assert_eq!(latest_calendar_date(at(utc)), day(latest), "{when}");
    }
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
    let latest = latest_calendar_date(now);
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

fn a_record_dated_by_an_eastern_calendar_is_accepted(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let latest = latest_calendar_date(Utc::now().naive_utc());
    let registered = |on: NaiveDate| {
        let mut record = record(&app, &c.a.token, 1950);
        record["registered_on"] = json!(on.to_string());
        c.new_patient(
            &passport("Орлова", "Вера", "1950-03-03", Sex::Female),
            record,
        )
        .1
    };

    // Registered today by the clinician's calendar: accepted, alone and in an import batch.
    let patient = app.post("/api/v1/patients", Some(&c.a.token), &registered(latest));
    assert_eq!(patient.status, 201, "{latest}: {:?}", patient.body);
    let pid = patient.body["id"].as_i64().unwrap();
    let batch = app.post(
        "/api/v1/patients/import",
        Some(&c.a.token),
        &json!({"patients": [registered(latest)]}),
    );
    assert_eq!(batch.status, 201, "{:?}", batch.body);
    // Discharged today, by an edit.
    let mut record = patient.body["record"].clone();
    record["status"] = json!("discharged");
    record["discharged_on"] = json!(latest.to_string());
    let r = app.put(
        &format!("/api/v1/patients/{pid}"),
        Some(&c.a.token),
        &json!({"version": 1, "record": record}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Observed today.
    let observe = |on: NaiveDate| json!({"observed_on": on.to_string(), "pain_score": 4});
    let r = app.post(
        &format!("/api/v1/patients/{pid}/observations"),
        Some(&c.a.token),
        &observe(latest),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);

    // The day after is in the future everywhere.
    let tomorrow = latest + Duration::days(1);
    let r = app.post("/api/v1/patients", Some(&c.a.token), &registered(tomorrow));
    assert_eq!((r.status, r.error_code()), (400, "invalid_dates"));
    let r = app.post(
        &format!("/api/v1/patients/{pid}/observations"),
        Some(&c.a.token),
        &observe(tomorrow),
    );
    assert_eq!((r.status, r.error_code()), (400, "invalid_dates"));
}

on_both_backends!(
    a_prescription_dated_by_an_eastern_calendar_is_accepted,
    a_record_dated_by_an_eastern_calendar_is_accepted
);
