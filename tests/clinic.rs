//! A clinic ready for register tests: an institution whose two clinicians hold keys and the
//! institution key, and helpers that do in the test what the browser does (seal passports,
//! compute blind indexes) with client-crypto.

use client_crypto::{BlindIndexBits, InstitutionKey, Passport, Pseudonym, Sex, UserKeyPair};
use serde_json::{Value, json};

use crate::{PASSWORD, TestApp};

pub struct Clinician {
    pub id: i64,
    pub login: String,
    pub token: String,
    pub keys: UserKeyPair,
}

pub struct Clinic {
    pub admin: String,
    pub institution_id: i64,
    pub a: Clinician,
    pub b: Clinician,
    /// The institution key as the clinicians hold it (opened from their envelopes).
    pub key: InstitutionKey,
    /// Bits of the blind indexes this clinic computes.
    pub bits: u8,
}

/// A clinician of `institution` with a published public key.
pub fn clinician(app: &TestApp, admin: &str, login: &str, institution: i64) -> Clinician {
    let id = app.create_user(admin, login, &["user"], Some(institution));
    let token = app.login(login, PASSWORD);
    let keys = UserKeyPair::generate().expect("key pair");
    let r = app.put(
        "/api/v1/me/public-key",
        Some(&token),
        &json!({"public_key": keys.public_key().encode()}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    Clinician {
        id,
        login: login.into(),
        token,
        keys,
    }
}

impl Clinician {
    /// Opens the caller's envelope of `version` of the institution key.
    pub fn open_key(&self, app: &TestApp, institution_id: i64, version: u32) -> InstitutionKey {
        let r = app.get("/api/v1/me/envelopes", Some(&self.token));
        assert_eq!(r.status, 200, "{:?}", r.body);
        let envelope = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["institution_id"] == institution_id && e["key_version"] == version)
            .unwrap_or_else(|| panic!("{} holds no version {version}", self.login));
        self.keys
            .open_key_envelope(
                envelope["envelope"].as_str().unwrap(),
                self.id,
                institution_id,
                version,
            )
            .expect("envelope opens")
    }
}

/// Institution `code`, clinicians `<code>.a` and `<code>.b`; `a` creates the institution key
/// and grants it to `b`.
pub fn clinic(app: &TestApp, admin: &str, code: &str) -> Clinic {
    let institution_id = app.create_institution(admin, code, &format!("Institution {code}"));
    let a = clinician(
        app,
        admin,
        &format!("{}.a", code.to_lowercase()),
        institution_id,
    );
    let b = clinician(
        app,
        admin,
        &format!("{}.b", code.to_lowercase()),
        institution_id,
    );
    let key = InstitutionKey::generate(1).expect("key");
    let r = app.post(
        &format!("/api/v1/institutions/{institution_id}/keys"),
        Some(&a.token),
        &json!({"version": 1, "envelope": key.wrap_for(a.keys.public_key(), a.id, institution_id).unwrap()}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = a.open_key(app, institution_id, 1);
    let r = app.post(
        &format!("/api/v1/institutions/{institution_id}/keys/1/envelopes"),
        Some(&a.token),
        &json!({"recipient_id": b.id, "envelope": key.wrap_for(b.keys.public_key(), b.id, institution_id).unwrap()}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    Clinic {
        admin: admin.to_string(),
        institution_id,
        a,
        b,
        key,
        bits: 16,
    }
}

/// A reference-book entry's id by code.
pub fn ref_id(app: &TestApp, token: &str, book: &str, code: &str) -> i64 {
    let r = app.get(&format!("/api/v1/refs/{book}"), Some(token));
    r.body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == code)
        .unwrap_or_else(|| panic!("{book}/{code} missing"))["id"]
        .as_i64()
        .unwrap()
}

pub fn passport(surname: &str, first_name: &str, dob: &str, sex: Sex) -> Passport {
    Passport::new(surname, first_name, dob, sex)
}

impl Clinic {
    pub fn bits(&self) -> BlindIndexBits {
        BlindIndexBits::new(self.bits).unwrap()
    }

    /// The tokens the browser stores for a passport (each field at its own length: the date
    /// of birth's is shorter).
    pub fn tokens(&self, key: &InstitutionKey, p: &Passport) -> Vec<String> {
        let indexes = key.passport_blind_indexes(p, self.bits()).unwrap();
        indexes.iter().map(|i| i.to_token()).collect()
    }

    /// The body of `POST /api/v1/patients` for a passport and a record.
    pub fn new_patient(&self, p: &Passport, record: Value) -> (Pseudonym, Value) {
        let pseudonym = Pseudonym::generate().unwrap();
        let sealed = self
            .key
            .seal_passport(p, &pseudonym, self.institution_id)
            .unwrap();
        let body = json!({
            "pseudonym": pseudonym.as_str(),
            "passport": sealed,
            "blind_indexes": self.tokens(&self.key, p),
            "record": record,
        });
        (pseudonym, body)
    }

    /// Opens a patient's passport as the browser does.
    pub fn open(&self, patient: &Value) -> Passport {
        let pseudonym = Pseudonym::parse(patient["pseudonym"].as_str().unwrap()).unwrap();
        self.key
            .open_passport(
                patient["passport"].as_str().unwrap(),
                &pseudonym,
                self.institution_id,
            )
            .expect("passport opens")
    }
}

/// A plain record for a registered patient with diagnosis C50 (ids looked up by code).
pub fn record(app: &TestApp, token: &str, birth_year: i32) -> Value {
    json!({
        "sex": "F",
        "birth_year": birth_year,
        "diagnosis_id": ref_id(app, token, "diagnoses", "C50"),
        "status": "registered",
        "registered_on": "2026-01-15",
        "needs": [],
    })
}
