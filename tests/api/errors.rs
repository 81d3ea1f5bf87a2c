use palreg_tests::clinic::{clinic, passport, record, ref_id};
use palreg_tests::{Backend, PASSWORD, on_both_backends, spawn_app};
use serde_json::json;

fn bad_input_gets_a_json_error_and_a_4xx(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let t = Some(admin.as_str());

    let r = app.send_raw(
        "POST",
        "/api/v1/refs/institutions",
        t,
        "application/json",
        b"{not json",
    );
    assert_eq!((r.status, r.error_code()), (400, "invalid_json"));
    assert!(r.body["error"]["message"].as_str().unwrap().len() > 5);

    let r = app.send_raw("POST", "/api/v1/admin/users", t, "text/plain", b"login=x");
    assert_eq!(
        (r.status, r.error_code()),
        (400, "unsupported_content_type")
    );

    let r = app.post("/api/v1/admin/users", t, &json!({"login": 5}));
    assert_eq!((r.status, r.error_code()), (422, "invalid_body"));

    let big = vec![b'a'; 300 * 1024];
    let mut body = b"{\"code\":\"".to_vec();
    body.extend_from_slice(&big);
    body.extend_from_slice(b"\"}");
    let r = app.send_raw(
        "POST",
        "/api/v1/refs/care-forms",
        t,
        "application/json",
        &body,
    );
    assert_eq!((r.status, r.error_code()), (413, "payload_too_large"));

    let r = app.get("/api/v1/admin/users/not-a-number", t);
    assert_eq!((r.status, r.error_code()), (400, "invalid_path"));
    let r = app.get("/api/v1/admin/users/99999999999999999999999", t);
    assert_eq!(r.status, 400);

    let r = app.get("/api/v1/nothing-here", t);
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    let r = app.get("/api/v1/admin/users?active_only=maybe", t);
    assert_eq!((r.status, r.error_code()), (400, "invalid_query"));

    // Odd but valid Unicode is data, not an error.
    let r = app.post(
        "/api/v1/refs/care-forms",
        t,
        &json!({"code": "emoji", "name": "Уход 🕊 \u{202e}"}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);

    // Security headers on every response, errors included.
    for path in ["/healthz", "/api/v1/nothing-here"] {
        let r = app.get(path, None);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{csp}"
        );
    }
}

