//! The optional second factor (TOTP): enrolment, sign-in with a code, replays, lockout, roles
//! that require it, removal and an administrator's reset; its one-time recovery codes.

use palreg_server::totp;
use palreg_tests::{ADMIN_PASSWORD, Backend, PASSWORD, TestApp, on_both_backends, spawn_app};
use serde_json::{Value, json};

/// The current step by the wall clock.
fn now_step() -> i64 {
    totp::step_at(chrono::Utc::now().timestamp())
}

/// A six-digit code that is none of the window's codes around now.
fn wrong_code(secret: &[u8]) -> String {
    let step = now_step();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| (step - 2..=step + 2).all(|s| totp::code(secret, s) != *c))
        .expect("a wrong code")
}

fn sign_in(app: &TestApp, login: &str, code: Option<&str>) -> palreg_tests::Reply {
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": login, "password": PASSWORD, "totp": code}),
    )
}

/// Enrols and confirms a second factor for the holder of `token`; the secret comes back, the
/// step its confirmation used, and the recovery codes the confirmation showed.
fn enrol(app: &TestApp, token: &str, login: &str) -> (Vec<u8>, i64, Vec<String>) {
    let started = app.post("/api/v1/me/totp", Some(token), &json!({}));
    assert_eq!(started.status, 201, "{:?}", started.body);
    let secret = totp::base32_decode(started.body["secret"].as_str().unwrap()).unwrap();
    assert_eq!(secret.len(), totp::SECRET_LEN);
    let uri = started.body["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("otpauth://totp/palreg:{login}?secret=")),
        "{uri}"
    );
    let rows: Vec<&str> = started.body["qr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(rows.len() >= 21 && rows.iter().all(|r| r.len() == rows.len()));

    let bad = app.post(
        "/api/v1/me/totp/confirm",
        Some(token),
        &json!({"code": wrong_code(&secret)}),
    );
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    assert_eq!(bad.error_code(), "invalid_totp");
    let step = now_step();
    let ok = app.post(
        "/api/v1/me/totp/confirm",
        Some(token),
        &json!({"code": totp::code(&secret, step)}),
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["enabled"], true);
    assert_eq!(ok.body["recovery_codes_left"], 10);
    let codes = recovery_codes(&ok.body);
    (secret, step, codes)
}

/// The recovery codes of a confirmation's or a renewal's answer: ten different ones, shown as
/// `xxxxx-xxxxx` of digits and lower-case letters, none of them easily misread.
fn recovery_codes(body: &Value) -> Vec<String> {
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("recovery codes in {body:?}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    for code in &codes {
        let (first, second) = code.split_once('-').unwrap_or_else(|| panic!("{code}"));
        assert!(first.len() == 5 && second.len() == 5, "{code}");
        assert!(
            code.bytes()
                .filter(|b| *b != b'-')
                .all(|b| totp::RECOVERY_ALPHABET.contains(&b)),
            "{code}"
        );
        assert_eq!(codes.iter().filter(|c| *c == code).count(), 1, "{code}");
    }
    codes
}

fn codes_left(app: &TestApp, token: &str) -> Value {
    let me = app.get("/api/v1/me", Some(token));
    assert_eq!(me.status, 200, "{:?}", me.body);
    me.body["totp"]["recovery_codes_left"].clone()
}

/// Recovery-code hashes in the database, of every user.
fn stored_recovery_codes(app: &TestApp) -> usize {
    app.query_texts("SELECT code_hash AS t FROM user_totp_recovery")
        .len()
}

fn audit_outcomes(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let page = app.get(
        &format!("/api/v1/admin/audit?action={action}&limit=100"),
        Some(admin),
    );
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].clone())
        .collect()
}

/// An app with a clinician `doc` who has a second factor.
struct Enrolled {
    app: TestApp,
    admin: String,
    doc: String,
    secret: Vec<u8>,
    /// The step the confirmation used.
    step: i64,
    /// The recovery codes the confirmation showed.
    codes: Vec<String>,
}

