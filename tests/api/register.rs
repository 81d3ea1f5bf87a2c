use client_crypto::{BlindIndexField, NoteBinding, Pseudonym, Sex};
use palreg_tests::clinic::{Clinic, clinic, passport, record, ref_id};
use palreg_tests::{Backend, PASSWORD, TestApp, captured_log, on_both_backends, spawn_app};
use serde_json::{Value, json};

fn register(app: &TestApp, c: &Clinic, surname: &str, first: &str, dob: &str) -> Value {
    let p = passport(surname, first, dob, Sex::Female);
    let (_, body) = c.new_patient(&p, record(app, &c.a.token, dob[..4].parse().unwrap()));
    let r = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

fn patients_are_registered_read_and_edited(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let created = register(&app, &c, "Кузнецова", "Мария", "1948-05-17");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["version"], 1);
    assert_eq!(created["institution_id"], c.institution_id);
    assert_eq!(created["record"]["status"], "registered");

    let got = app.get(&format!("/api/v1/patients/{id}"), Some(&c.b.token));
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(c.open(&got.body).surname, "Кузнецова");

    let mut rec = got.body["record"].clone();
    rec["status"] = json!("deceased");
    rec["deceased_on"] = json!("2026-03-01");
    rec["needs"] = json!([ref_id(&app, &c.a.token, "needs", "functional_bed")]);
    let r = app.put(
        &format!("/api/v1/patients/{id}"),
        Some(&c.b.token),
        &json!({"version": 1, "record": rec}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["record"]["status"], "deceased");
    // The passport was kept.
    assert_eq!(c.open(&r.body).first_name, "Мария");

    let history = app.get(&format!("/api/v1/patients/{id}/history"), Some(&c.a.token));
    let versions = history.body.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["changed_by"], c.b.id);
    assert_eq!(versions[0]["change"], "updated");
    assert_eq!(versions[0]["record"]["status"], "deceased");
    assert_eq!(versions[1]["changed_by"], c.a.id);
    assert_eq!(versions[1]["record"]["status"], "registered");

    // Invalid records are refused with clear codes and nothing is written.
    for (change, code) in [
        (json!({"sex": "X"}), "invalid_sex"),
        (json!({"birth_year": 1800}), "invalid_birth_year"),
        (json!({"status": "discharged"}), "invalid_status"),
        (json!({"registered_on": "2999-01-01"}), "invalid_dates"),
    ] {
        let mut bad = record(&app, &c.a.token, 1950);
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let (_, body) = c.new_patient(&passport("Тест", "Тест", "1950-01-01", Sex::Female), bad);
        let r = app.post("/api/v1/patients", Some(&c.a.token), &body);
        assert_eq!((r.status, r.error_code()), (400, code), "{change}");
    }
    let mut unknown = record(&app, &c.a.token, 1950);
    unknown["diagnosis_id"] = json!(999_999);
    let (_, body) = c.new_patient(
        &passport("Тест", "Тест", "1950-01-01", Sex::Female),
        unknown,
    );
    let r = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!((r.status, r.error_code()), (422, "unknown_diagnosis"));
    let mut body = c
        .new_patient(
            &passport("Тест", "Тест", "1950-01-01", Sex::Female),
            record(&app, &c.a.token, 1950),
        )
        .1;
    body["passport"] = json!("AAAAAAAA");
    assert_eq!(
        app.post("/api/v1/patients", Some(&c.a.token), &body).status,
        400
    );
    let mut body = c
        .new_patient(
            &passport("Тест", "Тест", "1950-01-01", Sex::Female),
            record(&app, &c.a.token, 1950),
        )
        .1;
    body["pseudonym"] = created["pseudonym"].clone();
    let r = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!((r.status, r.error_code()), (409, "pseudonym_taken"));
    let search = app.post("/api/v1/patients/search", Some(&c.a.token), &json!({}));
    assert_eq!(search.body["total"], 1);
}

