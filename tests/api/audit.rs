use client_crypto::Sex;
use palreg_tests::clinic::{clinic, passport, record};
use palreg_tests::{Backend, PASSWORD, TestApp, on_both_backends, spawn_app};
use serde_json::json;

/// Runs `palreg audit verify` against the app's database, in process; returns the exit code.
fn audit_verify(app: &TestApp) -> i32 {
    app.db.palreg(&["audit", "verify"]).expect("verify ran")
}

fn actions_and_refusals_are_audited(backend: Backend) {
    let app = spawn_app(backend);
    let bad = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": "wrong-password"}),
    );
    assert_eq!(bad.status, 401);
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "ghost", "password": "wrong-password"}),
    );
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice");
    let user = app.create_user(&admin, "doc", &["user"], Some(inst));
    let doc = app.login("doc", PASSWORD);
    // A refused administrative action is recorded too (as the 403 it was)…
    assert_eq!(app.get("/api/v1/admin/audit", Some(&doc)).status, 403);
    // …and a refused change with its error code.
    let dup = app.post("/api/v1/admin/users", Some(&admin), &json!({"login": "doc", "full_name": "D", "password": PASSWORD, "roles": ["user"], "institution_id": inst}));
    assert_eq!(dup.status, 409);

    let page = app.get("/api/v1/admin/audit?limit=500", Some(&admin));
    assert_eq!(page.status, 200);
    let items = page.body["items"].as_array().unwrap();
    let find = |action: &str, outcome: &str| {
        items
            .iter()
            .find(|e| e["action"] == action && e["outcome"] == outcome)
            .cloned()
    };
    let failed = find("auth.login", "invalid_credentials").expect("failed sign-in audited");
    assert_eq!(failed["client_addr"], "127.0.0.1");
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "auth.login" && e["actor_login"] == "ghost")
    );
    let created = find("admin.user.create", "ok").expect("user creation audited");
    assert_eq!(created["object_id"], user.to_string());
    assert_eq!(created["actor_login"], "admin");
    assert!(find("admin.user.create", "login_taken").is_some());
    let denied = find("access.denied", "forbidden").expect("refused access audited");
    assert_eq!(denied["actor_login"], "doc");
    assert_eq!(denied["object_id"], "GET /api/v1/admin/audit");
    assert!(find("refs.create", "ok").is_some());
    assert!(find("system.seed", "ok").is_some());
    // Hash chain: each entry links to the one before it.
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"]);
        assert_eq!(
            pair[0]["seq"].as_i64().unwrap(),
            pair[1]["seq"].as_i64().unwrap() + 1
        );
    }
    // Filters and keyset paging.
    let only = app.get(
        "/api/v1/admin/audit?action=auth.login&outcome=ok",
        Some(&admin),
    );
    let only = only.body["items"].as_array().unwrap();
    assert!(only.len() >= 2, "{only:?}");
    assert!(
        only.len() >= 2
            && only
                .iter()
                .all(|e| e["action"] == "auth.login" && e["outcome"] == "ok")
    );
    let first = app.get("/api/v1/admin/audit?limit=2", Some(&admin));
    let before = first.body["next_before"].as_i64().expect("more pages");
    let second = app.get(
        &format!("/api/v1/admin/audit?limit=2&before={before}"),
        Some(&admin),
    );
    let seqs: Vec<i64> = second.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [before - 1, before - 2]);
    let by_actor = app.get("/api/v1/admin/audit?actor=doc", Some(&admin));
    assert!(
        by_actor.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_login"] == "doc")
    );
    let bad_time = app.get("/api/v1/admin/audit?from=yesterday", Some(&admin));
    assert_eq!(
        (bad_time.status, bad_time.error_code()),
        (400, "invalid_query")
    );
}

fn verify_detects_edits_and_deletions(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": "wrong-password"}),
    );
    assert_eq!(audit_verify(&app), 0);

    // An edited entry.
    app.raw_sql("UPDATE audit_log SET outcome = 'ok' WHERE outcome = 'invalid_credentials'");
    assert_eq!(audit_verify(&app), 1);
}

