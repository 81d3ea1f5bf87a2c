use std::collections::BTreeMap;

use client_crypto::Sex;
use palreg_tests::clinic::{Clinic, clinic, passport, ref_id};
use palreg_tests::{Backend, PASSWORD, TestApp, on_both_backends, spawn_app};
use serde_json::{Value, json};

/// Downloads a report: its bytes and its signature header.
fn download(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = agent
        .get(&app.url(path))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (sig, sha) = (
        header("x-palreg-signature"),
        header("x-palreg-report-sha256"),
    );
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (status, bytes, sig, sha)
}

/// The PDF's text with all white space removed (table cells wrap their text across lines).
fn pdf_text(bytes: &[u8]) -> String {
    pdf_extract::extract_text_from_mem(bytes)
        .expect("PDF text")
        .split_whitespace()
        .collect()
}

struct Scene {
    app: TestApp,
    admin: String,
    a: Clinic,
    b: Clinic,
    /// Independent model: medicament code → total quantity in A (not cancelled).
    a_totals: BTreeMap<&'static str, f64>,
    a_numbers: Vec<String>,
    b_numbers: Vec<String>,
}

fn patient(app: &TestApp, c: &Clinic, surname: &str, year: i32, status: &str, extra: Value) -> i64 {
    let mut record = json!({
        "sex": if year % 2 == 0 { "F" } else { "M" },
        "birth_year": year,
        "diagnosis_id": ref_id(app, &c.a.token, "diagnoses", if year % 3 == 0 { "C34" } else { "C50" }),
        "status": status,
        "registered_on": "2026-01-10",
        "needs": [],
    });
    for (k, v) in extra.as_object().unwrap() {
        record[k] = v.clone();
    }
    let (_, body) = c.new_patient(
        &passport(surname, "Тест", &format!("{year}-01-01"), Sex::Female),
        record,
    );
    let r = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_i64().unwrap()
}

