use client_crypto::{InstitutionKey, UserKeyPair};
use palreg_tests::clinic::{Clinic, clinic, clinician};
use palreg_tests::{Backend, PASSWORD, TestApp, on_both_backends, spawn_app};
use serde_json::json;

fn colleagues_grant_the_institution_key(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    // b opened the same key a created: what one seals the other opens.
    let key_b = c.b.open_key(&app, c.institution_id, 1);
    let p = palreg_tests::clinic::passport(
        "Смирнова",
        "Ольга",
        "1950-03-04",
        client_crypto::Sex::Female,
    );
    let pseudonym = client_crypto::Pseudonym::generate().unwrap();
    let sealed = c
        .key
        .seal_passport(&p, &pseudonym, c.institution_id)
        .unwrap();
    assert_eq!(
        key_b
            .open_passport(&sealed, &pseudonym, c.institution_id)
            .unwrap()
            .surname,
        "Смирнова"
    );

    let members = app.get(
        &format!("/api/v1/institutions/{}/members", c.institution_id),
        Some(&c.a.token),
    );
    assert_eq!(members.status, 200, "{:?}", members.body);
    assert_eq!(members.body["current_version"], 1);
    let list = members.body["members"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for m in list {
        assert_eq!(m["holds"], json!([1]));
        assert!(m["fingerprint"].as_str().unwrap().len() >= 10);
    }
    // The fingerprint the server shows is the one the clinician computes locally.
    let a_view = list.iter().find(|m| m["user_id"] == c.a.id).unwrap();
    assert_eq!(
        a_view["fingerprint"].as_str().unwrap(),
        c.a.keys.public_key().fingerprint().as_str()
    );

    // A newcomer waits for access until a holder grants it.
    let n = clinician(&app, &admin, "newcomer", c.institution_id);
    let members = app.get(
        &format!("/api/v1/institutions/{}/members", c.institution_id),
        Some(&n.token),
    );
    let waiting = members.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == n.id)
        .unwrap()
        .clone();
    assert_eq!(waiting["holds"], json!([]));
    let envelope = c
        .key
        .wrap_for(n.keys.public_key(), n.id, c.institution_id)
        .unwrap();
    // Not a holder: cannot grant, even to itself.
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys/1/envelopes", c.institution_id),
        Some(&n.token),
        &json!({"recipient_id": n.id, "envelope": envelope}),
    );
    assert_eq!((r.status, r.error_code()), (409, "not_a_key_holder"));
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys/1/envelopes", c.institution_id),
        Some(&c.b.token),
        &json!({"recipient_id": n.id, "envelope": envelope}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    n.open_key(&app, c.institution_id, 1);

    // Shapes are checked; versions are ordered.
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys/1/envelopes", c.institution_id),
        Some(&c.a.token),
        &json!({"recipient_id": n.id, "envelope": "AAAA"}),
    );
    assert_eq!(r.status, 400);
    let r = app.put(
        "/api/v1/me/public-key",
        Some(&n.token),
        &json!({"public_key": "not-a-key"}),
    );
    assert_eq!(r.status, 400);
    let other = InstitutionKey::generate(1).unwrap();
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys", c.institution_id),
        Some(&c.a.token),
        &json!({"version": 1, "envelope": other.wrap_for(c.a.keys.public_key(), c.a.id, c.institution_id).unwrap()}),
    );
    assert_eq!((r.status, r.error_code()), (409, "wrong_key_version"));
    // Rotation needs an administrator of the institution.
    let v2 = InstitutionKey::generate(2).unwrap();
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys", c.institution_id),
        Some(&c.a.token),
        &json!({"version": 2, "envelope": v2.wrap_for(c.a.keys.public_key(), c.a.id, c.institution_id).unwrap(), "link": c.key.link_to(&v2, c.institution_id).unwrap()}),
    );
    assert_eq!(r.status, 403);
}

