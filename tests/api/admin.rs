use palreg_tests::{Backend, PASSWORD, TestApp, on_both_backends, spawn_app};
use serde_json::{Value, json};

/// An institution, a clinician and a ministry analyst, with their tokens.
struct World {
    app: TestApp,
    admin: String,
    clinician: String,
    ministry: String,
    inst: i64,
}

fn world(backend: Backend) -> World {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "PCC", "Центр паллиативной помощи");
    app.create_user(&admin, "clinician", &["user"], Some(inst));
    app.create_user(&admin, "analyst", &["ministry"], None);
    let clinician = app.login("clinician", PASSWORD);
    let ministry = app.login("analyst", PASSWORD);
    World {
        app,
        admin,
        clinician,
        ministry,
        inst,
    }
}

/// A role as `GET /api/v1/admin/roles` lists it to `token`.
fn role(app: &TestApp, token: &str, name: &str) -> Value {
    let roles = app.get("/api/v1/admin/roles", Some(token));
    assert_eq!(roles.status, 200, "{:?}", roles.body);
    roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no role {name}"))
        .clone()
}

/// Every administration route, with a body where it takes one.
fn admin_routes() -> Vec<(&'static str, &'static str, Value)> {
    let role = json!({"name": "x", "permissions": []});
    vec![
        ("GET", "/api/v1/admin/users", Value::Null),
        (
            "POST",
            "/api/v1/admin/users",
            json!({"login": "zed", "full_name": "Z", "password": PASSWORD, "roles": ["user"]}),
        ),
        ("GET", "/api/v1/admin/users/1", Value::Null),
        ("PUT", "/api/v1/admin/users/1", json!({"full_name": "Y"})),
        ("DELETE", "/api/v1/admin/users/1", Value::Null),
        ("GET", "/api/v1/admin/roles", Value::Null),
        ("POST", "/api/v1/admin/roles", role),
        ("PUT", "/api/v1/admin/roles/2", json!({"description": "d"})),
        ("DELETE", "/api/v1/admin/roles/2", Value::Null),
        ("GET", "/api/v1/admin/permissions", Value::Null),
        ("GET", "/api/v1/admin/audit", Value::Null),
        (
            "POST",
            "/api/v1/refs/institutions",
            json!({"code": "X", "name": "X"}),
        ),
        (
            "PUT",
            "/api/v1/refs/institutions/1",
            json!({"code": "X", "name": "X"}),
        ),
        ("DELETE", "/api/v1/refs/institutions/1", Value::Null),
        ("POST", "/api/v1/refs/medicaments", json!({})),
        ("DELETE", "/api/v1/refs/diagnoses/1", Value::Null),
    ]
}

fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> palreg_tests::Reply {
    match method {
        "GET" => app.get(path, token),
        "DELETE" => app.delete(path, token),
        "POST" => app.post(path, token, body),
        "PUT" => app.put(path, token, body),
        other => panic!("{other}"),
    }
}

fn role_matrix_refuses_everyone_but_administrators(backend: Backend) {
    let w = world(backend);
    for (method, path, body) in admin_routes() {
        let anon = call(&w.app, method, path, None, &body);
        assert_eq!(
            anon.status, 401,
            "anonymous {method} {path}: {:?}",
            anon.body
        );
        for (who, token) in [("user", &w.clinician), ("ministry", &w.ministry)] {
            let r = call(&w.app, method, path, Some(token), &body);
            assert_eq!(r.status, 403, "{who} {method} {path}: {:?}", r.body);
            assert_eq!(r.error_code(), "forbidden");
        }
    }
    // Nothing was changed by the refused calls.
    let users = w.app.get("/api/v1/admin/users", Some(&w.admin));
    assert_eq!(users.body.as_array().unwrap().len(), 3);
    // The clinician still reads what it may.
    assert_eq!(
        w.app.get("/api/v1/me", Some(&w.clinician)).body["institution"]["id"],
        w.inst
    );
    assert_eq!(
        w.app
            .get("/api/v1/refs/diagnoses", Some(&w.clinician))
            .status,
        200
    );
}

