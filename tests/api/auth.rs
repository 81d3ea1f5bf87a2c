use palreg_tests::{
    ADMIN_PASSWORD, Backend, PASSWORD, TestDatabase, on_both_backends, spawn_app, spawn_replica,
    spawn_with,
};
use serde_json::json;

fn login_answers_token_and_cookie(backend: Backend) {
    let app = spawn_app(backend);
    let reply = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 1800);
    let token = reply.body["access_token"].as_str().unwrap();
    let cookie = reply.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.starts_with(&format!("palreg_session={token}")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "{attribute} missing in {cookie}"
        );
    }
    // The bearer header authenticates…
    let me = app.get("/api/v1/me", Some(token));
    assert_eq!(me.status, 200);
    assert_eq!(me.body["login"], "admin");
    assert_eq!(me.body["roles"], json!(["admin"]));
    assert_eq!(
        me.body["permissions"],
        json!([
            "administration",
            "medical_records",
            "patients",
            "reporting",
            "summary_reporting"
        ])
    );
    assert_eq!(me.body["institution"], json!(null));
    // …and so does the cookie alone.
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = agent
        .get(&app.url("/api/v1/me"))
        .header("Cookie", &format!("palreg_session={token}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.body_mut().read_json().unwrap();
    assert_eq!(body["login"], "admin");
}

fn anonymous_and_forged_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend);
    let reply = app.get("/api/v1/me", None);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error_code(), "unauthenticated");
    assert!(reply.header("www-authenticate").is_some());
    let token = app.admin_token();
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.get("/api/v1/me", Some(&forged)).status, 401);
    assert_eq!(app.get("/api/v1/me", Some("not-a-jwt")).status, 401);
}

fn wrong_password_and_unknown_login_look_alike(backend: Backend) {
    let app = spawn_app(backend);
    let wrong = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": "wrong-password"}),
    );
    let unknown = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "nobody", "password": "wrong-password"}),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.error_code(), "invalid_credentials");
}

fn five_wrong_passwords_lock_the_account(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice 1");
    app.create_user(&admin, "doctor", &["user"], Some(inst));
    for _ in 0..5 {
        let r = app.post(
            "/api/v1/auth/login",
            None,
            &json!({"login": "doctor", "password": "wrong-password"}),
        );
        assert_eq!(r.status, 401);
    }
    // Now even the right password is refused, with a time to wait.
    let locked = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "doctor", "password": PASSWORD}),
    );
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    assert_eq!(locked.error_code(), "account_locked");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    // Other accounts are unaffected, and the administrator can unlock by resetting it.
    let users = app.get("/api/v1/admin/users", Some(&admin));
    let doctor = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "doctor")
        .unwrap();
    assert!(doctor["locked_until"].is_string());
    let id = doctor["id"].as_i64().unwrap();
    let r = app.put(
        &format!("/api/v1/admin/users/{id}"),
        Some(&admin),
        &json!({"password": "a-new-password-2"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    app.login("doctor", "a-new-password-2");
}

/// Attempts are counted before they are checked: a burst of guesses gets five checked, however
/// the requests interleave, and a session does not license guessing the password either.
fn guesses_count_before_they_are_checked(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice 1");
    app.create_user(&admin, "doctor", &["user"], Some(inst));
    app.create_user(&admin, "nurse", &["user"], Some(inst));
    let app = &app;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let guesses: Vec<_> = (0..16)
            .map(|i| {
                s.spawn(move || {
                    app.post(
                        "/api/v1/auth/login",
                        None,
                        &json!({"login": "doctor", "password": format!("guess-number-{i}")}),
                    )
                    .status
                })
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        11,
        "{statuses:?}"
    );

    let nurse = app.login("nurse", PASSWORD);
    for _ in 0..5 {
        let wrong = app.put(
            "/api/v1/me/password",
            Some(&nurse),
            &json!({"current_password": "a-guess-at-it", "new_password": "brand-new-password"}),
        );
        assert_eq!(wrong.error_code(), "wrong_password", "{:?}", wrong.body);
    }
    let locked = app.put(
        "/api/v1/me/password",
        Some(&nurse),
        &json!({"current_password": PASSWORD, "new_password": "brand-new-password"}),
    );
    assert_eq!(
        (locked.status, locked.error_code()),
        (429, "account_locked")
    );
    let r = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "nurse", "password": PASSWORD}),
    );
    assert_eq!(r.status, 429);
}