fn verify_detects_a_deleted_entry(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    app.create_institution(&admin, "H2", "Hospice 2");
    assert_eq!(audit_verify(&app), 0);
    app.raw_sql("DELETE FROM audit_log WHERE seq = 3");
    assert_eq!(audit_verify(&app), 1);
}

fn verify_detects_a_truncated_tail(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    app.create_institution(&admin, "H1", "Hospice");
    app.raw_sql("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)");
    assert_eq!(audit_verify(&app), 1);
}

/// Reads and refusals are appended by one writer that commits whatever is waiting in one
/// transaction; under concurrent requests — interleaved with changes, which append inside
/// their own transactions — every request still has exactly one entry and the chain holds.
fn concurrent_reads_and_changes_keep_one_chain(backend: Backend) {
    const THREADS: usize = 4;
    const EACH: usize = 15;
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice");
    app.create_user(&admin, "doc", &["user"], Some(inst));
    let doc = app.login("doc", PASSWORD);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (app, doc, admin) = (&app, &doc, &admin);
            scope.spawn(move || {
                for i in 0..EACH {
                    let refused = app.get("/api/v1/admin/users", Some(doc));
                    assert_eq!(refused.status, 403);
                    if i % 5 == 0 {
                        app.create_institution(admin, &format!("C{t}-{i}"), "Clinic");
                    }
                }
            });
        }
    });
    let page = app.get(
        "/api/v1/admin/audit?action=access.denied&actor=doc&limit=500",
        Some(&admin),
    );
    let denied = page.body["items"].as_array().unwrap();
    assert_eq!(
        denied.len(),
        THREADS * EACH,
        "one entry per refused request"
    );
    assert!(
        denied
            .iter()
            .all(|e| e["object_id"] == "GET /api/v1/admin/users")
    );
    assert_eq!(audit_verify(&app), 0, "the chain verifies");
}