fn enrolled_doc(backend: Backend) -> Enrolled {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice");
    app.create_user(&admin, "doc", &["user"], Some(inst));
    let doc = app.login("doc", PASSWORD);
    let (secret, step, codes) = enrol(&app, &doc, "doc");
    Enrolled {
        app,
        admin,
        doc,
        secret,
        step,
        codes,
    }
}

fn sign_in_asks_for_the_code_once_enrolled(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice");
    app.create_user(&admin, "doc", &["user"], Some(inst));
    let doc = app.login("doc", PASSWORD);
    let me = app.get("/api/v1/me", Some(&doc));
    assert_eq!(
        me.body["totp"],
        json!({"enabled": false, "required": false, "recovery_codes_left": 0})
    );
    // Only for oneself, signed in.
    let code = json!({"code": "123456"});
    for anonymous in [
        app.post("/api/v1/me/totp", None, &json!({})),
        app.post("/api/v1/me/totp/confirm", None, &code),
        app.delete_json("/api/v1/me/totp", None, &code),
    ] {
        assert_eq!(anonymous.status, 401, "{:?}", anonymous.body);
    }

    // Starting over replaces an unconfirmed secret; a confirmed one must be removed first.
    assert_eq!(
        app.post("/api/v1/me/totp", Some(&doc), &json!({})).status,
        201
    );
    let not_digits = app.post(
        "/api/v1/me/totp/confirm",
        Some(&doc),
        &json!({"code": "12ab56"}),
    );
    assert_eq!(not_digits.error_code(), "invalid_totp");
    let (secret, confirmed_at, _) = enrol(&app, &doc, "doc");
    let again = app.post("/api/v1/me/totp", Some(&doc), &json!({}));
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "totp_already_enabled");
    let no_pending = app.post(
        "/api/v1/me/totp/confirm",
        Some(&doc),
        &json!({"code": "123456"}),
    );
    assert_eq!(no_pending.error_code(), "no_totp_enrolment");
    let me = app.get("/api/v1/me", Some(&doc));
    assert_eq!(
        me.body["totp"],
        json!({"enabled": true, "required": false, "recovery_codes_left": 10})
    );

    // The password alone no longer signs in; a wrong code does not either.
    let without = sign_in(&app, "doc", None);
    assert_eq!(without.status, 401);
    assert_eq!(without.error_code(), "totp_required");
    let wrong = sign_in(&app, "doc", Some(&wrong_code(&secret)));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "invalid_totp");
    // The confirmation's code has been used; the next step's is still in the window.
    let replay = sign_in(&app, "doc", Some(&totp::code(&secret, confirmed_at)));
    assert_eq!(replay.error_code(), "invalid_totp");
    let next = totp::code(&secret, confirmed_at + 1);
    let ok = sign_in(&app, "doc", Some(&next));
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let token = ok.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", Some(token)).body["login"], "doc");
    // A code signs in once.
    let replayed = sign_in(&app, "doc", Some(&next));
    assert_eq!(replayed.status, 401);
    assert_eq!(replayed.error_code(), "invalid_totp");
    // A wrong password with a right code is a wrong password.
    let wrong_password = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "doc", "password": "not-the-password", "totp": next}),
    );
    assert_eq!(wrong_password.error_code(), "invalid_credentials");

    // The secret is sealed in the database: neither its text nor its bytes are there.
    let sealed = app.query_texts("SELECT sealed_secret AS t FROM user_totp");
    assert_eq!(sealed.len(), 1);
    let encoded = totp::base32(&secret);
    assert!(!sealed[0].contains(&encoded));
    let sealed_bytes = base64_decode(&sealed[0]);
    assert!(!sealed_bytes.windows(secret.len()).any(|w| w == secret));

    // The administrator sees who has a second factor; the audit log has every step.
    let users = app.get("/api/v1/admin/users", Some(&admin));
    let doc_view = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "doc");
    assert_eq!(doc_view.unwrap()["totp_enabled"], true);
    // Newest first.
    assert_eq!(
        audit_outcomes(&app, &admin, "me.totp.enrol"),
        vec![json!("totp_already_enabled"), json!("ok"), json!("ok")]
    );
    assert_eq!(
        audit_outcomes(&app, &admin, "me.totp.confirm"),
        vec![
            json!("no_totp_enrolment"),
            json!("ok"),
            json!("invalid_totp"),
            json!("invalid_totp")
        ]
    );
    let logins = audit_outcomes(&app, &admin, "auth.login");
    for outcome in ["totp_required", "invalid_totp", "invalid_credentials", "ok"] {
        assert!(logins.contains(&json!(outcome)), "{outcome} in {logins:?}");
    }
    assert_eq!(app.cli(&["audit", "verify"]), 0);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

