use palreg_tests::{Backend, spawn_app};

/// The served document is OpenAPI 3 and equals the snapshot: an API change is a visible diff
/// (`cargo insta review` after an intended change).
#[test]
fn openapi_document_is_snapshotted() {
    let app = spawn_app(Backend::Sqlite);
    let r = app.get("/api/v1/openapi.json", None);
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.body["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/admin/users",
        "/api/v1/refs/{book}",
        "/api/v1/admin/audit",
        "/healthz",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    insta::assert_json_snapshot!("openapi", r.body);
}