fn deregistration_and_a_new_key_pair_drop_envelopes(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    // b lost its key file: a new key pair replaces the old one and its envelopes go.
    let fresh = UserKeyPair::generate().unwrap();
    let r = app.put(
        "/api/v1/me/public-key",
        Some(&c.b.token),
        &json!({"public_key": fresh.public_key().encode()}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["replaced"], true);
    assert_eq!(
        app.get("/api/v1/me/envelopes", Some(&c.b.token)).body,
        json!([])
    );
    // a grants again, to the new key.
    let envelope = c
        .key
        .wrap_for(fresh.public_key(), c.b.id, c.institution_id)
        .unwrap();
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys/1/envelopes", c.institution_id),
        Some(&c.a.token),
        &json!({"recipient_id": c.b.id, "envelope": envelope}),
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        app.get("/api/v1/me/envelopes", Some(&c.b.token))
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // De-registering b deletes its envelopes.
    assert_eq!(
        app.delete(&format!("/api/v1/admin/users/{}", c.b.id), Some(&admin))
            .status,
        204
    );
    let members = app.get(
        &format!("/api/v1/institutions/{}/members", c.institution_id),
        Some(&c.a.token),
    );
    assert!(
        members.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["user_id"] != c.b.id)
    );
    app.put(
        &format!("/api/v1/admin/users/{}", c.b.id),
        Some(&admin),
        &json!({"active": true}),
    );
    let b = app.login(&c.b.login, PASSWORD);
    assert_eq!(app.get("/api/v1/me/envelopes", Some(&b)).body, json!([]));

    // An edit naming a's own institution keeps its envelopes.
    let r = app.put(
        &format!("/api/v1/admin/users/{}", c.a.id),
        Some(&admin),
        &json!({"full_name": "Anna Petrova", "institution_id": c.institution_id}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        app.get("/api/v1/me/envelopes", Some(&c.a.token))
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // a moves to another institution: it leaves H1's key behind, as a departed user does.
    let h2 = app.create_institution(&admin, "H2", "Hospice 2");
    let r = app.put(
        &format!("/api/v1/admin/users/{}", c.a.id),
        Some(&admin),
        &json!({"institution_id": h2}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let a = app.login(&c.a.login, PASSWORD);
    assert_eq!(app.get("/api/v1/me/envelopes", Some(&a)).body, json!([]));
    // Back in H1, it holds nothing until a colleague grants it again.
    app.put(
        &format!("/api/v1/admin/users/{}", c.a.id),
        Some(&admin),
        &json!({"institution_id": c.institution_id}),
    );
    let a = app.login(&c.a.login, PASSWORD);
    assert_eq!(app.get("/api/v1/me/envelopes", Some(&a)).body, json!([]));
}

/// A version whose link does not verify (planted by someone without the current key, or a
/// rotation gone wrong) is refused by every client; the operator withdraws it with
/// `palreg keys withdraw`, which takes only the newest version and only while nothing is
/// sealed under it.
fn a_planted_key_version_is_withdrawn(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    register_orlova(&app, &c);
    let withdraw = |version: &str| {
        app.db.palreg(&[
            "keys",
            "withdraw",
            "--institution",
            "H1",
            "--version",
            version,
        ])
    };
    let refused = withdraw("1").unwrap_err();
    assert!(refused.contains("1 passport(s)"), "{refused}");
    app.put(
        &format!("/api/v1/admin/users/{}", c.a.id),
        Some(&admin),
        &json!({"roles": ["user", "admin"]}),
    );
    let planted = InstitutionKey::generate(2).unwrap();
    let unrelated = InstitutionKey::generate(1).unwrap();
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys", c.institution_id),
        Some(&c.a.token),
        &json!({"version": 2, "envelope": planted.wrap_for(c.a.keys.public_key(), c.a.id, c.institution_id).unwrap(), "link": unrelated.link_to(&planted, c.institution_id).unwrap()}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys/2/envelopes", c.institution_id),
        Some(&c.a.token),
        &json!({"recipient_id": c.b.id, "envelope": planted.wrap_for(c.b.keys.public_key(), c.b.id, c.institution_id).unwrap()}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    // What b's client finds: version 2 does not follow from version 1.
    let held = [
        c.b.open_key(&app, c.institution_id, 1),
        c.b.open_key(&app, c.institution_id, 2),
    ];
    let envelopes = app.get("/api/v1/me/envelopes", Some(&c.b.token)).body;
    let (trusted, why) = client_crypto::key_chain::trusted_prefix(&held, c.institution_id, |v| {
        envelopes
            .as_array()?
            .iter()
            .find(|e| e["key_version"] == v)?["link"]
            .as_str()
    });
    assert_eq!(
        (trusted, why),
        (1, Some(client_crypto::key_chain::Untrusted::BadLink))
    );

    let refused = withdraw("1").unwrap_err();
    assert!(refused.contains("not the newest"), "{refused}");
    let refused = app
        .db
        .palreg(&["keys", "withdraw", "--institution", "H9", "--version", "2"])
        .unwrap_err();
    assert!(refused.contains("no institution"), "{refused}");
    assert_eq!(withdraw("2"), Ok(0));
    let members = app.get(
        &format!("/api/v1/institutions/{}/members", c.institution_id),
        Some(&c.a.token),
    );
    assert_eq!(members.body["current_version"], 1);
    for token in [&c.a.token, &c.b.token] {
        let mine = app.get("/api/v1/me/envelopes", Some(token)).body;
        assert!(
            mine.as_array()
                .unwrap()
                .iter()
                .all(|e| e["key_version"] == 1),
            "{mine}"
        );
    }
    let audit = app.get("/api/v1/admin/audit?action=keys.withdraw", Some(&admin));
    assert_eq!(
        audit.body["items"][0]["object_id"],
        format!("{}/2", c.institution_id)
    );
    assert_eq!(app.cli(&["audit", "verify"]), 0);
}

/// Registers Орлова Нина in `c`: her pseudonym and id.
fn register_orlova(app: &TestApp, c: &Clinic) -> (client_crypto::Pseudonym, i64) {
    let (pseudonym, body) = c.new_patient(
        &palreg_tests::clinic::passport("Орлова", "Нина", "1941-07-01", client_crypto::Sex::Female),
        palreg_tests::clinic::record(app, &c.a.token, 1941),
    );
    let created = app.post("/api/v1/patients", Some(&c.a.token), &body);
    assert_eq!(created.status, 201, "{:?}", created.body);
    (pseudonym, created.body["id"].as_i64().unwrap())
}

/// Makes `c.a` an administrator, who then creates key version 2 (wrapped to itself only).
fn rotate_as_admin(app: &TestApp, admin: &str, c: &Clinic) -> InstitutionKey {
    app.put(
        &format!("/api/v1/admin/users/{}", c.a.id),
        Some(admin),
        &json!({"roles": ["user", "admin"]}),
    );
    let v2 = InstitutionKey::generate(2).unwrap();
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys", c.institution_id),
        Some(&c.a.token),
        &json!({"version": 2, "envelope": v2.wrap_for(c.a.keys.public_key(), c.a.id, c.institution_id).unwrap(), "link": c.key.link_to(&v2, c.institution_id).unwrap()}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    v2
}

/// Every version after the first comes with its link to the one before it, made by the holder
/// who rotated; the server stores it, hands it out with the envelopes, and never replaces it.
/// A client checks the chain before it seals anything under a version (client-crypto
/// `key_chain`), so a version planted without the previous key is found out.
fn key_versions_carry_their_link(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let other = clinic(&app, &admin, "H2");
    app.put(
        &format!("/api/v1/admin/users/{}", c.a.id),
        Some(&admin),
        &json!({"roles": ["user", "admin"]}),
    );
    let keys_path = format!("/api/v1/institutions/{}/keys", c.institution_id);
    let v2 = InstitutionKey::generate(2).unwrap();
    let envelope = v2
        .wrap_for(c.a.keys.public_key(), c.a.id, c.institution_id)
        .unwrap();
    let link = c.key.link_to(&v2, c.institution_id).unwrap();
    // Refused before anything is written: no link, a malformed one, or one for version 1.
    for (body, code) in [
        (json!({"version": 2, "envelope": envelope}), "link_required"),
        (
            json!({"version": 2, "envelope": envelope, "link": "AAAA"}),
            "invalid_length",
        ),
        (
            json!({"version": 2, "envelope": envelope, "link": "Ольга"}),
            "invalid_encoding",
        ),
    ] {
        let r = app.post(&keys_path, Some(&c.a.token), &body);
        assert_eq!((r.status, r.error_code()), (400, code), "{body}");
    }
    let r = app.post(
        &format!("/api/v1/institutions/{}/keys", other.institution_id),
        Some(&other.a.token),
        &json!({"version": 1, "envelope": envelope, "link": link}),
    );
    assert_eq!((r.status, r.error_code()), (400, "unexpected_link"));
    let members = format!("/api/v1/institutions/{}/members", c.institution_id);
    assert_eq!(
        app.get(&members, Some(&c.a.token)).body["current_version"],
        1
    );

    let r = app.post(
        &keys_path,
        Some(&c.a.token),
        &json!({"version": 2, "envelope": envelope, "link": link}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["link"], link.as_str());
    let versions = app.get(&members, Some(&c.a.token)).body["versions"].clone();
    assert_eq!(versions[0]["link"], json!(null));
    assert_eq!(versions[1]["link"], link.as_str());
    // The envelopes carry their version's link: what a client checks with the key it opens.
    let mine = app.get("/api/v1/me/envelopes", Some(&c.a.token)).body;
    let links: Vec<_> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key_version"].clone(), e["link"].clone()))
        .collect();
    assert_eq!(
        links,
        [(json!(1), json!(null)), (json!(2), json!(link.as_str()))]
    );
    let opened = c.a.open_key(&app, c.institution_id, 2);
    c.key
        .verify_link(&opened, c.institution_id, mine[1]["link"].as_str().unwrap())
        .unwrap();

    // A link, once stored, stays: not even a holder of both versions replaces it.
    let link_path = format!("{keys_path}/2/link");
    let forged = InstitutionKey::generate(1)
        .unwrap()
        .link_to(&v2, c.institution_id)
        .unwrap();
    let r = app.put(&link_path, Some(&c.a.token), &json!({"link": forged}));
    assert_eq!((r.status, r.error_code()), (409, "already_linked"));
    // A version made before links were kept: only a holder of it and of the one before it
    // may add its link, and only once.
    app.raw_sql(&format!(
        "UPDATE institution_keys SET link = NULL WHERE institution_id = {} AND version = 2",
        c.institution_id
    ));
    let r = app.put(&link_path, Some(&c.b.token), &json!({"link": link}));
    assert_eq!((r.status, r.error_code()), (409, "not_a_key_holder"));
    for (path, token) in [
        (format!("{keys_path}/1/link"), &c.a.token),
        (format!("{keys_path}/3/link"), &c.a.token),
        (link_path.clone(), &other.a.token),
        (
            format!("/api/v1/institutions/{}/keys/2/link", other.institution_id),
            &c.a.token,
        ),
    ] {
        let r = app.put(&path, Some(token), &json!({"link": link}));
        assert_eq!(r.status, 404, "{path}: {:?}", r.body);
    }
    let r = app.put(&link_path, Some(&c.a.token), &json!({"link": "AAAA"}));
    assert_eq!(r.status, 400);
    // Keys are the `patients` permission's: a ministry analyst may not touch them.
    app.create_user(&admin, "analyst", &["ministry"], None);
    let m = app.login("analyst", PASSWORD);
    let r = app.put(&link_path, Some(&m), &json!({"link": link}));
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = app.put(&link_path, None, &json!({"link": link}));
    assert_eq!(r.status, 401, "{:?}", r.body);
    let r = app.put(&link_path, Some(&c.a.token), &json!({"link": link}));
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = app.put(&link_path, Some(&c.a.token), &json!({"link": forged}));
    assert_eq!((r.status, r.error_code()), (409, "already_linked"));
    assert_eq!(
        app.get(&members, Some(&c.a.token)).body["versions"][1]["link"],
        link.as_str()
    );
    let audit = app.get("/api/v1/admin/audit?action=keys.link", Some(&admin));
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["object_id"] == format!("{}/2", c.institution_id))
    );
}

fn administrators_rotate_the_key(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    register_orlova(&app, &c);
    let v2 = rotate_as_admin(&app, &admin, &c);
    let members = app.get(
        &format!("/api/v1/institutions/{}/members", c.institution_id),
        Some(&c.a.token),
    );
    assert_eq!(members.body["current_version"], 2);
    assert_eq!(members.body["passports_pending_rotation"], 1);
    // New passports must use version 2 now.
    let (_, stale) = c.new_patient(
        &palreg_tests::clinic::passport("Белова", "Анна", "1950-01-01", client_crypto::Sex::Female),
        palreg_tests::clinic::record(&app, &c.a.token, 1950),
    );
    let r = app.post("/api/v1/patients", Some(&c.a.token), &stale);
    assert_eq!((r.status, r.error_code()), (409, "stale_key_version"));
    // The browser re-encrypts what is pending, found by the key-version filter.
    let pending = app.post(
        "/api/v1/patients/search",
        Some(&c.a.token),
        &json!({"key_version_below": 2}),
    );
    assert_eq!(pending.body["total"], 1);
    let patient = &pending.body["items"][0];
    let passport = c.open(patient);
    let pseudonym =
        client_crypto::Pseudonym::parse(patient["pseudonym"].as_str().unwrap()).unwrap();
    let resealed = v2
        .seal_passport(&passport, &pseudonym, c.institution_id)
        .unwrap();
    let r = app.put(
        &format!("/api/v1/patients/{}", patient["id"]),
        Some(&c.a.token),
        &json!({"version": patient["version"], "passport": resealed, "blind_indexes": c.tokens(&v2, &passport), "record": patient["record"]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["passport_key_version"], 2);
    let members = app.get(
        &format!("/api/v1/institutions/{}/members", c.institution_id),
        Some(&c.a.token),
    );
    assert_eq!(members.body["passports_pending_rotation"], 0);
    let history = app.get(
        &format!("/api/v1/patients/{}/history", patient["id"]),
        Some(&c.a.token),
    );
    assert_eq!(history.body[0]["change"], "passport");
    assert_eq!(history.body[1]["passport_key_version"], 1);
    // The history keeps no passport envelope: the one sealed under the retired version 1 is
    // nowhere in the versions, nor is the new one.
    let snapshots = app.query_texts(&format!(
        "SELECT snapshot AS t FROM patient_versions WHERE patient_id = {}",
        patient["id"]
    ));
    assert_eq!(snapshots.len(), 2);
    for snapshot in &snapshots {
        let stored: serde_json::Value = serde_json::from_str(snapshot).unwrap();
        assert!(stored["record"].get("passport").is_none(), "{snapshot}");
        assert!(
            stored["record"]["passport_key_version"].is_i64(),
            "{snapshot}"
        );
        for envelope in [&patient["passport"], &r.body["passport"]] {
            let envelope = envelope.as_str().unwrap();
            assert!(!snapshot.contains(envelope), "{snapshot}");
        }
    }
    // b, not yet granted version 2, holds only version 1.
    let b_env = app.get("/api/v1/me/envelopes", Some(&c.b.token));
    assert!(
        b_env
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["key_version"] == 1)
    );
}

/// After a rotation the browser re-seals the observation notes left under the old version: it
/// finds them, opens each with the old key and seals the same text under the new one. The
/// server checks the new seal's version, the note's `note_ref`, the version it was opened at,
/// the caller's scope and that the caller holds the new key, and keeps no copy under the old.
fn a_rotation_reseals_observation_notes(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let other = clinic(&app, &admin, "H2");
    let (pseudonym, pid) = register_orlova(&app, &c);
    let text = "Дочь Светлана Орлова, звонить после 18:00";
    let binding = client_crypto::NoteBinding {
        purpose: "observation",
        pseudonym: &pseudonym,
        institution_id: c.institution_id,
        record_id: "obs-1",
    };
    let old_seal = c.key.seal_note(text, &binding).unwrap();
    let observations = format!("/api/v1/patients/{pid}/observations");
    let r = app.post(
        &observations,
        Some(&c.a.token),
        &json!({"observed_on": "2026-02-10", "pain_score": 5, "note": {"note_ref": "obs-1", "sealed": old_seal}}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let oid = r.body["id"].as_i64().unwrap();
    // An observation without a note has nothing to re-seal.
    let r = app.post(
        &observations,
        Some(&c.a.token),
        &json!({"observed_on": "2026-02-11", "ecog": 2}),
    );
    let bare = r.body["id"].as_i64().unwrap();
    let v2 = rotate_as_admin(&app, &admin, &c);
    let members = format!("/api/v1/institutions/{}/members", c.institution_id);
    assert_eq!(
        app.get(&members, Some(&c.a.token)).body["notes_pending_rotation"],
        1
    );
    // What is left, found by the key-version filter, with the pseudonym the note is bound to.
    let pending = app.get(
        "/api/v1/observations/sealed-notes?key_version_below=2",
        Some(&c.a.token),
    );
    assert_eq!(pending.status, 200, "{:?}", pending.body);
    assert_eq!(pending.body["total"], 1);
    let item = &pending.body["items"][0];
    assert_eq!(
        (item["id"].as_i64(), item["patient_id"].as_i64()),
        (Some(oid), Some(pid))
    );
    assert_eq!(item["pseudonym"], pseudonym.as_str());
    assert_eq!(item["note_key_version"], 1);
    let opened = c
        .key
        .open_note(item["note"]["sealed"].as_str().unwrap(), &binding)
        .unwrap();
    assert_eq!(opened, text);
    let new_seal = v2.seal_note(text, &binding).unwrap();
    let note = format!("/api/v1/observations/{oid}/note");
    // Refusals, none of which changes the note.
    let other_ref = v2
        .seal_note(
            text,
            &client_crypto::NoteBinding {
                record_id: "obs-2",
                ..binding
            },
        )
        .unwrap();
    for (token, body, status, code) in [
        // The note_ref is bound into the note and cannot change.
        (
            &c.a.token,
            json!({"from_key_version": 1, "note": {"note_ref": "obs-2", "sealed": other_ref}}),
            422,
            "note_ref_changed",
        ),
        // Sealed under the old version again.
        (
            &c.a.token,
            json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": c.key.seal_note(text, &binding).unwrap()}}),
            409,
            "stale_key_version",
        ),
        // Opened at a version it is not under.
        (
            &c.a.token,
            json!({"from_key_version": 2, "note": {"note_ref": "obs-1", "sealed": new_seal}}),
            409,
            "stale_version",
        ),
        // Not a sealed note at all.
        (
            &c.a.token,
            json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": "Светлана"}}),
            400,
            "",
        ),
        // b holds only version 1.
        (
            &c.b.token,
            json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": new_seal}}),
            409,
            "not_a_key_holder",
        ),
        // Another institution's clinician does not find it.
        (
            &other.a.token,
            json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": new_seal}}),
            404,
            "not_found",
        ),
    ] {
        let r = app.put(&note, Some(token), &body);
        assert_eq!(r.status, status, "{body}: {:?}", r.body);
        if !code.is_empty() {
            assert_eq!(r.error_code(), code, "{body}");
        }
    }
    let r = app.put(
        &format!("/api/v1/observations/{bare}/note"),
        Some(&c.a.token),
        &json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": new_seal}}),
    );
    assert_eq!((r.status, r.error_code()), (422, "no_note"));
    // Another institution sees nothing pending of this one, and a ministry user may not look.
    let theirs = app.get(
        "/api/v1/observations/sealed-notes?key_version_below=2",
        Some(&other.a.token),
    );
    assert_eq!(theirs.body["total"], 0);
    app.create_user(&admin, "analyst", &["ministry"], None);
    let m = app.login("analyst", PASSWORD);
    assert_eq!(
        app.get(
            "/api/v1/observations/sealed-notes?key_version_below=2",
            Some(&m)
        )
        .status,
        403
    );
    assert_eq!(
        app.put(
            &note,
            Some(&m),
            &json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": new_seal}})
        )
        .status,
        403
    );
    // The holder re-seals it.
    let r = app.put(
        &note,
        Some(&c.a.token),
        &json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": new_seal}}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["note_key_version"], 2);
    assert_eq!(r.body["pain_score"], 5);
    // Twice is a stale write.
    let again = app.put(
        &note,
        Some(&c.a.token),
        &json!({"from_key_version": 1, "note": {"note_ref": "obs-1", "sealed": new_seal}}),
    );
    assert_eq!((again.status, again.error_code()), (409, "stale_version"));
    assert_eq!(
        app.get(&members, Some(&c.a.token)).body["notes_pending_rotation"],
        0
    );
    let list = app.get(&observations, Some(&c.b.token));
    let listed = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == oid)
        .unwrap();
    assert_eq!(listed["note_key_version"], 2);
    assert_eq!(
        v2.open_note(listed["note"]["sealed"].as_str().unwrap(), &binding)
            .unwrap(),
        text
    );
    // The seal under the retired version is gone from the database; the change is audited.
    let stored = app.query_texts("SELECT note AS t FROM observations WHERE note IS NOT NULL");
    assert_eq!(stored, vec![new_seal.clone()]);
    let audited = app.query_texts(
        "SELECT outcome AS t FROM audit_log WHERE action = 'observations.reseal_note' ORDER BY seq",
    );
    assert_eq!(
        audited.iter().filter(|o| *o == "ok").count(),
        1,
        "{audited:?}"
    );
}

on_both_backends!(
    colleagues_grant_the_institution_key,
    deregistration_and_a_new_key_pair_drop_envelopes,
    administrators_rotate_the_key,
    a_rotation_reseals_observation_notes,
    key_versions_carry_their_link,
    a_planted_key_version_is_withdrawn,
);
