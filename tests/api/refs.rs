use palreg_tests::{Backend, PASSWORD, on_both_backends, spawn_app};
use serde_json::json;

fn reference_books_are_seeded(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_user(&admin, "reader", &["ministry"], None);
    let reader = app.login("reader", PASSWORD);

    let diagnoses = app.get("/api/v1/refs/diagnoses", Some(&reader));
    assert_eq!(diagnoses.status, 200);
    let codes: Vec<&str> = diagnoses
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    // All of chapter II (C00–D48) as three-character categories, with WHO's gaps.
    let chapter_two: Vec<&&str> = codes
        .iter()
        .filter(|c| c.starts_with('C') || (c.starts_with('D') && &c[1..3] <= "48"))
        .collect();
    assert_eq!(chapter_two.len(), 137, "{chapter_two:?}");
    for code in [
        "C00", "C34", "C50", "C97", "D00", "D48", "I50", "J44", "G30", "G12.2", "N18",
    ] {
        assert!(codes.contains(&code), "{code} missing");
    }
    for gap in ["C27", "C35", "C42", "C59", "C87", "D08"] {
        assert!(!codes.contains(&gap), "{gap} is not an ICD-10 category");
    }
    let c50 = diagnoses
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "C50")
        .unwrap();
    assert_eq!(c50["block"], "C50-C50");
    assert_eq!(
        c50["name_ru"],
        "Злокачественное новообразование молочной железы"
    );

    let meds = app.get("/api/v1/refs/medicaments", Some(&reader));
    let meds = meds.body.as_array().unwrap();
    let morphine: Vec<_> = meds.iter().filter(|m| m["inn"] == "morphine").collect();
    assert!(morphine.len() >= 3);
    assert!(
        morphine
            .iter()
            .all(|m| m["atc"] == "N02AA01" && m["controlled"] == true)
    );
    let fentanyl = meds
        .iter()
        .find(|m| m["inn"] == "fentanyl" && m["dosage_form"].as_str().unwrap().contains("patch"))
        .expect("fentanyl patch");
    assert_eq!(fentanyl["atc"], "N02AB03");
    assert!(meds.iter().any(|m| m["inn"] == "oxycodone"));
    assert!(
        meds.iter()
            .any(|m| m["inn"] == "paracetamol" && m["controlled"] == false)
    );

    let statuses = app.get("/api/v1/refs/patient-statuses", Some(&reader));
    let codes: Vec<&str> = statuses
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["deceased", "discharged", "registered"]);
    for book in ["care-forms", "needs", "districts", "institutions"] {
        assert_eq!(
            app.get(&format!("/api/v1/refs/{book}"), Some(&reader))
                .status,
            200,
            "{book}"
        );
    }
    assert!(
        app.get("/api/v1/refs/needs", Some(&reader))
            .body
            .as_array()
            .unwrap()
            .len()
            >= 20
    );
    assert_eq!(app.get("/api/v1/refs/spells", Some(&reader)).status, 404);
    assert_eq!(app.get("/api/v1/refs/diagnoses", None).status, 401);
}

