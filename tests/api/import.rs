//! The batch import (`POST /api/v1/patients/import`): every patient of a batch is stored with
//! its needs, blind indexes and first version, or none is, and the error names the bad item.

use client_crypto::{BlindIndexField, Sex};
use palreg_server::routes::patients::IMPORT_BATCH_MAX;
use palreg_tests::clinic::{Clinic, clinic, passport, record, ref_id};
use palreg_tests::{Backend, TestApp, on_both_backends, spawn_app};
use serde_json::{Value, json};

const SURNAMES: [&str; 3] = ["Ковалёва", "Ильина", "Фомичёва"];

/// Import bodies of the three surnames, each with the needs given.
fn batch(app: &TestApp, c: &Clinic, needs: &[i64]) -> Vec<Value> {
    SURNAMES
        .iter()
        .enumerate()
        .map(|(i, surname)| {
            let dob = format!("194{i}-03-0{}", i + 1);
            let mut rec = record(app, &c.a.token, 1940 + i as i32);
            rec["needs"] = json!(needs);
            c.new_patient(&passport(surname, "Анна", &dob, Sex::Female), rec)
                .1
        })
        .collect()
}

fn total(app: &TestApp, c: &Clinic) -> i64 {
    let r = app.post("/api/v1/patients/search", Some(&c.a.token), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["total"].as_i64().unwrap()
}

fn import(app: &TestApp, c: &Clinic, patients: &[Value]) -> (u16, Value) {
    let r = app.post(
        "/api/v1/patients/import",
        Some(&c.a.token),
        &json!({"patients": patients}),
    );
    (r.status, r.body)
}

fn a_batch_is_stored_whole_with_needs_indexes_and_history(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "IMP1");
    let bed = ref_id(&app, &c.a.token, "needs", "functional_bed");
    let oxygen = ref_id(&app, &c.a.token, "needs", "oxygen_concentrator");
    let bodies = batch(&app, &c, &[oxygen, bed]);
    let (status, reply) = import(&app, &c, &bodies);
    assert_eq!(status, 201, "{reply:?}");
    let ids: Vec<i64> = reply["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut wanted_needs = vec![bed, oxygen];
    wanted_needs.sort_unstable();
    for (i, id) in ids.iter().enumerate() {
        // The ids come back in the order of the request.
        let got = app.get(&format!("/api/v1/patients/{id}"), Some(&c.b.token));
        assert_eq!(got.status, 200, "{:?}", got.body);
        assert_eq!(got.body["pseudonym"], bodies[i]["pseudonym"]);
        assert_eq!(c.open(&got.body).surname, SURNAMES[i]);
        assert_eq!(got.body["version"], 1);
        assert_eq!(got.body["record"]["needs"], json!(wanted_needs));
        let history = app.get(&format!("/api/v1/patients/{id}/history"), Some(&c.b.token));
        assert_eq!(history.status, 200);
        let versions = history.body.as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["change"], "created");
        assert_eq!(versions[0]["record"], got.body["record"]);
        assert_eq!(versions[0]["changed_at"], got.body["updated_at"]);
        // Every blind index was stored with the patient.
        let token = c
            .key
            .blind_index(BlindIndexField::Surname, SURNAMES[i], c.bits())
            .unwrap()
            .to_token();
        let found = app.post(
            "/api/v1/patients/search",
            Some(&c.a.token),
            &json!({"blind_indexes": [token]}),
        );
        let found: Vec<i64> = found.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert!(found.contains(id), "{found:?} lacks {id}");
    }
    let filtered = app.post(
        "/api/v1/patients/search",
        Some(&c.a.token),
        &json!({"need_id": oxygen}),
    );
    assert_eq!(filtered.body["total"], 3);
    let (in_rows, listed) = app.needs_both_ways();
    assert_eq!(in_rows, listed);
    let both = format!(":{},{}", wanted_needs[0], wanted_needs[1]);
    assert!(in_rows.iter().all(|r| r.ends_with(&both)), "{in_rows:?}");
}

fn a_bad_item_refuses_the_whole_batch_and_names_it(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "IMP2");
    let bed = ref_id(&app, &c.a.token, "needs", "functional_bed");
    let first = batch(&app, &c, &[bed]);
    let (status, _) = import(&app, &c, &first[..1]);
    assert_eq!(status, 201);
    assert_eq!(total(&app, &c), 1);

    // Item 2 reuses a pseudonym already registered.
    let mut bodies = batch(&app, &c, &[bed]);
    bodies[2]["pseudonym"] = first[0]["pseudonym"].clone();
    let (status, body) = import(&app, &c, &bodies);
    assert_eq!(status, 409, "{body:?}");
    assert_eq!(body["error"]["code"], "pseudonym_taken");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("patients[2]:"), "{message}");

    // Item 1 names a need that does not exist.
    let mut bodies = batch(&app, &c, &[bed]);
    bodies[1]["record"]["needs"] = json!([bed, 999_999]);
    let (status, body) = import(&app, &c, &bodies);
    assert_eq!(status, 422, "{body:?}");
    assert_eq!(body["error"]["code"], "unknown_need");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("patients[1]:")
    );

    // Item 0 names a diagnosis that does not exist.
    let mut bodies = batch(&app, &c, &[]);
    bodies[0]["record"]["diagnosis_id"] = json!(999_999);
    let (status, body) = import(&app, &c, &bodies);
    assert_eq!(status, 422, "{body:?}");
    assert_eq!(body["error"]["code"], "unknown_diagnosis");

    // The same pseudonym twice in one batch.
    let mut bodies = batch(&app, &c, &[]);
    bodies[1]["pseudonym"] = bodies[0]["pseudonym"].clone();
    let (status, body) = import(&app, &c, &bodies);
    assert_eq!(status, 409, "{body:?}");

    // Nothing of the refused batches was stored.
    assert_eq!(total(&app, &c), 1);
}

fn a_batch_is_one_to_the_largest_number_of_patients(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "IMP3");
    let (status, body) = import(&app, &c, &[]);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_batch"))
    );

    // Counted before anything else is looked at (these would be refused as repeated
    // pseudonyms otherwise).
    let one = batch(&app, &c, &[]).swap_remove(0);
    let too_many = vec![one; IMPORT_BATCH_MAX + 1];
    let (status, body) = import(&app, &c, &too_many);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_batch"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&IMPORT_BATCH_MAX.to_string()), "{message}");
    assert_eq!(total(&app, &c), 0);
}

on_both_backends!(
    a_batch_is_stored_whole_with_needs_indexes_and_history,
    a_bad_item_refuses_the_whole_batch_and_names_it,
    a_batch_is_one_to_the_largest_number_of_patients,
);