fn a_failure_streak_is_reset_by_success(backend: Backend) {
    let app = spawn_app(backend);
    for _ in 0..4 {
        let r = app.post(
            "/api/v1/auth/login",
            None,
            &json!({"login": "admin", "password": "nope-nope-nope"}),
        );
        assert_eq!(r.status, 401);
    }
    app.admin_token();
    for _ in 0..4 {
        let r = app.post(
            "/api/v1/auth/login",
            None,
            &json!({"login": "admin", "password": "nope-nope-nope"}),
        );
        assert_eq!(r.status, 401);
    }
    app.admin_token();
}

fn logout_revokes_the_token_at_once(backend: Backend) {
    let app = spawn_app(backend);
    let token = app.admin_token();
    let other_session = app.admin_token();
    let r = app.post("/api/v1/auth/logout", Some(&token), &json!({}));
    assert_eq!(r.status, 204);
    let cleared = r.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("palreg_session=;"),
        "{cookie}",
        cookie = cleared
    );
    assert_eq!(app.get("/api/v1/me", Some(&token)).status, 401);
    // Only that session ended.
    assert_eq!(app.get("/api/v1/me", Some(&other_session)).status, 200);
}

fn password_change_ends_every_session(backend: Backend) {
    let app = spawn_app(backend);
    let token = app.admin_token();
    let other = app.admin_token();
    let weak = app.put(
        "/api/v1/me/password",
        Some(&token),
        &json!({"current_password": ADMIN_PASSWORD, "new_password": "short"}),
    );
    assert_eq!(weak.status, 400);
    assert_eq!(weak.error_code(), "weak_password");
    let wrong = app.put(
        "/api/v1/me/password",
        Some(&token),
        &json!({"current_password": "not-my-password", "new_password": "brand-new-password"}),
    );
    assert_eq!(wrong.status, 403);
    let ok = app.put(
        "/api/v1/me/password",
        Some(&token),
        &json!({"current_password": ADMIN_PASSWORD, "new_password": "brand-new-password"}),
    );
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    assert_eq!(app.get("/api/v1/me", Some(&token)).status, 401);
    assert_eq!(app.get("/api/v1/me", Some(&other)).status, 401);
    let old = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(old.status, 401);
    app.login("admin", "brand-new-password");
}

fn deregistration_ends_sessions_and_sign_in(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice 1");
    let id = app.create_user(&admin, "doctor", &["user"], Some(inst));
    let doctor = app.login("doctor", PASSWORD);
    assert_eq!(app.get("/api/v1/me", Some(&doctor)).status, 200);
    let r = app.delete(&format!("/api/v1/admin/users/{id}"), Some(&admin));
    assert_eq!(r.status, 204);
    assert_eq!(app.get("/api/v1/me", Some(&doctor)).status, 401);
    let r = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "doctor", "password": PASSWORD}),
    );
    assert_eq!(r.status, 401);
    // Kept, not deleted, and can be re-registered.
    let user = app.get(&format!("/api/v1/admin/users/{id}"), Some(&admin));
    assert_eq!(user.body["active"], false);
    let r = app.put(
        &format!("/api/v1/admin/users/{id}"),
        Some(&admin),
        &json!({"active": true}),
    );
    assert_eq!(r.status, 200);
    app.login("doctor", PASSWORD);
}

fn sessions_expire_server_side(backend: Backend) {
    let app = spawn_app(backend);
    let token = app.admin_token();
    // Known to the server (and remembered) before it expires.
    assert_eq!(app.get("/api/v1/me", Some(&token)).status, 200);
    app.raw_sql("UPDATE sessions SET expires_at = '2000-01-01 00:00:00'");
    assert_eq!(app.get("/api/v1/me", Some(&token)).status, 401);
}