fn wrong_codes_lock_the_account_like_wrong_passwords(backend: Backend) {
    let Enrolled {
        app,
        doc,
        secret,
        step,
        ..
    } = enrolled_doc(backend);
    let wrong = wrong_code(&secret);
    let renew = "/api/v1/me/totp/recovery-codes";
    // Wrong codes count alike when removing the second factor and at sign-in.
    for _ in 0..2 {
        let r = app.delete_json("/api/v1/me/totp", Some(&doc), &json!({"code": wrong}));
        assert_eq!(r.status, 422, "{:?}", r.body);
        assert_eq!(r.error_code(), "invalid_totp");
    }
    for _ in 0..3 {
        assert_eq!(
            sign_in(&app, "doc", Some(&wrong)).error_code(),
            "invalid_totp"
        );
    }
    let right = totp::code(&secret, step + 1);
    let locked = sign_in(&app, "doc", Some(&right));
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    assert_eq!(locked.error_code(), "account_locked");
    let kept = app.delete_json("/api/v1/me/totp", Some(&doc), &json!({"code": right}));
    assert_eq!(kept.status, 429, "{:?}", kept.body);
    assert_eq!(kept.error_code(), "account_locked");
    let renewed = app.post(renew, Some(&doc), &json!({"code": right}));
    assert_eq!(renewed.status, 429, "{:?}", renewed.body);
    assert_eq!(renewed.error_code(), "account_locked");
}

/// Wrong recovery codes (well formed or not), and wrong codes when renewing them, count toward
/// the same lockout as wrong passwords; a locked account's recovery code is refused and kept.
fn wrong_recovery_codes_lock_the_account_like_wrong_passwords(backend: Backend) {
    let Enrolled {
        app,
        admin,
        doc,
        secret,
        codes,
        ..
    } = enrolled_doc(backend);
    let renew = "/api/v1/me/totp/recovery-codes";
    let r = app.post(renew, Some(&doc), &json!({"code": wrong_code(&secret)}));
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.error_code(), "invalid_totp");
    // Not one of doc's: another set's code, a code of doc's with a character changed, and
    // something that is no code at all.
    let stranger = totp::new_recovery_codes().unwrap().remove(0);
    let mut altered = codes[0].clone().into_bytes();
    altered[0] = if altered[0] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    for wrong in [
        stranger.as_str(),
        altered.as_str(),
        "not-a-code",
        stranger.as_str(),
    ] {
        let r = sign_in(&app, "doc", Some(wrong));
        assert_eq!(r.status, 401, "{wrong}: {:?}", r.body);
        assert_eq!(r.error_code(), "invalid_totp");
    }
    let locked = sign_in(&app, "doc", Some(&codes[0]));
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    assert_eq!(locked.error_code(), "account_locked");
    assert_eq!(codes_left(&app, &doc), 10, "the refused code is kept");
    let logins = audit_outcomes(&app, &admin, "auth.login");
    assert_eq!(
        logins
            .iter()
            .filter(|o| **o == "invalid_recovery_code")
            .count(),
        3,
        "{logins:?}"
    );
    assert!(logins.contains(&json!("account_locked")), "{logins:?}");
    assert_eq!(app.cli(&["audit", "verify"]), 0);
}