fn a_stale_write_is_refused_and_nothing_is_lost(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let created = register(&app, &c, "Волкова", "Зоя", "1939-11-30");
    let id = created["id"].as_i64().unwrap();
    // Both clinicians open version 1.
    let seen_a = app
        .get(&format!("/api/v1/patients/{id}"), Some(&c.a.token))
        .body;
    let seen_b = app
        .get(&format!("/api/v1/patients/{id}"), Some(&c.b.token))
        .body;
    let mut rec_a = seen_a["record"].clone();
    rec_a["needs"] = json!([ref_id(&app, &c.a.token, "needs", "oxygen_concentrator")]);
    let first = app.put(
        &format!("/api/v1/patients/{id}"),
        Some(&c.a.token),
        &json!({"version": 1, "record": rec_a}),
    );
    assert_eq!(first.status, 200, "{:?}", first.body);
    let mut rec_b = seen_b["record"].clone();
    rec_b["status"] = json!("discharged");
    rec_b["discharged_on"] = json!("2026-02-01");
    let second = app.put(
        &format!("/api/v1/patients/{id}"),
        Some(&c.b.token),
        &json!({"version": 1, "record": rec_b}),
    );
    assert_eq!((second.status, second.error_code()), (409, "stale_version"));
    // If-Match must agree with the body.
    let r = app.put(
        &format!("/api/v1/patients/{id}"),
        Some(&c.b.token),
        &json!({"version": 7, "record": seen_b["record"]}),
    );
    assert_eq!(r.status, 409);
    // The first write is intact.
    let now = app
        .get(&format!("/api/v1/patients/{id}"), Some(&c.b.token))
        .body;
    assert_eq!(now["version"], 2);
    assert_eq!(now["record"]["status"], "registered");
    assert_eq!(now["record"]["needs"], first.body["record"]["needs"]);
    // b reloads and applies its change on top.
    let mut rec_b = now["record"].clone();
    rec_b["status"] = json!("discharged");
    rec_b["discharged_on"] = json!("2026-02-01");
    let retry = app.put(
        &format!("/api/v1/patients/{id}"),
        Some(&c.b.token),
        &json!({"version": 2, "record": rec_b}),
    );
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["record"]["needs"], first.body["record"]["needs"]);
    assert_eq!(retry.body["record"]["status"], "discharged");
    // The row's copy of the needs was written with every change, the refused one excepted.
    let (in_rows, listed) = app.needs_both_ways();
    assert_eq!(in_rows, listed);
}