fn administrators_edit_books_in_any_script(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let district = app.get("/api/v1/refs/districts", Some(&admin)).body[0]["id"]
        .as_i64()
        .unwrap();
    let r = app.post(
        "/api/v1/refs/institutions",
        Some(&admin),
        &json!({"code": "HOSP-1", "name": "Хоспис «Надежда», г. Петрозаводск", "district_id": district}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["name"], "Хоспис «Надежда», г. Петрозаводск");
    assert_eq!(r.body["district_id"], district);
    let id = r.body["id"].as_i64().unwrap();
    let got = app.get(&format!("/api/v1/refs/institutions/{id}"), Some(&admin));
    assert_eq!(got.body, r.body);

    let r = app.post(
        "/api/v1/refs/medicaments",
        Some(&admin),
        &json!({"code": "TAP-TAB-50", "name": "Tapentadol 50 mg", "name_ru": "Тапентадол, таблетки 50 мг", "inn": "tapentadol", "atc": "n02ax06", "dosage_form": "tablet", "strength": "50 mg", "unit": "tablet", "controlled": true}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["atc"], "N02AX06");
    assert_eq!(r.body["active"], true);
    let med = r.body["id"].as_i64().unwrap();

    let mut changed = r.body.clone();
    changed.as_object_mut().unwrap().remove("id");
    changed["name_ru"] = json!("Тапентадол 50 мг (ёлка)");
    changed["active"] = json!(false);
    let r = app.put(
        &format!("/api/v1/refs/medicaments/{med}"),
        Some(&admin),
        &changed,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name_ru"], "Тапентадол 50 мг (ёлка)");
    let active = app.get("/api/v1/refs/medicaments?active_only=true", Some(&admin));
    assert!(
        active
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != med)
    );
    let all = app.get("/api/v1/refs/medicaments", Some(&admin));
    assert!(all.body.as_array().unwrap().iter().any(|m| m["id"] == med));

    for (book, body, code) in [
        (
            "diagnoses",
            json!({"code": "XX", "name": "x", "block": "C00-C14"}),
            "invalid_icd10",
        ),
        (
            "diagnoses",
            json!({"code": "C99", "name": "x", "block": "C14-C00"}),
            "invalid_block",
        ),
        (
            "medicaments",
            json!({"code": "M1", "name": "m", "inn": "m", "atc": "N02", "dosage_form": "t", "strength": "1", "unit": "t", "controlled": false}),
            "invalid_atc",
        ),
        (
            "needs",
            json!({"code": "n1", "name": "n", "kind": "magic"}),
            "invalid_kind",
        ),
        (
            "care-forms",
            json!({"code": "", "name": "n"}),
            "invalid_code",
        ),
        (
            "care-forms",
            json!({"code": "ok", "name": "   "}),
            "invalid_name",
        ),
    ] {
        let r = app.post(&format!("/api/v1/refs/{book}"), Some(&admin), &body);
        assert_eq!((r.status, r.error_code()), (400, code), "{book} {body}");
    }
    let r = app.post(
        "/api/v1/refs/care-forms",
        Some(&admin),
        &json!({"code": "c", "name": "n", "colour": "red"}),
    );
    assert_eq!((r.status, r.error_code()), (422, "invalid_body"));
    let r = app.post(
        "/api/v1/refs/institutions",
        Some(&admin),
        &json!({"code": "H9", "name": "n", "district_id": 9999}),
    );
    assert_eq!((r.status, r.error_code()), (422, "unknown_reference"));
    let r = app.post(
        "/api/v1/refs/institutions",
        Some(&admin),
        &json!({"code": "HOSP-1", "name": "dup"}),
    );
    assert_eq!((r.status, r.error_code()), (409, "code_taken"));
    assert_eq!(
        app.put(
            "/api/v1/refs/institutions/9999",
            Some(&admin),
            &json!({"code": "Q", "name": "q"})
        )
        .status,
        404
    );
}

fn an_entry_in_use_is_kept(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let used = app.create_institution(&admin, "USED", "Used");
    let unused = app.create_institution(&admin, "UNUSED", "Unused");
    app.create_user(&admin, "doc", &["user"], Some(used));
    let r = app.delete(&format!("/api/v1/refs/institutions/{used}"), Some(&admin));
    assert_eq!((r.status, r.error_code()), (409, "in_use"));
    assert_eq!(
        app.get(&format!("/api/v1/refs/institutions/{used}"), Some(&admin))
            .status,
        200
    );
    // A district used by an institution is in use too.
    let districts = app.get("/api/v1/refs/districts", Some(&admin));
    let d = districts.body[0]["id"].as_i64().unwrap();
    app.put(
        &format!("/api/v1/refs/institutions/{unused}"),
        Some(&admin),
        &json!({"code": "UNUSED", "name": "Unused", "district_id": d}),
    );
    assert_eq!(
        app.delete(&format!("/api/v1/refs/districts/{d}"), Some(&admin))
            .status,
        409
    );
    app.put(
        &format!("/api/v1/refs/institutions/{unused}"),
        Some(&admin),
        &json!({"code": "UNUSED", "name": "Unused"}),
    );
    assert_eq!(
        app.delete(&format!("/api/v1/refs/institutions/{unused}"), Some(&admin))
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/api/v1/refs/institutions/{unused}"), Some(&admin))
            .status,
        404
    );
    assert_eq!(
        app.delete(&format!("/api/v1/refs/districts/{d}"), Some(&admin))
            .status,
        204
    );
}

on_both_backends!(
    reference_books_are_seeded,
    administrators_edit_books_in_any_script,
    an_entry_in_use_is_kept,
);