/// Confirming shows ten recovery codes once; each signs in once in place of the app's code
/// (typed in any case, with or without its dash), the count left goes down, a new set replaces
/// the old one, and the database keeps no code, only keyed hashes.
fn recovery_codes_sign_in_once_each_and_are_renewed(backend: Backend) {
    let Enrolled {
        app,
        admin,
        doc,
        secret,
        step,
        codes,
    } = enrolled_doc(backend);
    assert_eq!(codes_left(&app, &doc), 10);

    let first = sign_in(&app, "doc", Some(&codes[0]));
    assert_eq!(first.status, 200, "{:?}", first.body);
    let token = first.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/v1/me", Some(&token)).body["login"], "doc");
    assert_eq!(codes_left(&app, &doc), 9);
    let again = sign_in(&app, "doc", Some(&codes[0]));
    assert_eq!(again.status, 401, "{:?}", again.body);
    assert_eq!(again.error_code(), "invalid_totp");
    // As typed from paper: upper case, a space for the dash.
    let typed = codes[1].to_uppercase().replace('-', " ");
    let second = sign_in(&app, "doc", Some(&format!(" {typed} ")));
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(codes_left(&app, &doc), 8);
    // A recovery code is no password: a wrong password with it is a wrong password.
    let wrong_password = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "doc", "password": "not-the-password", "totp": codes[2]}),
    );
    assert_eq!(wrong_password.error_code(), "invalid_credentials");
    assert_eq!(codes_left(&app, &doc), 8, "not used up by a wrong password");

    // Only for oneself, signed in, with a second factor.
    let renew = "/api/v1/me/totp/recovery-codes";
    // The next code after the confirmation's (still in the window).
    let current = json!({"code": totp::code(&secret, (step + 1).max(now_step()))});
    assert_eq!(app.post(renew, None, &current).status, 401);
    let inst = app.create_institution(&admin, "H2", "Hospital");
    app.create_user(&admin, "nurse", &["user"], Some(inst));
    let nurse = app.login("nurse", PASSWORD);
    let none = app.post(renew, Some(&nurse), &json!({"code": "123456"}));
    assert_eq!(none.status, 404, "{:?}", none.body);
    assert_eq!(codes_left(&app, &nurse), 0);

    // A new set: the old codes no longer sign in, the new ones do.
    let renewed = app.post(renew, Some(&doc), &current);
    assert_eq!(renewed.status, 200, "{:?}", renewed.body);
    assert_eq!(renewed.body["enabled"], true);
    assert_eq!(renewed.body["recovery_codes_left"], 10);
    let fresh = recovery_codes(&renewed.body);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    assert_eq!(codes_left(&app, &doc), 10);
    // The code that renewed them counts once.
    let replay = app.post(renew, Some(&doc), &current);
    assert_eq!(replay.error_code(), "invalid_totp");
    let old = sign_in(&app, "doc", Some(&codes[3]));
    assert_eq!(old.status, 401, "{:?}", old.body);
    assert_eq!(old.error_code(), "invalid_totp");
    assert_eq!(sign_in(&app, "doc", Some(&fresh[0])).status, 200);
    assert_eq!(codes_left(&app, &doc), 9);
    assert_eq!(stored_recovery_codes(&app), 9);

    // The database keeps keyed hashes: no code, in any form, and not its bare SHA-256.
    let hashes = app.query_texts("SELECT code_hash AS t FROM user_totp_recovery");
    // (As text: the codes are ASCII, and a text search is much faster over PostgreSQL's files.)
    let stored = String::from_utf8_lossy(&app.stored_bytes()).into_owned();
    let log = palreg_tests::captured_log();
    for code in codes.iter().chain(&fresh) {
        let bare = code.replace('-', "");
        for form in [code.as_str(), bare.as_str(), &code.to_uppercase()] {
            assert!(!stored.contains(form), "{form} is in the database");
            assert!(!log.contains(form), "{form} is in the log");
        }
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(bare.as_bytes()));
        assert!(!hashes.contains(&digest));
    }
    // The check is not vacuous: the hashes are there.
    assert!(hashes.iter().all(|h| stored.contains(h.as_str())));

    // The audit log tells sign-ins with a recovery code from the others, and has the renewals.
    let page = app.get(
        "/api/v1/admin/audit?action=auth.login&outcome=ok&limit=100",
        Some(&admin),
    );
    let details: Vec<Value> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_login"] == "doc")
        .map(|e| e["details"].clone())
        .collect();
    let with_codes: Vec<&Value> = details
        .iter()
        .filter(|d| d.as_str().is_some_and(|d| d.contains("recovery_code")))
        .collect();
    assert_eq!(with_codes.len(), 3, "{details:?}");
    // Newest first: 9 left of the new set; 8 and 9 of the first.
    let lefts: Vec<Value> = with_codes
        .iter()
        .map(|d| serde_json::from_str::<Value>(d.as_str().unwrap()).unwrap())
        .map(|d| {
            assert_eq!(d["second_factor"], "recovery_code");
            d["recovery_codes_left"].clone()
        })
        .collect();
    assert_eq!(lefts, vec![json!(9), json!(8), json!(9)]);
    assert_eq!(
        audit_outcomes(&app, &admin, "me.totp.recovery_codes"),
        vec![json!("invalid_totp"), json!("ok"), json!("not_found")]
    );
    assert_eq!(app.cli(&["audit", "verify"]), 0);
}