/// Sessions that ended more than a day ago are deleted (at start-up and hourly while the server
/// runs, `server/src/housekeeping.rs`); a live one, and one that ended an hour ago, are kept.
fn expired_sessions_are_deleted(backend: Backend) {
    use palreg_server::housekeeping::{Tidied, tidy};
    let app = spawn_app(backend);
    let long_ago = app.admin_token();
    app.raw_sql("UPDATE sessions SET expires_at = '2000-01-01 00:00:00'");
    let recently = app.admin_token();
    let hour_ago = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
    app.raw_sql(&format!(
        "UPDATE sessions SET expires_at = '{}' WHERE expires_at > '2001-01-01 00:00:00'",
        hour_ago.format("%Y-%m-%d %H:%M:%S")
    ));
    let live = app.admin_token();
    let logged_out = app.admin_token();
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&logged_out), &json!({}))
            .status,
        204
    );

    let now = chrono::Utc::now().naive_utc();
    assert_eq!(tidy(&mut app.db_conn(), now), Ok(Tidied { sessions: 1 }));
    assert_eq!(
        app.query_texts("SELECT CAST(COUNT(*) AS TEXT) AS t FROM sessions"),
        ["3"]
    );
    assert_eq!(app.get("/api/v1/me", Some(&live)).status, 200);
    for ended in [&long_ago, &recently, &logged_out] {
        assert_eq!(app.get("/api/v1/me", Some(ended)).status, 401);
    }
    // A day on, the one that expired an hour ago goes too; the revoked one once it expires.
    assert_eq!(
        tidy(&mut app.db_conn(), now + chrono::Duration::days(1)),
        Ok(Tidied { sessions: 1 })
    );
    assert_eq!(app.get("/api/v1/me", Some(&live)).status, 200);
}

/// The server remembers who a session is between requests (`server/src/session_cache.rs`);
/// a change made behind its back, by hand in SQL or by another replica, still counts at the
/// next request.
fn account_changes_made_in_sql_take_effect_at_once(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice 1");
    let doctor_id = app.create_user(&admin, "doctor", &["user"], Some(inst));
    let nurse_id = app.create_user(&admin, "nurse", &["user"], Some(inst));
    let doctor = app.login("doctor", PASSWORD);
    let nurse = app.login("nurse", PASSWORD);
    let search = json!({"limit": 1});
    for token in [&doctor, &nurse] {
        assert_eq!(app.get("/api/v1/me", Some(token)).status, 200);
        let r = app.post("/api/v1/patients/search", Some(token), &search);
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // Failed sign-ins of an account write to it, and end none of its sessions.
    let r = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "doctor", "password": "not-the-password"}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(app.get("/api/v1/me", Some(&doctor)).status, 200);

    app.raw_sql(&format!(
        "DELETE FROM user_roles WHERE user_id = {nurse_id}"
    ));
    let r = app.post("/api/v1/patients/search", Some(&nurse), &search);
    assert_eq!((r.status, r.error_code()), (403, "forbidden"));
    let me = app.get("/api/v1/me", Some(&nurse));
    assert_eq!(me.body["permissions"], json!([]), "{:?}", me.body);

    app.raw_sql(&format!(
        "UPDATE users SET full_name = 'Renamed' WHERE id = {doctor_id}"
    ));
    assert_eq!(
        app.get("/api/v1/me", Some(&doctor)).body["full_name"],
        "Renamed"
    );
    app.raw_sql(&format!(
        "UPDATE users SET active = FALSE WHERE id = {doctor_id}"
    ));
    assert_eq!(app.get("/api/v1/me", Some(&doctor)).status, 401);
    let r = app.post("/api/v1/patients/search", Some(&doctor), &search);
    assert_eq!(r.status, 401);
    // Others are not affected.
    assert_eq!(app.get("/api/v1/me", Some(&admin)).status, 200);
}

fn clients_are_rate_limited(backend: Backend) {
    let db = TestDatabase::new(backend);
    let app = spawn_with(backend, db, |s| s.login_rate_per_minute = 3);
    for _ in 0..3 {
        let r = app.post(
            "/api/v1/auth/login",
            None,
            &json!({"login": "x-user", "password": "whatever-1"}),
        );
        assert_eq!(r.status, 401);
    }
    let r = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.error_code(), "rate_limited");
    assert!(r.header("retry-after").is_some());
}

