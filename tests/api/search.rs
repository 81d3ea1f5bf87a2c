//! Search results equal a plaintext model's answers on 10,000 synthetic patients.

use std::collections::BTreeSet;

use chrono_free::*;
use client_crypto::normalize;
use client_crypto::{BlindIndexField, Passport, Sex};
use palreg_tests::clinic::{Clinic, clinic, ref_id};
use palreg_tests::{Backend, TestApp, on_both_backends, spawn_app};
use serde_json::{Value, json};

/// Small date helpers, so the model needs no date crate.
mod chrono_free {
    pub fn iso(y: i32, m: u32, d: u32) -> String {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

const N: usize = 10_000;

const SURNAMES: [&str; 24] = [
    "Иванова",
    "Смирнова",
    "Кузнецова",
    "Попова",
    "Васильева",
    "Петрова",
    "Соколова",
    "Михайлова",
    "Новикова",
    "Фёдорова",
    "Федорова",
    "Морозова",
    "Волкова",
    "Алексеева",
    "Лебедева",
    "Семёнова",
    "Егорова",
    "Павлова",
    "Козлова",
    "Степанова",
    "Nikolaeva",
    "O'Connor",
    "Мёртенс-Иванова",
    "Orlova",
];
const FIRST: [&str; 8] = [
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Татьяна",
    "Наталья",
    "Ирина",
    "Светлана",
];

/// A deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the model knows of a patient: the plaintext and the record.
#[derive(Clone)]
struct Row {
    surname: String,
    dob: String,
    snils: String,
    birth_year: i32,
    sex: &'static str,
    diagnosis: i64,
    status: &'static str,
    registered_on: String,
    pseudonym: String,
}

fn norm(field: BlindIndexField, v: &str) -> String {
    normalize::normalize(field, v).unwrap()
}

/// Runs a search to the last page; opens every passport and keeps the true matches, as the
/// browser does. Returns the pseudonyms.
fn search_all(
    app: &TestApp,
    c: &Clinic,
    mut query: Value,
    keep: impl Fn(&Passport) -> bool,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = 0;
    query["limit"] = json!(500);
    loop {
        let r = app.post("/api/v1/patients/search", Some(&c.a.token), &query);
        assert_eq!(r.status, 200, "{:?}", r.body);
        let items = r.body["items"].as_array().unwrap();
        seen += items.len();
        for item in items {
            if keep(&c.open(item)) {
                out.insert(item["pseudonym"].as_str().unwrap().to_string());
            }
        }
        match r.body["next_after"].as_i64() {
            Some(after) => query["after"] = json!(after),
            None => {
                assert_eq!(
                    r.body["total"].as_u64().unwrap() as usize,
                    seen,
                    "total equals what paging returned"
                );
                break;
            }
        }
    }
    out
}

fn search_matches_a_plaintext_model(backend: Backend) {
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let mut c = clinic(&app, &admin, "H1");
    // Few bits, so every surname token matches many patients and the browser must drop the
    // false positives.
    c.bits = 6;
    let diagnoses = [
        ref_id(&app, &c.a.token, "diagnoses", "C50"),
        ref_id(&app, &c.a.token, "diagnoses", "C34"),
        ref_id(&app, &c.a.token, "diagnoses", "C16"),
        ref_id(&app, &c.a.token, "diagnoses", "I50"),
    ];
    let statuses = ["registered", "registered", "discharged", "deceased"];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut model = Vec::with_capacity(N);
    let mut batch = Vec::new();
    for i in 0..N {
        let surname = SURNAMES[rng.below(SURNAMES.len())];
        let year = 1925 + rng.below(80) as i32;
        let dob = iso(year, 1 + rng.below(12) as u32, 1 + rng.below(28) as u32);
        let snils = format!(
            "{:03}-{:03}-{:03} {:02}",
            rng.below(1000),
            rng.below(1000),
            rng.below(1000),
            rng.below(100)
        );
        let sex = if rng.below(3) == 0 { "M" } else { "F" };
        let mut p = Passport::new(
            surname,
            FIRST[rng.below(FIRST.len())],
            &dob,
            if sex == "M" { Sex::Male } else { Sex::Female },
        );
        p.snils = Some(snils.clone());
        let status = statuses[rng.below(4)];
        let registered_on = iso(
            2020 + rng.below(6) as i32,
            1 + rng.below(12) as u32,
            1 + rng.below(28) as u32,
        );
        let mut record = json!({
            "sex": sex, "birth_year": year, "diagnosis_id": diagnoses[rng.below(4)],
            "status": status, "registered_on": registered_on, "needs": [],
        });
        if status == "discharged" {
            record["discharged_on"] = json!("2026-01-10");
        }
        if status == "deceased" {
            record["deceased_on"] = json!("2026-01-11");
        }
        let (pseudonym, body) = c.new_patient(&p, record.clone());
        model.push(Row {
            surname: surname.into(),
            dob,
            snils,
            birth_year: year,
            sex,
            diagnosis: record["diagnosis_id"].as_i64().unwrap(),
            status,
            registered_on,
            pseudonym: pseudonym.as_str().into(),
        });
        batch.push(body);
        if batch.len() == 1000 || i + 1 == N {
            let r = app.post(
                "/api/v1/patients/import",
                Some(&c.a.token),
                &json!({"patients": batch}),
            );
            assert_eq!(r.status, 201, "{:?}", r.body);
            batch = Vec::new();
        }
    }
    let bits = c.bits();
    // Each field at its own length, as the clients index (the date of birth's is shorter).
    let token = |field: BlindIndexField, value: &str| {
        let bits = field.index_bits(bits);
        c.key.blind_index(field, value, bits).unwrap().to_token()
    };
    let expect = |pred: &dyn Fn(&Row) -> bool| -> BTreeSet<String> {
        model
            .iter()
            .filter(|r| pred(r))
            .map(|r| r.pseudonym.clone())
            .collect()
    };
    // The server's age is this year (UTC) less the birth year.
    let this_year = chrono::Datelike::year(&chrono::Utc::now());

    for q in 0..12 {
        let probe = model[rng.below(N)].clone();
        let s = norm(BlindIndexField::Surname, &probe.surname);
        // 1. Surname ("Федорова" finds "Фёдорова" too: normalization).
        let got = search_all(
            &app,
            &c,
            json!({"blind_indexes": [token(BlindIndexField::Surname, &probe.surname)]}),
            |p| norm(BlindIndexField::Surname, &p.surname) == s,
        );
        let want = expect(&|r| norm(BlindIndexField::Surname, &r.surname) == s);
        assert_eq!(got, want, "query {q}: surname {}", probe.surname);
        // 2. Surname and year of birth (the surname's token and the birth_year filter), with
        // a status filter.
        let got = search_all(
            &app,
            &c,
            json!({
                "blind_indexes": [token(BlindIndexField::Surname, &probe.surname)],
                "birth_year": probe.birth_year, "status": probe.status,
            }),
            |p| {
                norm(BlindIndexField::Surname, &p.surname) == s
                    && p.date_of_birth[..4] == probe.dob[..4]
            },
        );
        let want = expect(&|r| {
            norm(BlindIndexField::Surname, &r.surname) == s
                && r.birth_year == probe.birth_year
                && r.status == probe.status
        });
        assert_eq!(got, want, "query {q}: surname+year");
        // 3. Date of birth, written another way: its short token and its year, as the
        // clients search.
        let (y, m, d) = (&probe.dob[..4], &probe.dob[5..7], &probe.dob[8..10]);
        let got = search_all(
            &app,
            &c,
            json!({
                "blind_indexes": [token(BlindIndexField::DateOfBirth, &format!("{d}.{m}.{y}"))],
                "birth_year": probe.birth_year,
            }),
            |p| p.date_of_birth == probe.dob,
        );
        assert_eq!(
            got,
            expect(&|r| r.dob == probe.dob),
            "query {q}: date of birth"
        );
        // 4. SNILS without separators.
        let digits: String = probe.snils.chars().filter(char::is_ascii_digit).collect();
        let got = search_all(
            &app,
            &c,
            json!({"blind_indexes": [token(BlindIndexField::Snils, &digits)]}),
            |p| p.snils.as_deref().map(|v| norm(BlindIndexField::Snils, v)) == Some(digits.clone()),
        );
        assert_eq!(
            got,
            expect(&|r| norm(BlindIndexField::Snils, &r.snils) == digits),
            "query {q}: snils"
        );
        // 5. Surname combined with server filters: diagnosis, sex, age band, registration period.
        let (age_from, age_to) = (60 + (q % 3) * 10, 85);
        let got = search_all(
            &app,
            &c,
            json!({
                "blind_indexes": [token(BlindIndexField::Surname, &probe.surname)],
                "diagnosis_id": probe.diagnosis, "sex": probe.sex, "age_from": age_from, "age_to": age_to,
                "registered_from": "2021-01-01", "registered_to": "2024-12-31",
            }),
            |p| norm(BlindIndexField::Surname, &p.surname) == s,
        );
        let want = expect(&|r| {
            norm(BlindIndexField::Surname, &r.surname) == s
                && r.diagnosis == probe.diagnosis
                && r.sex == probe.sex
                && (this_year - r.birth_year) >= age_from
                && (this_year - r.birth_year) <= age_to
                && r.registered_on.as_str() >= "2021-01-01"
                && r.registered_on.as_str() <= "2024-12-31"
        });
        assert_eq!(got, want, "query {q}: combined filters");
    }
    // Server filters alone: totals equal the model's counts.
    let total = |q: Value| {
        app.post("/api/v1/patients/search", Some(&c.a.token), &q)
            .body["total"]
            .as_u64()
            .unwrap() as usize
    };
    assert_eq!(total(json!({})), N);
    assert_eq!(
        total(json!({"status": "deceased"})),
        expect(&|r| r.status == "deceased").len()
    );
    assert_eq!(
        total(json!({"icd10_block": "C15-C26"})),
        expect(&|r| r.diagnosis == diagnoses[2]).len()
    );
    assert_eq!(
        total(json!({"sex": "M", "age_from": 90})),
        expect(&|r| r.sex == "M" && this_year - r.birth_year >= 90).len()
    );
}

/// A check that a reply is a 400 with `code` (`what` names the request in the message).
fn refusal(code: &'static str) -> impl Fn(palreg_tests::Reply, &str) {
    move |r, what| {
        assert_eq!(
            (r.status, r.error_code()),
            (400, code),
            "{what}: {:?}",
            r.body
        );
    }
}

/// The compound index of surname and year of birth is retired (the year is in clear beside
/// it): a token of it is refused when a patient is created, imported or edited and in a search,
/// and nothing is written. The search by surname and year of birth is the surname's token and
/// `birth_year`, also together with an age band.
fn the_surname_and_year_index_is_refused(backend: Backend) {
    use palreg_tests::clinic::{passport, record};
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H1");
    let t = Some(c.a.token.as_str());
    let p = passport("Орлова", "Нина", "1941-07-01", Sex::Female);
    let compound = c
        .key
        .blind_index_surname_birth_year(&p.surname, &p.date_of_birth, c.bits())
        .unwrap()
        .to_token();
    let refused = refusal("retired_blind_index");
    let (_, mut body) = c.new_patient(&p, record(&app, &c.a.token, 1941));
    body["blind_indexes"]
        .as_array_mut()
        .unwrap()
        .push(json!(compound));
    refused(app.post("/api/v1/patients", t, &body), "create");
    refused(
        app.post("/api/v1/patients/import", t, &json!({"patients": [body]})),
        "import",
    );
    let search = |q: Value| app.post("/api/v1/patients/search", t, &q);
    assert_eq!(search(json!({})).body["total"], 0, "nothing was written");

    let (_, body) = c.new_patient(&p, record(&app, &c.a.token, 1941));
    let created = app.post("/api/v1/patients", t, &body);
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let mut edit = json!({
        "version": 1,
        "passport": body["passport"],
        "blind_indexes": body["blind_indexes"],
        "record": body["record"],
    });
    edit["blind_indexes"]
        .as_array_mut()
        .unwrap()
        .push(json!(compound));
    refused(app.put(&format!("/api/v1/patients/{id}"), t, &edit), "edit");
    refused(search(json!({"blind_indexes": [compound]})), "search");

    let surname = c
        .key
        .blind_index(BlindIndexField::Surname, &p.surname, c.bits())
        .unwrap()
        .to_token();
    let this_year = chrono::Datelike::year(&chrono::Utc::now());
    let age = this_year - 1941;
    for (q, found) in [
        (json!({"blind_indexes": [surname], "birth_year": 1941}), 1),
        (json!({"blind_indexes": [surname], "birth_year": 1942}), 0),
        (
            json!({"birth_year": 1941, "age_from": age, "age_to": age}),
            1,
        ),
        (json!({"birth_year": 1941, "age_from": age + 1}), 0),
    ] {
        let r = search(q.clone());
        assert_eq!(r.status, 200, "{q}: {:?}", r.body);
        assert_eq!(r.body["total"], found, "{q}");
    }
    let r = app.get(&format!("/api/v1/patients/{id}"), t);
    assert_eq!(r.body["version"], 1, "the refused edit changed nothing");

    // The tokens carry the record's year of birth: an edit of the year alone, then one with a
    // new passport and its tokens, move it, and the search follows.
    let born_in = |year: i32| {
        let r = search(json!({"blind_indexes": [surname], "birth_year": year}));
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["total"].as_i64().unwrap()
    };
    let mut record = body["record"].clone();
    record["birth_year"] = json!(1942);
    let r = app.put(
        &format!("/api/v1/patients/{id}"),
        t,
        &json!({"version": 1, "record": record}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (born_in(1941), born_in(1942)),
        (0, 1),
        "after the year's edit"
    );
    let pseudonym =
        client_crypto::Pseudonym::parse(created.body["pseudonym"].as_str().unwrap()).unwrap();
    let resealed = json!({
        "passport": c.key.seal_passport(&p, &pseudonym, c.institution_id).unwrap(),
        "blind_indexes": c.tokens(&c.key, &p),
    });
    record["birth_year"] = json!(1943);
    let r = app.put(
        &format!("/api/v1/patients/{id}"),
        t,
        &json!({
            "version": 2, "record": record,
            "passport": resealed["passport"], "blind_indexes": resealed["blind_indexes"],
        }),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (born_in(1942), born_in(1943)),
        (0, 1),
        "after a new passport"
    );
}

/// The date of birth's token is 6 bits shorter than the others (its year is in clear on the
/// record): a full-length one, as a client of before the rule would send, is refused on create,
/// import and edit with nothing written; the short one and the year find the patient, and the
/// short one finds every patient of that token value whatever the year (so the year is needed).
fn a_full_length_date_of_birth_token_is_refused(backend: Backend) {
    use palreg_tests::clinic::{passport, record};
    let app = spawn_app(backend);
    let admin = app.admin_token();
    let c = clinic(&app, &admin, "H2");
    let t = Some(c.a.token.as_str());
    let p = passport("Орлова", "Нина", "1941-07-01", Sex::Female);
    let dob = |bits: u8| {
        let bits = client_crypto::BlindIndexBits::new(bits).unwrap();
        c.key
            .blind_index(BlindIndexField::DateOfBirth, &p.date_of_birth, bits)
            .unwrap()
            .to_token()
    };
    assert_eq!(
        BlindIndexField::DateOfBirth.index_bits(c.bits()).get(),
        c.bits - 6
    );
    let (full, short) = (dob(c.bits), dob(c.bits - 6));
    let (_, body) = c.new_patient(&p, record(&app, &c.a.token, 1941));
    assert!(
        body["blind_indexes"]
            .as_array()
            .unwrap()
            .contains(&json!(short))
    );
    let with_full = |body: &Value| {
        let mut body = body.clone();
        for token in body["blind_indexes"].as_array_mut().unwrap() {
            if *token == json!(short) {
                *token = json!(full);
            }
        }
        body
    };
    let refused = refusal("blind_index_too_long");
    refused(app.post("/api/v1/patients", t, &with_full(&body)), "create");
    refused(
        app.post(
            "/api/v1/patients/import",
            t,
            &json!({"patients": [with_full(&body)]}),
        ),
        "import",
    );
    let search = |q: Value| app.post("/api/v1/patients/search", t, &q);
    assert_eq!(search(json!({})).body["total"], 0, "nothing was written");

    let created = app.post("/api/v1/patients", t, &body);
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let edit = json!({
        "version": 1,
        "passport": body["passport"],
        "blind_indexes": body["blind_indexes"],
        "record": body["record"],
    });
    refused(
        app.put(&format!("/api/v1/patients/{id}"), t, &with_full(&edit)),
        "edit",
    );
    let r = app.get(&format!("/api/v1/patients/{id}"), t);
    assert_eq!(r.body["version"], 1, "the refused edit changed nothing");

    // A patient born another year whose date shares the short token's value: only the year
    // tells them apart (a value of L - 6 bits is shared by one date in 2^(L-6), of any year).
    let twin = (0u32..40_000)
        .map(|n| {
            let year = 1942 + n / 336 % 80;
            format!("{year}-{:02}-{:02}", 1 + n / 28 % 12, 1 + n % 28)
        })
        .find(|d| {
            let bits = client_crypto::BlindIndexBits::new(c.bits - 6).unwrap();
            let token = c.key.blind_index(BlindIndexField::DateOfBirth, d, bits);
            token.unwrap().to_token() == short
        })
        .expect("some date of another year shares the value");
    let twin_year: i32 = twin[..4].parse().unwrap();
    let other = passport("Белова", "Анна", &twin, Sex::Female);
    let (_, body) = c.new_patient(&other, record(&app, &c.a.token, twin_year));
    let r = app.post("/api/v1/patients", t, &body);
    assert_eq!(r.status, 201, "{:?}", r.body);
    for (q, found) in [
        (json!({"blind_indexes": [short]}), 2),
        (json!({"blind_indexes": [short], "birth_year": 1941}), 1),
        (
            json!({"blind_indexes": [short], "birth_year": twin_year}),
            1,
        ),
        (json!({"blind_indexes": [full]}), 0),
    ] {
        let r = search(q.clone());
        assert_eq!(r.status, 200, "{q}: {:?}", r.body);
        assert_eq!(r.body["total"], found, "{q}");
    }
}

on_both_backends!(
    search_matches_a_plaintext_model,
    the_surname_and_year_index_is_refused,
    a_full_length_date_of_birth_token_is_refused
);