fn a_role_can_require_a_second_factor(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let inst = app.create_institution(&admin, "H1", "Hospice");
    let other = app.create_institution(&admin, "H2", "Hospital");
    let doc_id = app.create_user(&admin, "doc", &["user"], Some(inst));
    app.create_user(&admin, "other.admin", &["admin"], Some(other));
    let roles = app.get("/api/v1/admin/roles", Some(&admin));
    let user_role = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "user")
        .unwrap()
        .clone();
    assert_eq!(user_role["require_totp"], false);
    let doc = app.login("doc", PASSWORD);
    let search = json!({"limit": 5});
    assert_eq!(
        app.post("/api/v1/patients/search", Some(&doc), &search)
            .status,
        200
    );

    let required = app.put(
        &format!("/api/v1/admin/roles/{}", user_role["id"]),
        Some(&admin),
        &json!({"require_totp": true}),
    );
    assert_eq!(required.status, 200, "{:?}", required.body);
    assert_eq!(required.body["require_totp"], true);
    // At once, on the live session: nothing needing a permission until doc enrols.
    let me = app.get("/api/v1/me", Some(&doc));
    assert_eq!(me.body["totp_enrolment_required"], true);
    assert_eq!(
        me.body["totp"],
        json!({"enabled": false, "required": true, "recovery_codes_left": 0})
    );
    for refused in [
        app.post("/api/v1/patients/search", Some(&doc), &search),
        app.get(&format!("/api/v1/institutions/{inst}/members"), Some(&doc)),
        app.post("/api/v1/prescriptions/search", Some(&doc), &search),
    ] {
        assert_eq!(refused.status, 403, "{:?}", refused.body);
        assert_eq!(refused.error_code(), "totp_enrolment_required");
    }
    // Signing in again still works (to enrol); nothing to remove yet.
    let doc = app.login("doc", PASSWORD);
    let nothing = app.delete_json("/api/v1/me/totp", Some(&doc), &json!({"code": "123456"}));
    assert_eq!(nothing.status, 404);
    let (secret, step, codes) = enrol(&app, &doc, "doc");
    assert_eq!(
        app.post("/api/v1/patients/search", Some(&doc), &search)
            .status,
        200
    );
    // It cannot be removed while the role requires it.
    let kept = app.delete_json(
        "/api/v1/me/totp",
        Some(&doc),
        &json!({"code": totp::code(&secret, step + 1)}),
    );
    assert_eq!(kept.status, 409);
    assert_eq!(kept.error_code(), "totp_required_by_role");

    // Resetting: only an administrator, only within its institution.
    let reset = format!("/api/v1/admin/users/{doc_id}/totp");
    assert_eq!(app.delete(&reset, Some(&doc)).status, 403);
    let stranger = app.login("other.admin", PASSWORD);
    assert_eq!(app.delete(&reset, Some(&stranger)).status, 404);
    assert_eq!(stored_recovery_codes(&app), 10);
    assert_eq!(app.delete(&reset, Some(&admin)).status, 204);
    assert_eq!(app.delete(&reset, Some(&admin)).status, 404);
    // The recovery codes went with it.
    assert_eq!(stored_recovery_codes(&app), 0);
    assert_eq!(codes_left(&app, &doc), 0);
    let again = app.post("/api/v1/patients/search", Some(&doc), &search);
    assert_eq!(again.error_code(), "totp_enrolment_required");
    assert_eq!(sign_in(&app, "doc", None).status, 200);
    assert_eq!(
        audit_outcomes(&app, &admin, "admin.user.totp_reset"),
        vec![json!("not_found"), json!("ok"), json!("not_found")]
    );
    // Enrolled again, doc has a new set; the old one does not come back.
    let doc = app.login("doc", PASSWORD);
    let (_, _, fresh) = enrol(&app, &doc, "doc");
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    assert_eq!(
        sign_in(&app, "doc", Some(&codes[0])).error_code(),
        "invalid_totp"
    );
    assert_eq!(sign_in(&app, "doc", Some(&fresh[0])).status, 200);
}