/// Replicas behind a load balancer count a client's sign-in attempts together: the limit is
/// the limit, not the limit times the replicas. A window that has ended is forgotten.
#[test]
fn postgres_replicas_share_the_sign_in_limit() {
    let backend = Backend::Postgres;
    let one = spawn_with(backend, TestDatabase::new(backend), |s| {
        s.login_rate_per_minute = 4;
    });
    let two = spawn_replica(&one, |s| s.login_rate_per_minute = 4);
    let wrong = json!({"login": "x-user", "password": "whatever-1"});
    for app in [&one, &two, &one, &two] {
        assert_eq!(app.post("/api/v1/auth/login", None, &wrong).status, 401);
    }
    for app in [&one, &two] {
        let r = app.post("/api/v1/auth/login", None, &wrong);
        assert_eq!((r.status, r.error_code()), (429, "rate_limited"));
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // The right password is refused too while the window lasts.
    let r = two.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 429);
    assert_eq!(
        one.query_texts("SELECT CAST(attempts AS TEXT) AS t FROM sign_in_windows"),
        ["7"],
        "every attempt counted, the refused ones too"
    );
    // The window ends (moved back a minute): the next attempt starts a new one, and forgets
    // the ended window of another client.
    one.raw_sql("UPDATE sign_in_windows SET started_at = started_at - INTERVAL '61 seconds'");
    one.raw_sql(
        "INSERT INTO sign_in_windows (client_key, started_at, attempts) \
         VALUES ('198.51.100.9', now() - INTERVAL '5 minutes', 30)",
    );
    let r = one.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        one.query_texts("SELECT CAST(attempts AS TEXT) AS t FROM sign_in_windows"),
        ["1"]
    );
}

/// Behind a trusted reverse proxy the client is the address it names: the audit log records
/// it and the sign-in limit counts per client, not per proxy. Without the setting the header
/// is ignored (a client could write anything into it).
fn a_trusted_proxy_names_the_client(backend: Backend) {
    let wrong = json!({"login": "x-user", "password": "whatever-1"});
    let login_addrs = |app: &palreg_tests::TestApp| {
        app.query_texts(
            "SELECT client_addr AS t FROM audit_log WHERE action = 'auth.login' ORDER BY seq",
        )
    };
    let app = spawn_with(backend, TestDatabase::new(backend), |s| {
        s.login_rate_per_minute = 2;
        s.trusted_proxies = "127.0.0.0/8, ::1".into();
    });
    for _ in 0..2 {
        let r = app.post_forwarded("/api/v1/auth/login", &wrong, "198.51.100.1, 203.0.113.7");
        assert_eq!(r.status, 401);
    }
    let r = app.post_forwarded("/api/v1/auth/login", &wrong, "203.0.113.7");
    assert_eq!((r.status, r.error_code()), (429, "rate_limited"));
    // Another client behind the same proxy has its own count.
    let r = app.post_forwarded("/api/v1/auth/login", &wrong, "203.0.113.8");
    assert_eq!(r.status, 401);
    let addrs = login_addrs(&app);
    assert_eq!(
        addrs.iter().filter(|a| *a == "203.0.113.7").count(),
        2,
        "{addrs:?}"
    );
    assert!(addrs.contains(&"203.0.113.8".to_string()), "{addrs:?}");
    assert!(
        !addrs
            .iter()
            .any(|a| a == "127.0.0.1" || a == "198.51.100.1"),
        "neither the proxy nor what the client wrote itself: {addrs:?}"
    );
    // The access log names the same client.
    let log = palreg_tests::captured_log();
    assert!(
        log.contains("203.0.113.8 \"POST /api/v1/auth/login\" 401"),
        "{log}"
    );

    let direct = spawn_with(backend, TestDatabase::new(backend), |s| {
        s.login_rate_per_minute = 2;
    });
    for forwarded in ["203.0.113.7", "203.0.113.8"] {
        let r = direct.post_forwarded("/api/v1/auth/login", &wrong, forwarded);
        assert_eq!(r.status, 401);
    }
    // Not trusted: both came from the peer, whose limit is spent.
    let r = direct.post_forwarded("/api/v1/auth/login", &wrong, "203.0.113.9");
    assert_eq!(r.status, 429);
    assert_eq!(login_addrs(&direct), vec!["127.0.0.1".to_string(); 2]);
}

on_both_backends!(
    a_trusted_proxy_names_the_client,
    login_answers_token_and_cookie,
    anonymous_and_forged_tokens_are_refused,
    wrong_password_and_unknown_login_look_alike,
    five_wrong_passwords_lock_the_account,
    guesses_count_before_they_are_checked,
    a_failure_streak_is_reset_by_success,
    logout_revokes_the_token_at_once,
    password_change_ends_every_session,
    deregistration_ends_sessions_and_sign_in,
    sessions_expire_server_side,
    expired_sessions_are_deleted,
    account_changes_made_in_sql_take_effect_at_once,
    clients_are_rate_limited,
);
