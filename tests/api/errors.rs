use palreg_tests::{Backend, on_both_backends, spawn_app};
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

on_both_backends!(
    bad_input_gets_a_json_error_and_a_4xx,
    health_checks_the_database
);