/// An institution's administrator reads what its own institution's accounts did, and nothing of
/// another institution's staff (their logins, addresses and what they opened); a region-wide
/// administrator reads everything.
fn an_institution_administrator_reads_its_own_institution_only(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let h1 = app.create_institution(&admin, "H1", "Hospice");
    let h2 = app.create_institution(&admin, "H2", "Hospital");
    app.create_user(&admin, "boss1", &["admin"], Some(h1));
    app.create_user(&admin, "doc1", &["user"], Some(h1));
    app.create_user(&admin, "doc2", &["user"], Some(h2));
    let boss1 = app.login("boss1", PASSWORD);
    let doc1 = app.login("doc1", PASSWORD);
    let doc2 = app.login("doc2", PASSWORD);
    assert_eq!(app.get("/api/v1/me", Some(&doc1)).status, 200);
    assert_eq!(app.get("/api/v1/admin/audit", Some(&doc2)).status, 403);
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "doc2", "password": "wrong-password"}),
    );
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "ghost", "password": "wrong-password"}),
    );

    let logins = |token: &str, query: &str| -> Vec<String> {
        let page = app.get(
            &format!("/api/v1/admin/audit?limit=500{query}"),
            Some(token),
        );
        assert_eq!(page.status, 200, "{:?}", page.body);
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["actor_login"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let seen = logins(&boss1, "");
    assert!(seen.iter().any(|l| l == "doc1"), "{seen:?}");
    assert!(seen.iter().any(|l| l == "boss1"), "{seen:?}");
    assert!(
        seen.iter().all(|l| l == "doc1" || l == "boss1"),
        "only its institution's accounts: {seen:?}"
    );
    assert!(logins(&boss1, "&actor=doc2").is_empty());
    assert!(logins(&boss1, "&action=access.denied").is_empty());
    // The region-wide administrator sees them all, unknown logins and the seeding too.
    let all = logins(&admin, "");
    for who in ["doc1", "doc2", "boss1", "ghost", "admin", ""] {
        assert!(all.iter().any(|l| l == who), "{who:?} in {all:?}");
    }
    assert_eq!(
        logins(&admin, "&actor=doc2").len(),
        3,
        "sign-in, refusal, failed sign-in"
    );

    // Entries stay with the institution they were made in: doc1 moves to H2, and H1's
    // administrator still reads what doc1 did in H1, not what it does in H2; H2's reads the
    // reverse.
    let r = app.put(
        &format!("/api/v1/admin/users/{}", user_id(&app, &admin, "doc1")),
        Some(&admin),
        &json!({"institution_id": h2}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    app.create_user(&admin, "boss2", &["admin"], Some(h2));
    let boss2 = app.login("boss2", PASSWORD);
    let doc1 = app.login("doc1", PASSWORD);
    let search = app.post("/api/v1/patients/search", Some(&doc1), &json!({}));
    assert_eq!(search.status, 200, "{:?}", search.body);
    let entries = |token: &str| -> Vec<(String, Option<i64>)> {
        app.get("/api/v1/admin/audit?limit=500&actor=doc1", Some(token))
            .body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["institution_id"].as_i64(),
                )
            })
            .collect()
    };
    let in_h1 = entries(&boss1);
    assert_eq!(in_h1, [("auth.login".to_string(), Some(h1))], "{in_h1:?}");
    let in_h2 = entries(&boss2);
    assert_eq!(
        in_h2,
        [
            ("patients.search".to_string(), Some(h2)),
            ("auth.login".to_string(), Some(h2))
        ],
        "{in_h2:?}"
    );
    assert_eq!(entries(&admin).len(), 3);
    assert_eq!(
        audit_verify(&app),
        0,
        "the institution is part of the chain"
    );
    // It cannot be moved: the hash covers it.
    app.raw_sql(&format!(
        "UPDATE audit_log SET institution_id = {h2} WHERE actor_login = 'doc1' AND institution_id = {h1}"
    ));
    assert_ne!(audit_verify(&app), 0);
    // An entry made before entries named their institution is read by the accounts the
    // institution has now (what the viewer did before).
    app.raw_sql("UPDATE audit_log SET institution_id = NULL WHERE actor_login = 'doc2'");
    assert_eq!(logins(&boss2, "&actor=doc2").len(), 3);
    assert!(logins(&boss1, "&actor=doc2").is_empty());
}

/// "Who opened this patient's record?": the viewer's object filter lists every entry about
/// the patient, newest first, with who and what, to the institution's administrator; another
/// institution's administrator gets nothing of it (its own user's refused attempt aside).
fn who_opened_a_patient(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let h1 = clinic(&app, &admin, "H1");
    let h2 = clinic(&app, &admin, "H2");
    app.create_user(&admin, "boss1", &["admin"], Some(h1.institution_id));
    app.create_user(&admin, "boss2", &["admin"], Some(h2.institution_id));
    let (boss1, boss2) = (app.login("boss1", PASSWORD), app.login("boss2", PASSWORD));
    let add = |name: &str| {
        let (_, body) = h1.new_patient(
            &passport(name, "Анна", "1948-03-12", Sex::Female),
            record(&app, &h1.a.token, 1948),
        );
        let r = app.post("/api/v1/patients", Some(&h1.a.token), &body);
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_i64().unwrap()
    };
    let (p, other) = (add("Иванова"), add("Петрова"));
    for (token, path) in [
        (&h1.b.token, format!("/api/v1/patients/{p}")),
        (&h1.b.token, format!("/api/v1/patients/{other}")),
        (&h1.a.token, format!("/api/v1/patients/{p}/history")),
        (&h1.b.token, format!("/api/v1/patients/{p}/observations")),
    ] {
        assert_eq!(app.get(&path, Some(token)).status, 200, "{path}");
    }
    // A clinician of another institution tries: refused, and recorded.
    let r = app.get(&format!("/api/v1/patients/{p}"), Some(&h2.a.token));
    assert_eq!(r.status, 404);

    let opened = |token: &str, query: &str| -> Vec<(String, String, String)> {
        let page = app.get(&format!("/api/v1/admin/audit?{query}"), Some(token));
        assert_eq!(page.status, 200, "{:?}", page.body);
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["object_type"], "patient");
                assert_eq!(e["object_id"], p.to_string());
                let text = |f: &str| e[f].as_str().unwrap().to_string();
                (text("actor_login"), text("action"), text("outcome"))
            })
            .collect()
    };
    let entry = |who: &str, action: &str, outcome: &str| {
        (who.to_string(), action.to_string(), outcome.to_string())
    };
    let query = format!("object_type=patient&object_id={p}");
    assert_eq!(
        opened(&boss1, &query),
        [
            entry("h1.b", "observations.read", "ok"),
            entry("h1.a", "patients.history", "ok"),
            entry("h1.b", "patients.read", "ok"),
            entry("h1.a", "patients.create", "ok"),
        ],
        "newest first, the other patient's read not among them"
    );
    assert_eq!(
        opened(&boss2, &query),
        [entry("h2.a", "patients.read", "not_found")]
    );
    // The region-wide administrator reads both; the object id alone finds the same entries
    // (there is no other object with this id here), and paging goes on from `next_before`.
    assert_eq!(opened(&admin, &query).len(), 5);
    let first = app.get(
        &format!("/api/v1/admin/audit?object_id={p}&object_type=patient&limit=2"),
        Some(&admin),
    );
    let next = first.body["next_before"].as_i64().unwrap();
    let rest = opened(&admin, &format!("{query}&before={next}"));
    assert_eq!(rest.len(), 3, "{rest:?}");
}