fn another_institution_sees_nothing(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let a = clinic(&app, &admin, "HA");
    let b = clinic(&app, &admin, "HB");
    let patient = register(&app, &a, "Зайцева", "Вера", "1944-02-02");
    let pid = patient["id"].as_i64().unwrap();
    let med = ref_id(&app, &a.a.token, "medicaments", "MOR-TAB-10");
    let rx = app.post(
        "/api/v1/prescriptions",
        Some(&a.a.token),
        &json!({"patient_id": pid, "prescribed_on": "2026-02-01", "medicament_id": med, "dose": 10, "dose_unit": "mg", "route": "oral", "frequency": "every 4 hours", "quantity": 60, "start_on": "2026-02-01"}),
    );
    assert_eq!(rx.status, 201, "{:?}", rx.body);
    let rid = rx.body["id"].as_i64().unwrap();
    let t = Some(b.a.token.as_str());
    let inst = a.institution_id;
    for path in [
        format!("/api/v1/patients/{pid}"),
        format!("/api/v1/patients/{pid}/history"),
        format!("/api/v1/patients/{pid}/observations"),
        format!("/api/v1/prescriptions/{rid}"),
        format!("/api/v1/prescriptions/{rid}/history"),
        format!("/api/v1/institutions/{inst}/members"),
    ] {
        assert_eq!(app.get(&path, t).status, 404, "GET {path}");
    }
    let writes = [
        (
            "PUT",
            format!("/api/v1/patients/{pid}"),
            json!({"version": 1, "record": patient["record"]}),
        ),
        (
            "POST",
            format!("/api/v1/patients/{pid}/observations"),
            json!({"observed_on": "2026-02-02", "pain_score": 3}),
        ),
        (
            "PUT",
            format!("/api/v1/prescriptions/{rid}"),
            json!({"version": 1, "prescribed_on": "2026-02-01", "medicament_id": med, "dose": 5, "dose_unit": "mg", "route": "oral", "frequency": "x", "quantity": 1, "start_on": "2026-02-01"}),
        ),
        (
            "POST",
            format!("/api/v1/prescriptions/{rid}/cancel"),
            json!({"version": 1, "reason": "x"}),
        ),
        (
            "POST",
            format!("/api/v1/institutions/{inst}/keys"),
            json!({"version": 2, "envelope": "x"}),
        ),
        (
            "POST",
            format!("/api/v1/institutions/{inst}/keys/1/envelopes"),
            json!({"recipient_id": b.a.id, "envelope": "x"}),
        ),
        (
            "PUT",
            format!("/api/v1/institutions/{inst}/keys/2/link"),
            json!({"link": "x"}),
        ),
    ];
    for (method, path, body) in writes {
        let r = if method == "PUT" {
            app.put(&path, t, &body)
        } else {
            app.post(&path, t, &body)
        };
        assert!(
            r.status == 404 || r.status == 400,
            "{method} {path}: {} {:?}",
            r.status,
            r.body
        );
        if r.status == 400 {
            // A malformed envelope is refused before scope; send a well-formed one too.
            let mut good = body.clone();
            good["envelope"] = json!(a.key.wrap_for(b.a.keys.public_key(), b.a.id, inst).unwrap());
            assert_eq!(app.post(&path, t, &good).status, 404, "{method} {path}");
        }
    }
    // A prescription for another institution's patient is refused like a missing patient.
    let r = app.post(
        "/api/v1/prescriptions",
        t,
        &json!({"patient_id": pid, "prescribed_on": "2026-02-01", "medicament_id": med, "dose": 10, "dose_unit": "mg", "route": "oral", "frequency": "q4h", "quantity": 60, "start_on": "2026-02-01"}),
    );
    assert_eq!((r.status, r.error_code()), (422, "unknown_patient"));
    // Searches only ever cover the caller's institution, even with A's own blind index.
    let token = a
        .key
        .blind_index(BlindIndexField::Surname, "Зайцева", a.bits())
        .unwrap()
        .to_token();
    let s = app.post(
        "/api/v1/patients/search",
        t,
        &json!({"blind_indexes": [token]}),
    );
    assert_eq!(s.body["total"], 0);
    let s = app.post("/api/v1/prescriptions/search", t, &json!({}));
    assert_eq!(s.body["total"], 0);
    // Nothing changed in A.
    let still = app.get(&format!("/api/v1/patients/{pid}"), Some(&a.a.token));
    assert_eq!(still.body["version"], 1);
    // Ministry and region-wide users never see records.
    app.create_user(&admin, "analyst", &["ministry"], None);
    let m = app.login("analyst", PASSWORD);
    assert_eq!(
        app.get(&format!("/api/v1/patients/{pid}"), Some(&m)).status,
        403
    );
    assert_eq!(
        app.post("/api/v1/patients/search", Some(&m), &json!({}))
            .status,
        403
    );
    assert_eq!(
        app.post("/api/v1/prescriptions/search", Some(&m), &json!({}))
            .status,
        403
    );
    let r = app.get(&format!("/api/v1/patients/{pid}"), Some(&admin));
    assert_eq!((r.status, r.error_code()), (403, "no_institution"));
    assert_eq!(
        app.get(&format!("/api/v1/patients/{pid}"), None).status,
        401
    );
}