fn a_second_factor_is_removed_with_its_code_or_reset_from_the_command_line(backend: Backend) {
    let Enrolled {
        app,
        admin,
        doc,
        secret,
        step,
        codes,
    } = enrolled_doc(backend);
    let wrong = app.delete_json(
        "/api/v1/me/totp",
        Some(&doc),
        &json!({"code": wrong_code(&secret)}),
    );
    assert_eq!(wrong.status, 422);
    let removed = app.delete_json(
        "/api/v1/me/totp",
        Some(&doc),
        &json!({"code": totp::code(&secret, step + 1)}),
    );
    assert_eq!(removed.status, 204, "{:?}", removed.body);
    assert_eq!(sign_in(&app, "doc", None).status, 200);
    // Its recovery codes went with it.
    assert_eq!(stored_recovery_codes(&app), 0);
    assert_eq!(codes_left(&app, &doc), 0);
    assert_eq!(sign_in(&app, "doc", Some(&codes[0])).status, 200);

    // The last administrator loses the phone: the command line resets it.
    let (_, _, admin_codes) = enrol(&app, &admin, "admin");
    assert_eq!(stored_recovery_codes(&app), 10);
    let refused = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD}),
    );
    assert_eq!(refused.error_code(), "totp_required");
    assert_eq!(app.cli(&["user", "reset-totp", "admin"]), 0);
    assert_eq!(stored_recovery_codes(&app), 0);
    let with_code = app.post(
        "/api/v1/auth/login",
        None,
        &json!({"login": "admin", "password": ADMIN_PASSWORD, "totp": admin_codes[0]}),
    );
    assert_eq!(
        with_code.status, 200,
        "no second factor: the code is not looked at"
    );
    let admin = app.admin_token();
    assert_eq!(
        audit_outcomes(&app, &admin, "admin.user.totp_reset"),
        vec![json!("ok")]
    );
    assert_eq!(app.cli(&["audit", "verify"]), 0);
}

on_both_backends!(
    sign_in_asks_for_the_code_once_enrolled,
    wrong_codes_lock_the_account_like_wrong_passwords,
    wrong_recovery_codes_lock_the_account_like_wrong_passwords,
    recovery_codes_sign_in_once_each_and_are_renewed,
    a_role_can_require_a_second_factor,
    a_second_factor_is_removed_with_its_code_or_reset_from_the_command_line,
);