fn scene(backend: Backend) -> Scene {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let a = clinic(&app, &admin, "HA");
    let b = clinic(&app, &admin, "HB");
    let bed = ref_id(&app, &a.a.token, "needs", "functional_bed");
    let mut a_ids = Vec::new();
    for i in 0..12 {
        let extra = if i < 6 {
            json!({"needs": [bed]})
        } else {
            json!({})
        };
        a_ids.push(patient(
            &app,
            &a,
            &format!("Пациентова{i}"),
            1940 + i,
            "registered",
            extra,
        ));
    }
    patient(
        &app,
        &a,
        "Ушедшая",
        1939,
        "deceased",
        json!({"deceased_on": "2026-02-20"}),
    );
    let b_ids: Vec<i64> = (0..3)
        .map(|i| patient(&app, &b, "Другая", 1950 + i, "registered", json!({})))
        .collect();
    let rx = |c: &Clinic, pid: i64, code: &str, qty: f64, on: &str| {
        let med = ref_id(&app, &c.a.token, "medicaments", code);
        let r = app.post(
            "/api/v1/prescriptions",
            Some(&c.a.token),
            &json!({"patient_id": pid, "prescribed_on": on, "medicament_id": med, "dose": 10, "dose_unit": "mg", "route": "oral", "frequency": "каждые 4 часа", "quantity": qty, "start_on": on}),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body.clone()
    };
    let mut a_totals = BTreeMap::new();
    let mut a_numbers = Vec::new();
    for (i, pid) in a_ids.iter().enumerate() {
        let (code, qty) = if i % 2 == 0 {
            ("MOR-TAB-10", 60.0)
        } else {
            ("PAR-TAB-500", 20.0 + i as f64)
        };
        let r = rx(&a, *pid, code, qty, "2026-02-01");
        a_numbers.push(r["number"].as_str().unwrap().to_string());
        *a_totals.entry(code).or_insert(0.0) += qty;
    }
    // A cancelled prescription is listed but not counted in the summary's needs.
    let cancelled = rx(&a, a_ids[0], "MOR-TAB-10", 1000.0, "2026-02-02");
    let r = app.post(
        &format!("/api/v1/prescriptions/{}/cancel", cancelled["id"]),
        Some(&a.a.token),
        &json!({"version": 1, "reason": "ошибка"}),
    );
    assert_eq!(r.status, 200);
    let b_numbers = b_ids
        .iter()
        .map(|pid| {
            rx(&b, *pid, "MOR-TAB-10", 7.0, "2026-02-03")["number"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    Scene {
        app,
        admin,
        a,
        b,
        a_totals,
        a_numbers,
        b_numbers,
    }
}

fn the_prescription_report_matches_the_data(backend: Backend) {
    let s = scene(backend);
    let (status, pdf, sig, sha) = download(
        &s.app,
        "/api/v1/reports/prescriptions.pdf?from=2026-01-01&to=2026-12-31&lang=ru",
        &s.a.b.token,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert!(pdf.starts_with(b"%PDF"));
    let text = pdf_text(&pdf);
    // Cyrillic round-trips: the Russian medicament name and the frequency.
    assert!(text.contains("Морфин"), "{text}");
    assert!(text.contains("каждые4часа"), "{text}");
    // Route, unit and status are the API's codes and the book's English unit words: the
    // Russian report says them in Russian.
    for russian in ["внутрь", "таб.", "действует", "отменено"] {
        assert!(text.contains(russian), "{russian} missing in\n{text}");
    }
    for english in ["oral", "tablet", "active", "cancelled"] {
        assert!(!text.contains(english), "{english} in\n{text}");
    }
    for number in &s.a_numbers {
        // The number cell wraps after "2026-"; its serial part is what identifies it.
        let serial = number.rsplit('-').next().unwrap();
        assert!(text.contains(serial), "{number} missing in\n{text}");
    }
    // Another institution's prescriptions never appear (same numbering, other institution:
    // check by pseudonym instead).
    assert!(!s.b_numbers.is_empty());
    let b_patients = s
        .app
        .post("/api/v1/patients/search", Some(&s.b.a.token), &json!({}));
    for p in b_patients.body["items"].as_array().unwrap() {
        let short = &p["pseudonym"].as_str().unwrap()[..8];
        assert!(!text.contains(short), "B's patient {short} in A's report");
    }
    // Totals equal an independent sum (the cancelled one is listed in the report's rows).
    let morphine = s.a_totals["MOR-TAB-10"] + 1000.0;
    let paracetamol = s.a_totals["PAR-TAB-500"];
    for total in [morphine, paracetamol] {
        let shown = format!("{total}").replace('.', ",");
        assert!(text.contains(&shown), "total {shown} missing in\n{text}");
    }
    // The signature comes with it and verifies against the published key.
    let key = s.app.get("/api/v1/reports/public-key", None).body["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let sig = sig.expect("signature header");
    palreg_reports::verify_file(&pdf, &sig, &key).expect("authentic");
    for at in [0, pdf.len() / 2, pdf.len() - 1] {
        let mut changed = pdf.clone();
        changed[at] ^= 0x01;
        assert!(
            palreg_reports::verify_file(&changed, &sig, &key).is_err(),
            "byte {at}"
        );
    }
    // The detached .sig is downloadable by the report's hash and verifies offline too.
    let sha = sha.expect("sha header");
    let sig_file = s.app.get(
        &format!("/api/v1/reports/issued/{sha}.sig"),
        Some(&s.a.b.token),
    );
    assert_eq!(sig_file.status, 200);
    let sig_text = sig_file.body.as_str().unwrap().to_string();
    palreg_reports::verify_file(&pdf, &sig_text, &key).expect("detached signature");
    assert_eq!(
        s.app
            .get(
                &format!("/api/v1/reports/issued/{}.sig", "0".repeat(64)),
                Some(&s.a.b.token)
            )
            .status,
        404
    );
    // palreg verify-report, offline, with the server's key from its data directory.
    let dir = tempfile::tempdir().unwrap();
    let (pdf_path, sig_path) = (dir.path().join("r.pdf"), dir.path().join("r.sig"));
    std::fs::write(&pdf_path, &pdf).unwrap();
    std::fs::write(&sig_path, &sig_text).unwrap();
    let verify = |file: &std::path::Path| {
        use clap::Parser;
        let cli = palreg_server::cli::Cli::try_parse_from([
            "palreg",
            "--database-url",
            "sqlite://unused.db",
            "--data-dir",
            s.app.db.dir.path().to_str().unwrap(),
            "verify-report",
            file.to_str().unwrap(),
            sig_path.to_str().unwrap(),
        ])
        .unwrap();
        palreg_server::cli::run(cli).unwrap()
    };
    assert_eq!(verify(&pdf_path), 0);
    let mut tampered = pdf.clone();
    let last = tampered.len() - 10;
    tampered[last] ^= 0x20;
    std::fs::write(&pdf_path, &tampered).unwrap();
    assert_eq!(verify(&pdf_path), 1);
    // Generation is audited with its parameters.
    let audit = s.app.get(
        "/api/v1/admin/audit?action=reports.prescriptions",
        Some(&s.admin),
    );
    let entry = &audit.body["items"][0];
    assert_eq!(entry["actor_login"], "ha.b");
    assert_eq!(entry["object_id"], sha);
    assert!(entry["details"].as_str().unwrap().contains("2026-01-01"));
}

/// Every shown count is 0 or at least k, and no hidden cell can be recovered from its row.
fn assert_suppressed(rows: &[Value], k: u64) {
    for row in rows {
        let cells: Vec<&Value> = row["by_institution"]
            .as_array()
            .unwrap()
            .iter()
            .chain([&row["total"]])
            .collect();
        for c in &cells {
            if let Some(n) = c.as_u64() {
                assert!(n == 0 || n >= k, "visible small cell {n} in {row}");
            }
        }
        let hidden = cells.iter().filter(|c| c.is_null()).count();
        assert!(
            hidden != 1,
            "a lone hidden cell is derivable from its row: {row}"
        );
    }
}

fn the_summary_is_suppressed_and_scoped(backend: Backend) {
    let s = scene(backend);
    s.app.create_user(&s.admin, "analyst", &["ministry"], None);
    let ministry = s.app.login("analyst", PASSWORD);
    // Exact numbers, from A alone (no small cells there).
    let r = s.app.get(
        &format!(
            "/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31&institutions={}",
            s.a.institution_id
        ),
        Some(&ministry),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let summary = &r.body["summary"];
    assert_eq!(summary["k"], 5);
    assert_eq!(summary["institutions"], json!(["Institution HA"]));
    let register: BTreeMap<String, Value> = summary["register"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["key"].as_str().unwrap().to_string(), row.clone()))
        .collect();
    // A: 13 registered in the period, 12 on the register at the end, 1 deceased.
    assert_eq!(register["newly_registered"]["by_institution"][0], 13);
    assert_eq!(register["on_register_at_start"]["by_institution"][0], 0);
    // 1 deceased is a small cell; the identity start + new = end + discharged + deceased
    // would reveal it from the others, so one more of them is hidden too.
    assert!(register["deceased"]["by_institution"][0].is_null());
    let end = &register["on_register_at_end"]["by_institution"][0];
    assert!(end.is_null() || end == 12, "{end}");
    // The needs table: 6 of A's patients need a functional bed.
    let bed = summary["needs"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"].as_str().unwrap().contains("bed"))
        .expect("bed row");
    assert_eq!(bed["by_institution"][0], 6);
    // Medicament needs exclude the cancelled prescription; controlled ones apart.
    let find = |list: &str, name: &str| {
        summary[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["medicament"].as_str().unwrap().contains(name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {list}"))
    };
    assert_eq!(
        find("controlled_medicaments", "orphine")["quantity"][0],
        json!(format!("{}", s.a_totals["MOR-TAB-10"]))
    );
    assert_eq!(
        find("medicaments", "aracetamol")["quantity"][0],
        json!(format!("{}", s.a_totals["PAR-TAB-500"]))
    );
    assert_eq!(find("medicaments", "aracetamol")["patients"][0], 6);

    // Both institutions: B's 3 patients are a small cell, hidden, and so is whatever would
    // reveal them from a total.
    let r = s.app.get(
        "/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31",
        Some(&ministry),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let summary = &r.body["summary"];
    assert_eq!(
        summary["institutions"],
        json!(["Institution HA", "Institution HB"])
    );
    let register: BTreeMap<String, Value> = summary["register"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["key"].as_str().unwrap().to_string(), row.clone()))
        .collect();
    assert!(register["newly_registered"]["by_institution"][1].is_null());
    assert_suppressed(summary["register"].as_array().unwrap(), 5);
    for table in ["icd10_blocks", "age_sex", "care_forms", "needs"] {
        assert_suppressed(summary[table]["rows"].as_array().unwrap(), 5);
    }
    let morphine = summary["controlled_medicaments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["medicament"].as_str().unwrap().contains("orphine"))
        .expect("morphine");
    assert!(morphine["quantity"][1].is_null(), "B's 3 patients: hidden");
    // The same data as FHIR and PDF, signed.
    let (status, fhir, sig, _) = download(
        &s.app,
        "/api/v1/reports/summary.fhir.json?from=2026-01-01&to=2026-12-31",
        &ministry,
    );
    assert_eq!(status, 200);
    let fhir: Value = serde_json::from_slice(&fhir).unwrap();
    assert_eq!(fhir["resourceType"], "MeasureReport");
    assert!(sig.is_some());
    let (status, pdf, _, _) = download(
        &s.app,
        "/api/v1/reports/summary.pdf?from=2026-01-01&to=2026-12-31&lang=ru",
        &ministry,
    );
    assert_eq!(status, 200);
    let text = pdf_text(&pdf);
    assert!(text.contains("<5"), "suppressed cells shown as <5");
    assert!(text.contains("InstitutionHA"));
    // Scope: a clinician summarizes only its own institution.
    let own = s.app.get(
        "/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31",
        Some(&s.a.a.token),
    );
    assert_eq!(own.status, 200);
    assert_eq!(
        own.body["summary"]["institutions"],
        json!(["Institution HA"])
    );
    let other = s.app.get(
        &format!(
            "/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31&institutions={}",
            s.b.institution_id
        ),
        Some(&s.a.a.token),
    );
    assert_eq!(other.status, 403);
    // The ministry never gets a prescription report.
    let r = s.app.get(
        "/api/v1/reports/prescriptions.pdf?from=2026-01-01&to=2026-12-31",
        Some(&ministry),
    );
    assert_eq!(r.status, 403);
    let r = s.app.get(
        "/api/v1/reports/summary.json?from=2026-12-31&to=2026-01-01",
        Some(&ministry),
    );
    assert_eq!((r.status, r.error_code()), (400, "invalid_dates"));
    assert_eq!(
        s.app
            .get(
                "/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31",
                None
            )
            .status,
        401
    );
}

/// Each patient counts once: a death after a discharge is not a second outflow of the
/// register, and a patient prescribed two medicaments the report names alike (one Russian
/// name, one unit) is one patient of that row.
fn the_summary_counts_each_patient_once(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "HC");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(patient(
            &app,
            &c,
            &format!("Выписанная{i}"),
            1940 + i,
            "deceased",
            json!({"discharged_on": "2026-03-10", "deceased_on": "2026-05-20"}),
        ));
    }
    // Two entries of the needs book named alike in Russian; each treated patient has both.
    let mut oxygen = Vec::new();
    for (code, name) in [
        ("o2_home", "Home oxygen"),
        ("o2_concentrator", "Oxygen concentrator at home"),
    ] {
        let r = app.post(
            "/api/v1/refs/needs",
            Some(&admin),
            &json!({"code": code, "name": name, "name_ru": "Кислород на дому", "kind": "equipment"}),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
        oxygen.push(r.body["id"].as_i64().unwrap());
    }
    let treated: Vec<i64> = (0..5)
        .map(|i| {
            let needs = json!({ "needs": oxygen });
            patient(
                &app,
                &c,
                &format!("Лечимая{i}"),
                1950 + i,
                "registered",
                needs,
            )
        })
        .collect();
    let mut meds = Vec::new();
    for (code, name) in [
        ("MS-1", "Morphine sulfate"),
        ("MH-1", "Morphine hydrochloride"),
    ] {
        let r = app.post(
            "/api/v1/refs/medicaments",
            Some(&admin),
            &json!({"code": code, "name": name, "name_ru": "Морфин", "inn": "morphine", "atc": "N02AA01", "dosage_form": "tablet", "strength": "10 mg", "unit": "tablet", "controlled": true}),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
        meds.push(r.body["id"].as_i64().unwrap());
    }
    for pid in &treated {
        for med in &meds {
            let r = app.post(
                "/api/v1/prescriptions",
                Some(&c.a.token),
                &json!({"patient_id": pid, "prescribed_on": "2026-02-01", "medicament_id": med, "dose": 10, "dose_unit": "mg", "route": "oral", "frequency": "утром", "quantity": 10, "start_on": "2026-02-01"}),
            );
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
    }
    let summary = |query: &str| {
        let r = app.get(
            &format!(
                "/api/v1/reports/summary.json?{query}&institutions={}",
                c.institution_id
            ),
            Some(&admin),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["summary"].clone()
    };
    let register = |summary: &Value| -> Vec<Value> {
        let rows: BTreeMap<String, Value> = summary["register"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let key = row["key"].as_str().unwrap().to_string();
                (key, row["by_institution"][0].clone())
            })
            .collect();
        [
            "on_register_at_start",
            "on_register_at_end",
            "discharged",
            "deceased",
        ]
        .iter()
        .map(|k| rows[*k].clone())
        .collect()
    };
    // April to June: the five left the register on March 10th; their deaths are no outflow.
    let spring = register(&summary("from=2026-04-01&to=2026-06-30"));
    assert_eq!(spring, [json!(5), json!(5), json!(0), json!(0)]);
    // March to May: five discharged, none deceased (start + new = end + outflow).
    let march = register(&summary("from=2026-03-01&to=2026-05-31"));
    assert_eq!(march, [json!(10), json!(5), json!(5), json!(0)]);
    // In Russian both medicaments are «Морфин» in tablets: one row, five patients.
    let russian = summary("from=2026-01-01&to=2026-06-30&lang=ru");
    let rows: Vec<&Value> = russian["controlled_medicaments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["medicament"] == "Морфин")
        .collect();
    assert_eq!(rows.len(), 1, "{russian:#}");
    assert_eq!(rows[0]["patients_total"], 5, "{:#}", rows[0]);
    let oxygen: Vec<&Value> = russian["needs"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["key"] == "Кислород на дому")
        .collect();
    assert_eq!(oxygen.len(), 1, "{russian:#}");
    assert_eq!(oxygen[0]["total"], 5, "{:#}", oxygen[0]);
}

fn the_same_report_asked_twice_is_issued_twice(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "HT");
    let path = "/api/v1/reports/summary.pdf?from=2026-01-01&to=2026-06-30";
    // The document names the minute it was made: two requests within a minute give the same
    // bytes, hence the same SHA-256 — the registry's key. (Retried once if a minute turned.)
    let mut same = false;
    for _ in 0..2 {
        let (s1, pdf1, sig1, sha1) = download(&app, path, &c.a.token);
        let (s2, pdf2, sig2, sha2) = download(&app, path, &c.a.token);
        assert_eq!(s1, 200, "{}", String::from_utf8_lossy(&pdf1));
        assert_eq!(s2, 200, "{}", String::from_utf8_lossy(&pdf2));
        if sha1 == sha2 {
            assert_eq!(pdf1, pdf2);
            assert_eq!(sig1, sig2, "Ed25519 signs the same bytes the same way");
            let sha = sha1.unwrap();
            let sig = app.get(
                &format!("/api/v1/reports/issued/{sha}.sig"),
                Some(&c.a.token),
            );
            assert_eq!(sig.status, 200);
            same = true;
            break;
        }
    }
    assert!(same, "two requests in a row never fell within one minute");
    let audit = app.get("/api/v1/admin/audit?action=reports.summary", Some(&admin));
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    let ok = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .count();
    assert!(ok >= 2, "every issue is audited: {:?}", audit.body);
}

on_both_backends!(
    the_prescription_report_matches_the_data,
    the_summary_is_suppressed_and_scoped,
    the_summary_counts_each_patient_once,
    the_same_report_asked_twice_is_issued_twice
);