fn prescriptions_are_written_edited_and_cancelled(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let patient = register(&app, &c, "Громова", "Лидия", "1952-09-09");
    let pid = patient["id"].as_i64().unwrap();
    let morphine = ref_id(&app, &c.a.token, "medicaments", "MOR-TAB-10");
    let paracetamol = app
        .get("/api/v1/refs/medicaments", Some(&c.a.token))
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["inn"] == "paracetamol")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let rx = |med: i64, on: &str| json!({"patient_id": pid, "prescribed_on": on, "medicament_id": med, "dose": 10, "dose_unit": "mg", "route": "oral", "frequency": "every 4 hours", "quantity": 60, "start_on": on, "end_on": "2026-03-31"});
    let first = app.post(
        "/api/v1/prescriptions",
        Some(&c.a.token),
        &rx(morphine, "2026-02-01"),
    );
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["number"], "2026-000001");
    assert_eq!(first.body["prescriber_id"], c.a.id);
    assert_eq!(first.body["status"], "active");
    let second = app.post(
        "/api/v1/prescriptions",
        Some(&c.b.token),
        &rx(paracetamol, "2026-02-03"),
    );
    assert_eq!(second.body["number"], "2026-000002");

    for (change, code) in [
        (json!({"quantity": 0}), "invalid_quantity"),
        (json!({"dose": -1}), "invalid_dose"),
        (json!({"route": "telepathic"}), "invalid_route"),
        (json!({"start_on": "2026-01-01"}), "invalid_dates"),
        (json!({"end_on": "2026-01-01"}), "invalid_dates"),
    ] {
        let mut body = rx(morphine, "2026-02-01");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post("/api/v1/prescriptions", Some(&c.a.token), &body);
        assert_eq!((r.status, r.error_code()), (400, code), "{change}");
    }
    let r = app.post(
        "/api/v1/prescriptions",
        Some(&c.a.token),
        &rx(999_999, "2026-02-01"),
    );
    assert_eq!((r.status, r.error_code()), (422, "unknown_medicament"));

    let id = first.body["id"].as_i64().unwrap();
    let mut edit = rx(morphine, "2026-02-01");
    edit.as_object_mut().unwrap().remove("patient_id");
    edit["version"] = json!(1);
    edit["quantity"] = json!(90);
    let r = app.put(
        &format!("/api/v1/prescriptions/{id}"),
        Some(&c.b.token),
        &edit,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["quantity"], 90.0);
    let stale = app.put(
        &format!("/api/v1/prescriptions/{id}"),
        Some(&c.a.token),
        &edit,
    );
    assert_eq!((stale.status, stale.error_code()), (409, "stale_version"));
    let r = app.post(
        &format!("/api/v1/prescriptions/{id}/cancel"),
        Some(&c.a.token),
        &json!({"version": 2}),
    );
    assert_eq!((r.status, r.error_code()), (400, "reason_required"));
    let r = app.post(
        &format!("/api/v1/prescriptions/{id}/cancel"),
        Some(&c.a.token),
        &json!({"version": 2, "reason": "Переведена на пластырь"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let again = app.post(
        &format!("/api/v1/prescriptions/{id}/cancel"),
        Some(&c.a.token),
        &json!({"version": 3, "reason": "x"}),
    );
    assert_eq!((again.status, again.error_code()), (409, "not_active"));
    let history = app.get(
        &format!("/api/v1/prescriptions/{id}/history"),
        Some(&c.a.token),
    );
    let changes: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["cancelled", "updated", "created"]);
    assert_eq!(history.body[2]["prescription"]["quantity"], 60.0);

    let s = app.post(
        "/api/v1/prescriptions/search",
        Some(&c.a.token),
        &json!({"controlled": true}),
    );
    assert_eq!(s.body["total"], 1);
    assert_eq!(s.body["items"][0]["id"], id);
    let s = app.post(
        "/api/v1/prescriptions/search",
        Some(&c.a.token),
        &json!({"status": "active"}),
    );
    assert_eq!(s.body["total"], 1);
    let s = app.post(
        "/api/v1/prescriptions/search",
        Some(&c.a.token),
        &json!({"from": "2026-02-02", "to": "2026-02-28"}),
    );
    assert_eq!(s.body["total"], 1);
    let s = app.post(
        "/api/v1/prescriptions/search",
        Some(&c.a.token),
        &json!({"prescriber_id": c.b.id, "patient_id": pid}),
    );
    assert_eq!(s.body["total"], 1);
    let s = app.post(
        "/api/v1/prescriptions/search",
        Some(&c.a.token),
        &json!({"limit": 1}),
    );
    assert_eq!(s.body["total"], 2);
    let next = s.body["next_after"].as_i64().unwrap();
    let s2 = app.post(
        "/api/v1/prescriptions/search",
        Some(&c.a.token),
        &json!({"limit": 1, "after": next}),
    );
    assert_eq!(s2.body["items"][0]["number"], "2026-000002");

    // A deceased patient gets no new prescriptions.
    let mut rec = patient["record"].clone();
    rec["status"] = json!("deceased");
    rec["deceased_on"] = json!("2026-03-05");
    app.put(
        &format!("/api/v1/patients/{pid}"),
        Some(&c.a.token),
        &json!({"version": 1, "record": rec}),
    );
    let r = app.post(
        "/api/v1/prescriptions",
        Some(&c.a.token),
        &rx(morphine, "2026-03-06"),
    );
    assert_eq!((r.status, r.error_code()), (422, "patient_not_registered"));
}

fn observations_keep_free_text_sealed(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let patient = register(&app, &c, "Лебедева", "Ирина", "1947-04-04");
    let pid = patient["id"].as_i64().unwrap();
    let pseudonym = Pseudonym::parse(patient["pseudonym"].as_str().unwrap()).unwrap();
    let note_ref = "2b0c6f3e-obs-1";
    let binding = NoteBinding {
        purpose: "observation",
        pseudonym: &pseudonym,
        institution_id: c.institution_id,
        record_id: note_ref,
    };
    let sealed = c
        .key
        .seal_note(
            "Боли усилились ночью; дочь Светлана просит звонить после 18:00",
            &binding,
        )
        .unwrap();
    let bed = ref_id(&app, &c.a.token, "needs", "functional_bed");
    let r = app.post(
        &format!("/api/v1/patients/{pid}/observations"),
        Some(&c.a.token),
        &json!({"observed_on": "2026-02-10", "pain_score": 7, "ecog": 3, "needs_added": [bed], "note": {"note_ref": note_ref, "sealed": sealed}}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    for (body, code) in [
        (
            json!({"observed_on": "2026-02-10", "pain_score": 11}),
            "invalid_pain_score",
        ),
        (
            json!({"observed_on": "2026-02-10", "ecog": 6}),
            "invalid_ecog",
        ),
        (
            json!({"observed_on": "2026-02-10", "note": {"note_ref": "x", "sealed": "plain text"}}),
            "",
        ),
    ] {
        let r = app.post(
            &format!("/api/v1/patients/{pid}/observations"),
            Some(&c.a.token),
            &body,
        );
        assert_eq!(r.status, 400, "{body}");
        if !code.is_empty() {
            assert_eq!(r.error_code(), code);
        }
    }
    let list = app.get(
        &format!("/api/v1/patients/{pid}/observations"),
        Some(&c.b.token),
    );
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let obs = &list.body[0];
    assert_eq!(obs["pain_score"], 7);
    let text = c
        .key
        .open_note(obs["note"]["sealed"].as_str().unwrap(), &binding)
        .unwrap();
    assert!(text.starts_with("Боли усилились"));
    // The need was added to the record, as a new version.
    let now = app.get(&format!("/api/v1/patients/{pid}"), Some(&c.a.token));
    assert_eq!(now.body["record"]["needs"], json!([bed]));
    assert_eq!(now.body["version"], 2);
    let (in_rows, listed) = app.needs_both_ways();
    assert_eq!(in_rows, listed);
    let h = app.get(&format!("/api/v1/patients/{pid}/history"), Some(&c.a.token));
    assert_eq!(h.body[0]["change"], "observation");
    // A ministry user cannot read the medical record.
    app.create_user(&admin, "analyst", &["ministry"], None);
    let m = app.login("analyst", PASSWORD);
    assert_eq!(
        app.get(&format!("/api/v1/patients/{pid}/observations"), Some(&m))
            .status,
        403
    );
}

/// Bytes of `needle` anywhere in `hay`.
fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn no_identifying_data_reaches_the_server(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let secrets = [
        "Ёлкина-Сидорова",
        "Агриппина",
        "Тимофеевна",
        "O'Brien-Smythe",
        "Maeve",
        "123-456-789 64",
        "12345678964",
        "+7 (921) 555-01-23",
        "9215550123",
        "Петрозаводск, ул. Ленина",
    ];
    let mut p = passport("Ёлкина-Сидорова", "Агриппина", "1937-12-24", Sex::Female);
    p.patronymic = Some("Тимофеевна".into());
    p.snils = Some("123-456-789 64".into());
    p.phone = Some("+7 (921) 555-01-23".into());
    p.address = Some("Петрозаводск, ул. Ленина, 1".into());
    let mut q = passport("O'Brien-Smythe", "Maeve", "1950-06-30", Sex::Female);
    q.phone = Some("9215550123".into());
    // Register, search, edit, prescribe, observe, import: the whole scenario.
    let (_, body) = c.new_patient(&p, record(&app, &c.a.token, 1937));
    let first = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(first.status, 201);
    let (_, body) = c.new_patient(&q, record(&app, &c.a.token, 1950));
    let import = app.post(
        "/api/v1/patients/import",
        Some(&c.b.token),
        &json!({"patients": [body]}),
    );
    assert_eq!(import.status, 201, "{:?}", import.body);
    let token = c
        .key
        .blind_index(BlindIndexField::Surname, "ёлкина-сидорова", c.bits())
        .unwrap()
        .to_token();
    let found = app.post(
        "/api/v1/patients/search",
        Some(&c.b.token),
        &json!({"blind_indexes": [token]}),
    );
    assert!(
        found.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| c.open(x).first_name == "Агриппина")
    );
    let pid = first.body["id"].as_i64().unwrap();
    let med = ref_id(&app, &c.a.token, "medicaments", "MOR-TAB-10");
    app.post("/api/v1/prescriptions", Some(&c.a.token), &json!({"patient_id": pid, "prescribed_on": "2026-02-01", "medicament_id": med, "dose": 5, "dose_unit": "mg", "route": "oral", "frequency": "q4h", "quantity": 30, "start_on": "2026-02-01"}));
    let pseudonym = Pseudonym::parse(first.body["pseudonym"].as_str().unwrap()).unwrap();
    let binding = NoteBinding {
        purpose: "observation",
        pseudonym: &pseudonym,
        institution_id: c.institution_id,
        record_id: "n1",
    };
    let note = c
        .key
        .seal_note(
            "Позвонить Агриппина Тимофеевна: +7 (921) 555-01-23",
            &binding,
        )
        .unwrap();
    let r = app.post(&format!("/api/v1/patients/{pid}/observations"), Some(&c.a.token), &json!({"observed_on": "2026-02-02", "pain_score": 4, "note": {"note_ref": "n1", "sealed": note}}));
    assert_eq!(r.status, 201);
    let mut rec = first.body["record"].clone();
    rec["birth_year"] = json!(1937);
    let mut p2 = p.clone();
    p2.address = Some("Петрозаводск, ул. Ленина, 2".into());
    let sealed = c
        .key
        .seal_passport(&p2, &pseudonym, c.institution_id)
        .unwrap();
    let r = app.put(&format!("/api/v1/patients/{pid}"), Some(&c.a.token), &json!({"version": 1, "passport": sealed, "blind_indexes": c.tokens(&c.key, &p2), "record": rec}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    app.get(&format!("/api/v1/patients/{pid}/history"), Some(&c.a.token));
    app.get("/api/v1/admin/audit?limit=500", Some(&admin));

    // Every byte that crossed the wire…
    let wire = app.bodies.lock().unwrap().join("\n");
    // …the database at rest…
    let stored = app.stored_bytes();
    // …and the server's log.
    let log = captured_log();
    for secret in secrets {
        assert!(!wire.contains(secret), "{secret} crossed the wire");
        assert!(!contains(&stored, secret), "{secret} is in the database");
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    // The scenario really happened (the check is not vacuous).
    assert!(contains(&stored, first.body["pseudonym"].as_str().unwrap()));
    assert!(log.contains("/api/v1/patients"));
}

/// Reads and searches authenticate inside their own read transaction (one trip off the
/// workers): the order of refusals is the same as everywhere else (401, then 403, then 400),
/// a revoked session is refused at once, and what is let in or refused is audited once.
fn reads_authenticate_in_their_own_transaction(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let id = register(&app, &c, "Соколова", "Анна", "1951-02-03")["id"]
        .as_i64()
        .unwrap();
    app.create_user(&admin, "analyst", &["ministry"], None);
    let analyst = app.login("analyst", PASSWORD);
    let read = format!("/api/v1/patients/{id}");
    let malformed = json!({"limit": 0, "sex": "X"});

    // No token, a forged one: 401, even with a malformed body.
    assert_eq!(app.get(&read, None).status, 401);
    assert_eq!(app.get(&read, Some("not.a.token")).status, 401);
    let r = app.post("/api/v1/patients/search", None, &malformed);
    assert_eq!((r.status, r.error_code()), (401, "unauthenticated"));
    // Signed in without the permission: 403 before the body is looked at, audited as denied.
    assert_eq!(app.get(&read, Some(&analyst)).status, 403);
    let r = app.post("/api/v1/patients/search", Some(&analyst), &malformed);
    assert_eq!((r.status, r.error_code()), (403, "forbidden"));
    // With it: the malformed body is named.
    let r = app.post("/api/v1/patients/search", Some(&c.a.token), &malformed);
    assert_eq!((r.status, r.error_code()), (400, "invalid_limit"));
    // A read let in is audited with its outcome, found or not.
    assert_eq!(app.get(&read, Some(&c.a.token)).status, 200);
    assert_eq!(
        app.get("/api/v1/patients/999999", Some(&c.a.token)).status,
        404
    );
    // Every audited read takes the same path.
    let reads = [
        read.clone(),
        format!("/api/v1/patients/{id}/history"),
        format!("/api/v1/patients/{id}/observations"),
    ];
    for path in &reads {
        assert_eq!(app.get(path, None).status, 401, "{path}");
        assert_eq!(app.get(path, Some(&analyst)).status, 403, "{path}");
        assert_eq!(app.get(path, Some(&c.b.token)).status, 200, "{path}");
    }
    let bad_page = json!({"limit": 0, "status": "lost"});
    let r = app.post("/api/v1/prescriptions/search", Some(&analyst), &bad_page);
    assert_eq!((r.status, r.error_code()), (403, "forbidden"));
    let r = app.post("/api/v1/prescriptions/search", Some(&c.a.token), &bad_page);
    assert_eq!((r.status, r.error_code()), (400, "invalid_limit"));
    // A session ended is refused at the next read.
    let r = app.post("/api/v1/auth/logout", Some(&c.b.token), &json!({}));
    assert_eq!(r.status, 204);
    for path in &reads {
        assert_eq!(app.get(path, Some(&c.b.token)).status, 401, "{path}");
    }
    for search in ["/api/v1/patients/search", "/api/v1/prescriptions/search"] {
        assert_eq!(app.post(search, Some(&c.b.token), &json!({})).status, 401);
    }

    let page = app.get("/api/v1/admin/audit?limit=500", Some(&admin));
    let items = page.body["items"].as_array().unwrap();
    let count = |action: &str, outcome: &str, actor: &str| {
        items
            .iter()
            .filter(|e| {
                e["action"] == action && e["outcome"] == outcome && e["actor_login"] == actor
            })
            .count()
    };
    assert_eq!(count("access.denied", "forbidden", "analyst"), 6);
    let denied: Vec<&str> = items
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .filter_map(|e| e["object_id"].as_str())
        .collect();
    assert!(denied.contains(&"GET /api/v1/patients/{id}"), "{denied:?}");
    assert!(
        denied.contains(&"POST /api/v1/patients/search"),
        "{denied:?}"
    );
    assert_eq!(count("patients.read", "ok", "h1.a"), 1);
    assert_eq!(count("patients.read", "not_found", "h1.a"), 1);
    // Refusals before the read are not reads; the malformed search is not either.
    assert_eq!(count("patients.read", "forbidden", "analyst"), 0);
    assert_eq!(count("patients.search", "invalid_limit", "h1.a"), 0);
    assert_eq!(count("prescriptions.search", "invalid_limit", "h1.a"), 0);
    // h1.b's reads before the logout, none after it.
    assert_eq!(count("patients.read", "ok", "h1.b"), 1);
    assert_eq!(count("patients.history", "ok", "h1.b"), 1);
    assert_eq!(count("observations.read", "ok", "h1.b"), 1);
    assert_eq!(count("patients.search", "ok", "h1.b"), 0);
}

/// A read by id trusts the session as it was last found only while nothing it depends on has
/// changed (`routes::read_one_audited_as`): every change of the account is seen at the next
/// read, and each read is audited once, whichever way it went.
fn a_remembered_session_sees_each_change_of_its_account_at_the_next_read(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let elsewhere = app.create_institution(&admin, "H2", "Institution H2");
    let id = register(&app, &c, "Соколова", "Анна", "1951-02-03")["id"]
        .as_i64()
        .unwrap();
    let read = format!("/api/v1/patients/{id}");
    let account = format!("/api/v1/admin/users/{}", c.a.id);
    let status = || app.get(&read, Some(&c.a.token)).status;
    let change = |body: Value| {
        let r = app.put(&account, Some(&admin), &body);
        assert_eq!(r.status, 200, "{:?}", r.body);
    };

    // Found, then found again from the remembered session.
    assert_eq!(status(), 200);
    assert_eq!(status(), 200);
    // Roles that no longer grant `patients`: refused at once; granted again: let in.
    change(json!({"roles": ["ministry"]}));
    assert_eq!(status(), 403);
    change(json!({"roles": ["user"]}));
    assert_eq!(status(), 200);
    // Moved to another institution: the patient is not the account's to read any more.
    change(json!({"institution_id": elsewhere}));
    assert_eq!(status(), 404);
    change(json!({"institution_id": c.institution_id}));
    assert_eq!(status(), 200);
    // Another account's change moves the epoch on too; this session is looked up again.
    change_other(&app, &admin, c.b.id);
    assert_eq!(status(), 200);
    // De-registered: the session is over.
    let r = app.delete(&account, Some(&admin));
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(status(), 401);

    let page = app.get("/api/v1/admin/audit?limit=500", Some(&admin));
    let reads: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "patients.read" && e["actor_login"] == "h1.a")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(reads, ["ok", "ok", "not_found", "ok", "ok", "ok"]);
}

/// Renames another account (any change of any account moves the auth epoch on).
fn change_other(app: &TestApp, admin: &str, user: i64) {
    let r = app.put(
        &format!("/api/v1/admin/users/{user}"),
        Some(admin),
        &json!({"full_name": "Renamed"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

on_both_backends!(
    patients_are_registered_read_and_edited,
    reads_authenticate_in_their_own_transaction,
    a_remembered_session_sees_each_change_of_its_account_at_the_next_read,
    a_stale_write_is_refused_and_nothing_is_lost,
    another_institution_sees_nothing,
    prescriptions_are_written_edited_and_cancelled,
    observations_keep_free_text_sealed,
    no_identifying_data_reaches_the_server,
);