fn user_id(app: &TestApp, admin: &str, login: &str) -> i64 {
    let users = app.get("/api/v1/admin/users", Some(admin)).body;
    users
        .as_array()
        .or_else(|| users["items"].as_array())
        .unwrap()
        .iter()
        .find(|u| u["login"] == login)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

on_both_backends!(
    actions_and_refusals_are_audited,
    an_institution_administrator_reads_its_own_institution_only,
    verify_detects_edits_and_deletions,
    verify_detects_a_deleted_entry,
    verify_detects_a_truncated_tail,
    concurrent_reads_and_changes_keep_one_chain,
    who_opened_a_patient,
);

/// String literals of the Rust files under `dir` (roughly: the text between double quotes on
/// a line), recursively.
fn string_literals(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            string_literals(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                out.extend(line.split('"').skip(1).step_by(2).map(str::to_string));
            }
        }
    }
}

/// The audit viewer suggests every action the server records (its filter takes any text, but
/// an auditor should not have to know an action's name to find it).
#[test]
fn the_audit_viewer_suggests_every_recorded_action() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let viewer = std::fs::read_to_string(root.join("web/js/pages/admin-audit.js")).unwrap();
    let list = viewer
        .split("const KNOWN_ACTIONS = [")
        .nth(1)
        .and_then(|rest| rest.split("];").next())
        .expect("KNOWN_ACTIONS in admin-audit.js");
    let known: std::collections::BTreeSet<&str> = list.split('\'').skip(1).step_by(2).collect();
    let mut literals = Vec::new();
    string_literals(&root.join("server/src"), &mut literals);
    let prefixes = [
        "auth.",
        "me.",
        "keys.",
        "patients.",
        "observations.",
        "prescriptions.",
        "admin.",
        "refs.",
        "access.",
        "system.",
    ];
    let mut recorded: std::collections::BTreeSet<String> = literals
        .into_iter()
        .filter(|s| {
            prefixes.iter().any(|p| s.starts_with(p))
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
        })
        .collect();
    // `reports.{kind}`, one per report kind.
    recorded.extend(["reports.prescriptions".into(), "reports.summary".into()]);
    assert!(recorded.len() > 30, "{recorded:?}");
    let missing: Vec<&String> = recorded
        .iter()
        .filter(|a| !known.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the viewer's KNOWN_ACTIONS: {missing:?}"
    );
}