fn administrator_registers_edits_and_lists_users(backend: Backend) {
    let w = world(backend);
    let app = &w.app;
    let r = app.post(
        "/api/v1/admin/users",
        Some(&w.admin),
        &json!({"login": "Nurse.Petrova", "full_name": "Петрова Анна Сергеевна", "password": PASSWORD, "roles": ["user"], "institution_id": w.inst}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["login"], "nurse.petrova");
    assert_eq!(r.body["full_name"], "Петрова Анна Сергеевна");
    assert_eq!(r.body["roles"], json!(["user"]));
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(
        r.header("location").unwrap(),
        format!("/api/v1/admin/users/{id}")
    );

    let dup = app.post(
        "/api/v1/admin/users",
        Some(&w.admin),
        &json!({"login": "nurse.petrova", "full_name": "Другая", "password": PASSWORD, "roles": ["user"], "institution_id": w.inst}),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.error_code(), "login_taken");

    for (body, status, code) in [
        (
            json!({"login": "a1x", "full_name": "A", "password": PASSWORD, "roles": ["wizard"]}),
            422,
            "unknown_role",
        ),
        (
            json!({"login": "a2x", "full_name": "A", "password": PASSWORD, "roles": []}),
            422,
            "role_required",
        ),
        (
            json!({"login": "a3x", "full_name": "A", "password": "short", "roles": ["user"]}),
            400,
            "weak_password",
        ),
        (
            json!({"login": "я", "full_name": "A", "password": PASSWORD, "roles": ["user"]}),
            400,
            "invalid_login",
        ),
        (
            json!({"login": "a4x", "full_name": "A", "password": PASSWORD, "roles": ["user"], "institution_id": 999}),
            422,
            "unknown_institution",
        ),
    ] {
        let r = app.post("/api/v1/admin/users", Some(&w.admin), &body);
        assert_eq!((r.status, r.error_code()), (status, code), "{body}");
    }

    let r = app.put(
        &format!("/api/v1/admin/users/{id}"),
        Some(&w.admin),
        &json!({"full_name": "Петрова-Иванова Анна", "roles": ["user", "admin"]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["full_name"], "Петрова-Иванова Анна");
    assert_eq!(r.body["roles"], json!(["admin", "user"]));
    let one = app.get(&format!("/api/v1/admin/users/{id}"), Some(&w.admin));
    assert_eq!(one.body, r.body);
    assert_eq!(
        app.get("/api/v1/admin/users/99999", Some(&w.admin)).status,
        404
    );

    let only_inst = app.get(
        &format!("/api/v1/admin/users?institution_id={}", w.inst),
        Some(&w.admin),
    );
    let logins: Vec<&str> = only_inst
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["clinician", "nurse.petrova"]);

    let me_id = app.get("/api/v1/me", Some(&w.admin)).body["id"]
        .as_i64()
        .unwrap();
    let r = app.delete(&format!("/api/v1/admin/users/{me_id}"), Some(&w.admin));
    assert_eq!((r.status, r.error_code()), (409, "cannot_deregister_self"));
}

fn institution_administrators_manage_their_own_institution_only(backend: Backend) {
    let w = world(backend);
    let app = &w.app;
    let other = app.create_institution(&w.admin, "H2", "Hospice 2");
    app.create_user(&w.admin, "local.admin", &["admin"], Some(w.inst));
    let stranger = app.create_user(&w.admin, "stranger", &["user"], Some(other));
    let local = app.login("local.admin", PASSWORD);
    let listed = app.get("/api/v1/admin/users", Some(&local));
    let logins: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["clinician", "local.admin"]);
    // Asking for the other institution still shows only its own.
    let listed = app.get(
        &format!("/api/v1/admin/users?institution_id={other}"),
        Some(&local),
    );
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["institution_id"] == w.inst)
    );
    assert_eq!(
        app.get(&format!("/api/v1/admin/users/{stranger}"), Some(&local))
            .status,
        404
    );
    assert_eq!(
        app.put(
            &format!("/api/v1/admin/users/{stranger}"),
            Some(&local),
            &json!({"full_name": "X"})
        )
        .status,
        404
    );
    assert_eq!(
        app.delete(&format!("/api/v1/admin/users/{stranger}"), Some(&local))
            .status,
        404
    );
    let r = app.post(
        "/api/v1/admin/users",
        Some(&local),
        &json!({"login": "intruder", "full_name": "I", "password": PASSWORD, "roles": ["user"], "institution_id": other}),
    );
    assert_eq!(r.status, 403);
    let r = app.post(
        "/api/v1/admin/users",
        Some(&local),
        &json!({"login": "regionwide", "full_name": "R", "password": PASSWORD, "roles": ["ministry"]}),
    );
    assert_eq!(r.status, 403);
    // The stranger was not touched.
    let s = app.get(&format!("/api/v1/admin/users/{stranger}"), Some(&w.admin));
    assert_eq!(s.body["full_name"], "Test stranger");
    assert_eq!(s.body["active"], true);

    // Roles and reference books are the whole region's: an institution's administrator reads
    // them and changes none of them.
    let admin_role = role(app, &local, "admin")["id"].clone();
    let ministry_role = role(app, &local, "ministry")["id"].clone();
    assert_eq!(
        app.get("/api/v1/refs/medicaments", Some(&local)).status,
        200
    );
    let region_only = [
        (
            "POST",
            "/api/v1/admin/roles".to_string(),
            json!({"name": "mine", "permissions": []}),
        ),
        (
            "PUT",
            format!("/api/v1/admin/roles/{ministry_role}"),
            json!({"permissions": ["summary_reporting", "administration"]}),
        ),
        (
            "PUT",
            format!("/api/v1/admin/roles/{admin_role}"),
            json!({"require_totp": false}),
        ),
        (
            "DELETE",
            format!("/api/v1/admin/roles/{ministry_role}"),
            Value::Null,
        ),
        (
            "POST",
            "/api/v1/refs/districts".to_string(),
            json!({"code": "D9", "name": "D9"}),
        ),
        (
            "PUT",
            format!("/api/v1/refs/institutions/{other}"),
            json!({"code": "H2", "name": "Renamed"}),
        ),
        (
            "DELETE",
            format!("/api/v1/refs/institutions/{other}"),
            Value::Null,
        ),
    ];
    for (method, path, body) in &region_only {
        let r = call(app, method, path, Some(&local), body);
        assert_eq!(
            (r.status, r.error_code()),
            (403, "region_wide_only"),
            "{method} {path}: {:?}",
            r.body
        );
    }
    assert_eq!(
        role(app, &w.admin, "ministry")["permissions"],
        json!(["summary_reporting"])
    );
    let renamed = app.get(
        &format!("/api/v1/refs/institutions/{other}"),
        Some(&w.admin),
    );
    assert_eq!(renamed.body["name"], "Hospice 2");
    // The region-wide administrator still changes them.
    let r = app.post(
        "/api/v1/refs/districts",
        Some(&w.admin),
        &json!({"code": "D9", "name": "D9"}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
}

/// Nobody gives a role whose permissions it does not hold itself.
fn administrators_give_only_what_they_hold(backend: Backend) {
    let w = world(backend);
    let app = &w.app;
    let r = app.post(
        "/api/v1/admin/roles",
        Some(&w.admin),
        &json!({"name": "auditor", "permissions": ["administration"]}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let aud_id = app.create_user(&w.admin, "aud", &["auditor"], Some(w.inst));
    let aud = app.login("aud", PASSWORD);
    // Not itself an administrator of everything…
    let r = app.put(
        &format!("/api/v1/admin/users/{aud_id}"),
        Some(&aud),
        &json!({"roles": ["admin"]}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (403, "role_beyond_own"),
        "{:?}",
        r.body
    );
    // …nor a clinician maker.
    let r = app.post(
        "/api/v1/admin/users",
        Some(&aud),
        &json!({"login": "doc", "full_name": "D", "password": PASSWORD, "roles": ["user"], "institution_id": w.inst}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (403, "role_beyond_own"),
        "{:?}",
        r.body
    );
    assert_eq!(
        app.get("/api/v1/admin/users", Some(&w.admin))
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["login"] == "doc")
            .count(),
        0
    );
    let me = app.get(&format!("/api/v1/admin/users/{aud_id}"), Some(&w.admin));
    assert_eq!(me.body["roles"], json!(["auditor"]));
    // What it holds, it gives.
    let r = app.post(
        "/api/v1/admin/users",
        Some(&aud),
        &json!({"login": "aud2", "full_name": "A", "password": PASSWORD, "roles": ["auditor"], "institution_id": w.inst}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
}

fn roles_are_data(backend: Backend) {
    let w = world(backend);
    let app = &w.app;
    let perms = app.get("/api/v1/admin/permissions", Some(&w.admin));
    let names: Vec<&str> = perms
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "administration",
            "medical_records",
            "patients",
            "reporting",
            "summary_reporting"
        ]
    );
    let admin_role = role(app, &w.admin, "admin");
    let user_role = role(app, &w.admin, "user");
    assert_eq!(
        user_role["permissions"],
        json!(["medical_records", "patients", "reporting"])
    );

    let r = app.post(
        "/api/v1/admin/roles",
        Some(&w.admin),
        &json!({"name": "auditor", "description": "Reads the audit log", "permissions": ["administration"]}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let auditor = r.body["id"].as_i64().unwrap();
    let dup = app.post(
        "/api/v1/admin/roles",
        Some(&w.admin),
        &json!({"name": "auditor", "permissions": []}),
    );
    assert_eq!(dup.status, 409);
    let unknown = app.post(
        "/api/v1/admin/roles",
        Some(&w.admin),
        &json!({"name": "x1", "permissions": ["fly"]}),
    );
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (422, "unknown_permission")
    );

    // A role's permissions take effect on the next request of its holders.
    let id = app.create_user(&w.admin, "aud", &["auditor"], None);
    let aud = app.login("aud", PASSWORD);
    assert_eq!(app.get("/api/v1/admin/audit", Some(&aud)).status, 200);
    let r = app.put(
        &format!("/api/v1/admin/roles/{auditor}"),
        Some(&w.admin),
        &json!({"permissions": ["reporting"]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["permissions"], json!(["reporting"]));
    assert_eq!(app.get("/api/v1/admin/audit", Some(&aud)).status, 403);

    let in_use = app.delete(&format!("/api/v1/admin/roles/{auditor}"), Some(&w.admin));
    assert_eq!((in_use.status, in_use.error_code()), (409, "in_use"));
    app.put(
        &format!("/api/v1/admin/users/{id}"),
        Some(&w.admin),
        &json!({"roles": ["user"]}),
    );
    assert_eq!(
        app.delete(&format!("/api/v1/admin/roles/{auditor}"), Some(&w.admin))
            .status,
        204
    );
    assert_eq!(
        app.delete(&format!("/api/v1/admin/roles/{auditor}"), Some(&w.admin))
            .status,
        404
    );

    let admin_id = admin_role["id"].as_i64().unwrap();
    let r = app.delete(&format!("/api/v1/admin/roles/{admin_id}"), Some(&w.admin));
    assert_eq!(r.status, 409);
    let r = app.put(
        &format!("/api/v1/admin/roles/{admin_id}"),
        Some(&w.admin),
        &json!({"permissions": ["reporting"]}),
    );
    assert_eq!(r.status, 409);
}

on_both_backends!(
    role_matrix_refuses_everyone_but_administrators,
    administrator_registers_edits_and_lists_users,
    institution_administrators_manage_their_own_institution_only,
    administrators_give_only_what_they_hold,
    roles_are_data,
);