fn health_checks_the_database(backend: Backend) {
    let app = spawn_app(backend);
    let r = app.get("/healthz", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(r.body["database"], expected);
}

/// Input that PostgreSQL cannot store or compare (a NUL, a date before 4713 BC), that would
/// overflow, or that would make the server do unbounded work gets a 4xx before it reaches the
/// database, on both backends alike.
fn hostile_input_is_refused_before_the_database(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let t = Some(c.a.token.as_str());
    let expect = |r: palreg_tests::Reply, status: u16, code: &str, what: &str| {
        assert_eq!(
            (r.status, r.error_code()),
            (status, code),
            "{what}: {:?}",
            r.body
        );
    };

    // Signing in with a NUL in the login: refused like any unknown login.
    let r = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "h1.a\u{0}", "password": PASSWORD}),
    );
    expect(r, 401, "invalid_credentials", "NUL login");

    // The audit viewer's filters.
    let a = Some(admin.as_str());
    expect(
        app.get("/api/v1/admin/audit?actor=a%00b", a),
        400,
        "invalid_filter",
        "NUL actor",
    );
    expect(
        app.get("/api/v1/admin/audit?from=-5000-01-01T00:00:00", a),
        400,
        "invalid_dates",
        "audit from 5000 BC",
    );

    // Patient search.
    for (body, code) in [
        (json!({"status": "registered\u{0}"}), "invalid_filter"),
        (json!({"icd10_block": "C00\u{0}"}), "invalid_filter"),
        (json!({"age_to": i32::MIN}), "invalid_age"),
        (json!({"age_from": 200}), "invalid_age"),
        (json!({"birth_year": 1899}), "invalid_birth_year"),
        (json!({"birth_year": 99999}), "invalid_birth_year"),
        (json!({"registered_from": "-5000-01-01"}), "invalid_dates"),
    ] {
        let what = body.to_string();
        expect(
            app.post("/api/v1/patients/search", t, &body),
            400,
            code,
            &what,
        );
    }
    expect(
        app.post(
            "/api/v1/prescriptions/search",
            t,
            &json!({"from": "-5000-01-01"}),
        ),
        400,
        "invalid_dates",
        "prescriptions from 5000 BC",
    );

    // An observation: dates, the note's reference, the needs lists.
    let (_, body) = c.new_patient(
        &passport("Орлова", "Нина", "1941-07-01", client_crypto::Sex::Female),
        record(&app, &c.a.token, 1941),
    );
    let created = app.post("/api/v1/patients", t, &body);
    assert_eq!(created.status, 201, "{:?}", created.body);
    let pid = created.body["id"].as_i64().unwrap();
    let observe = |body: serde_json::Value| {
        app.post(&format!("/api/v1/patients/{pid}/observations"), t, &body)
    };
    let need = ref_id(&app, &c.a.token, "needs", "functional_bed");
    let many: Vec<i64> = (1..=101).collect();
    for (body, code) in [
        (json!({"observed_on": "-5000-01-01"}), "invalid_dates"),
        (
            json!({"observed_on": "2026-02-01", "needs_added": [need, need]}),
            "invalid_needs",
        ),
        (
            json!({"observed_on": "2026-02-01", "needs_added": [need], "needs_removed": [need]}),
            "invalid_needs",
        ),
        (
            json!({"observed_on": "2026-02-01", "needs_added": many}),
            "invalid_needs",
        ),
        (
            json!({"observed_on": "2026-02-01", "note": {"note_ref": "n\u{0}", "sealed": "x"}}),
            "invalid_note",
        ),
    ] {
        let what = body.to_string();
        expect(observe(body), 400, code, &what);
    }
    expect(
        observe(json!({"observed_on": "2026-02-01", "needs_added": [999_999]})),
        422,
        "unknown_need",
        "unknown need",
    );
    assert_eq!(
        app.get(&format!("/api/v1/patients/{pid}/observations"), t)
            .body
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing was recorded"
    );

    // A prescription dated before the register's dates; a version that would overflow.
    let med = ref_id(&app, &c.a.token, "medicaments", "MOR-TAB-10");
    let rx = json!({"patient_id": pid, "prescribed_on": "-5000-01-01", "medicament_id": med, "dose": 5, "dose_unit": "mg", "route": "oral", "frequency": "q4h", "quantity": 30, "start_on": "-5000-01-01"});
    expect(
        app.post("/api/v1/prescriptions", t, &rx),
        400,
        "invalid_dates",
        "rx 5000 BC",
    );
    let r = app.put(
        &format!("/api/v1/patients/{pid}"),
        t,
        &json!({"version": i32::MAX, "record": record(&app, &c.a.token, 1941)}),
    );
    assert_eq!(r.status, 409, "a version nobody has: {:?}", r.body);

    // An import naming more distinct needs than SQLite binds parameters (32 766): refused
    // for what is wrong with its first item, not with a 500.
    let patients: Vec<_> = (0..400)
        .map(|i| {
            let (_, mut body) = c.new_patient(
                &passport("Иванова", "Анна", "1950-01-01", client_crypto::Sex::Female),
                record(&app, &c.a.token, 1950),
            );
            body["record"]["needs"] = json!(
                (0..100)
                    .map(|n| 1_000_000 + i * 100 + n)
                    .collect::<Vec<i64>>()
            );
            body
        })
        .collect();
    let r = app.post("/api/v1/patients/import", t, &json!({"patients": patients}));
    expect(r, 422, "unknown_need", "import naming 40 000 needs");

    // The import's route answers other methods with the JSON 404 of every unknown route.
    expect(
        app.get("/api/v1/patients/import", t),
        404,
        "not_found",
        "GET import",
    );

    // A summary naming one institution many times names it once; too many are refused.
    let ids = vec![c.institution_id.to_string(); 5000].join(",");
    let r = app.get(
        &format!("/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31&institutions={ids}"),
        a,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["summary"]["institutions"], json!(["Institution H1"]));
    let ids: Vec<String> = (1..=1001).map(|i| i.to_string()).collect();
    let r = app.get(
        &format!(
            "/api/v1/reports/summary.json?from=2026-01-01&to=2026-12-31&institutions={}",
            ids.join(",")
        ),
        a,
    );
    expect(r, 400, "invalid_institutions", "1001 institutions");
    expect(
        app.get(
            "/api/v1/reports/summary.json?from=-5000-01-01&to=2026-12-31",
            a,
        ),
        400,
        "invalid_dates",
        "summary from 5000 BC",
    );
}

on_both_backends!(
    hostile_input_is_refused_before_the_database,
    bad_input_gets_a_json_error_and_a_4xx,
    health_checks_the_database
);
