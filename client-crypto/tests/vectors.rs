//! The published test vectors (`tests/vectors.json`): generated deterministically by
//! [`generate`] from fixed keys, nonces and salts, and checked here through the public API.
//! The same file is checked against the WASM package by `client-crypto/js-test/`.
//!
//! Regenerate after a deliberate format change (and bump the format's version byte):
//!
//! ```sh
//! cargo test -p client-crypto --test vectors -- --ignored regenerate_vectors
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use client_crypto::deterministic as det;
use client_crypto::{
    BlindIndexBits, BlindIndexField, ContactPerson, CryptoError, IdentityDocument, InstitutionKey,
    KdfParams, NoteBinding, Passport, Pseudonym, PublicKey, Sex, UserKeyPair, key_file, normalize,
    recommend_bits, shape,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors.json")
}

/// Fixed test material: SHA-256("palreg test vector: " + label).
fn fixed(label: &str) -> [u8; 32] {
    Sha256::digest(format!("palreg test vector: {label}").as_bytes()).into()
}

fn fixed12(label: &str) -> [u8; 12] {
    fixed(label)[..12].try_into().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// The envelope with one byte XORed.
fn flip(b64: &str, index: usize) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(b64).unwrap();
    let i = index.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    URL_SAFE_NO_PAD.encode(bytes)
}

fn set_byte(b64: &str, index: usize, value: u8) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(b64).unwrap();
    bytes[index] = value;
    URL_SAFE_NO_PAD.encode(bytes)
}

fn truncate(b64: &str, keep: usize) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(b64).unwrap();
    URL_SAFE_NO_PAD.encode(&bytes[..keep])
}

fn last_index(b64: &str) -> usize {
    URL_SAFE_NO_PAD.decode(b64).unwrap().len() - 1
}

const ALICE_ID: i64 = 42;
const BOB_ID: i64 = 43;
const PASSPHRASE: &str = "correct horse battery staple — пароль";

struct KeySpec {
    name: &'static str,
    institution_id: i64,
    key_version: u32,
    bytes_label: &'static str,
}

const KEYS: [KeySpec; 4] = [
    KeySpec {
        name: "inst7-v3",
        institution_id: 7,
        key_version: 3,
        bytes_label: "institution 7 key v3",
    },
    KeySpec {
        name: "inst7-v4",
        institution_id: 7,
        key_version: 4,
        bytes_label: "institution 7 key v4",
    },
    // The v3 bytes under version 4: only the bound key version tells them apart.
    KeySpec {
        name: "inst7-v4-same-bytes",
        institution_id: 7,
        key_version: 4,
        bytes_label: "institution 7 key v3",
    },
    KeySpec {
        name: "inst8-v1",
        institution_id: 8,
        key_version: 1,
        bytes_label: "institution 8 key v1",
    },
];

fn key(name: &str) -> InstitutionKey {
    let spec = KEYS.iter().find(|k| k.name == name).unwrap();
    det::institution_key(spec.key_version, fixed(spec.bytes_label))
}

fn full_passport() -> Passport {
    let mut p = Passport::new("Салтыкова-Щедрина", "Анна-Мария", "1938-11-30", Sex::Female);
    p.patronymic = Some("Ёсифовна".into());
    p.address = Some("185035, Республика Карелия, г. Петрозаводск, пр. Ленина, д. 1, кв. 2".into());
    p.phone = Some("+7 (8142) 12-34-56".into());
    p.snils = Some("112-233-445 95".into());
    p.policy_number = Some("1050 2030 4050 6070".into());
    p.identity_document = Some(IdentityDocument {
        kind: "паспорт РФ".into(),
        series: Some("86 04".into()),
        number: "123456".into(),
        issued_by: Some("ОВД Октябрьского района г. Петрозаводска".into()),
        issued_on: Some("2004-05-06".into()),
    });
    p.contact_person = Some(ContactPerson {
        name: "Салтыков Пётр Иванович".into(),
        relation: Some("сын".into()),
        phone: Some("8 921 000-00-00".into()),
    });
    p.notes = Some("Проживает одна; ключ у соседки (кв. 3). Аллергия на пенициллин.".into());
    p
}

struct PassportSpec {
    name: &'static str,
    key: &'static str,
    pseudonym_label: &'static str,
    passport: fn() -> Passport,
}

fn minimal_passport() -> Passport {
    Passport::new("Иванова", "Мария", "1950-02-01", Sex::Female)
}

fn long_passport() -> Passport {
    let mut p = Passport::new("Ли", "Ан", "2001-01-01", Sex::Male);
    p.notes = Some("Наблюдение. ".repeat(60));
    p
}

const PASSPORTS: [PassportSpec; 4] = [
    PassportSpec {
        name: "minimal",
        key: "inst7-v3",
        pseudonym_label: "patient 1",
        passport: minimal_passport,
    },
    PassportSpec {
        name: "full",
        key: "inst7-v3",
        pseudonym_label: "patient 2",
        passport: full_passport,
    },
    PassportSpec {
        name: "long-notes-2k-bucket",
        key: "inst7-v3",
        pseudonym_label: "patient 3",
        passport: long_passport,
    },
    PassportSpec {
        name: "other-institution",
        key: "inst8-v1",
        pseudonym_label: "patient 4",
        passport: minimal_passport,
    },
];

fn pseudonym(label: &str) -> Pseudonym {
    det::pseudonym(fixed(label)[..10].try_into().unwrap())
}

fn institution_of(key_name: &str) -> i64 {
    KEYS.iter()
        .find(|k| k.name == key_name)
        .unwrap()
        .institution_id
}

fn version_of(key_name: &str) -> u32 {
    KEYS.iter()
        .find(|k| k.name == key_name)
        .unwrap()
        .key_version
}

/// Builds the whole vector file.
fn generate() -> Value {
    let alice = det::user_key_pair(fixed("alice secret key")).unwrap();
    let bob = det::user_key_pair(fixed("bob secret key")).unwrap();
    let alice_file = det::export_key_file(
        &alice,
        PASSPHRASE,
        KdfParams::MINIMUM,
        fixed("alice key file salt")[..16].try_into().unwrap(),
        fixed12("alice key file nonce"),
    )
    .unwrap();

    let users = json!([
        {
            "name": "alice", "user_id": ALICE_ID,
            "secret_key_hex": hex(&fixed("alice secret key")),
            "public_key": alice.public_key().encode(),
            "fingerprint": alice.public_key().fingerprint().to_string(),
            "passphrase": PASSPHRASE,
            "key_file": alice_file,
        },
        {
            "name": "bob", "user_id": BOB_ID,
            "secret_key_hex": hex(&fixed("bob secret key")),
            "public_key": bob.public_key().encode(),
            "fingerprint": bob.public_key().fingerprint().to_string(),
        },
    ]);

    let keys: Vec<Value> = KEYS
        .iter()
        .map(|k| {
            let key = det::institution_key(k.key_version, fixed(k.bytes_label));
            json!({
                "name": k.name, "institution_id": k.institution_id, "key_version": k.key_version,
                "key_hex": hex(&fixed(k.bytes_label)),
                "fingerprint": key.fingerprint(k.institution_id).to_string(),
            })
        })
        .collect();
    let chain_from = det::institution_key(3, fixed(KEYS[0].bytes_label));
    let key_chain: Vec<Value> = [KEYS[1].name, KEYS[2].name]
        .iter()
        .map(|to| {
            let spec = KEYS.iter().find(|k| k.name == *to).unwrap();
            let next = det::institution_key(spec.key_version, fixed(spec.bytes_label));
            json!({
                "institution_id": 7, "from": KEYS[0].name, "to": to,
                "link": chain_from.link_to(&next, 7).unwrap(),
            })
        })
        .collect();

    // Every key is wrapped to alice (so a client holding only her key file reaches them all);
    // inst7-v3 also to bob.
    let mut envelopes = Vec::new();
    let recipients: Vec<(&str, &UserKeyPair, i64, &str)> = KEYS
        .iter()
        .map(|k| ("alice", &alice, ALICE_ID, k.name))
        .chain([("bob", &bob, BOB_ID, "inst7-v3")])
        .collect();
    for (who, pair, user_id, key_name) in recipients {
        let label = format!("envelope {key_name} to {who}");
        let envelope = det::wrap_for(
            &key(key_name),
            pair.public_key(),
            user_id,
            institution_of(key_name),
            fixed(&format!("{label} ephemeral")),
            fixed12(&format!("{label} nonce")),
        )
        .unwrap();
        envelopes.push(json!({
            "name": label, "institution_key": key_name, "recipient": who, "recipient_user_id": user_id,
            "institution_id": institution_of(key_name), "key_version": version_of(key_name),
            "ephemeral_secret_hex": hex(&fixed(&format!("{label} ephemeral"))),
            "nonce_hex": hex(&fixed12(&format!("{label} nonce"))),
            "envelope": envelope,
        }));
    }

    let mut passports = Vec::new();
    for spec in &PASSPORTS {
        let nonce = fixed12(&format!("passport {} nonce", spec.name));
        let p = (spec.passport)();
        let envelope = det::seal_passport(
            &key(spec.key),
            &p,
            &pseudonym(spec.pseudonym_label),
            institution_of(spec.key),
            nonce,
        )
        .unwrap();
        passports.push(json!({
            "name": spec.name, "institution_key": spec.key,
            "pseudonym": pseudonym(spec.pseudonym_label).as_str(),
            "institution_id": institution_of(spec.key), "key_version": version_of(spec.key),
            "nonce_hex": hex(&nonce),
            "padded_len": shape::check_passport_envelope(&envelope).unwrap().padded_len,
            "passport": serde_json::to_value(&p).unwrap(),
            "envelope": envelope,
        }));
    }

    let note_pseudonym = pseudonym("patient 2");
    let note_specs = [
        (
            "observation",
            "obs-2024-0001",
            "Боли уменьшились после коррекции дозы. Сон 6 ч.",
        ),
        ("need", "8841", ""),
    ];
    let mut notes = Vec::new();
    for (purpose, record_id, text) in note_specs {
        let nonce = fixed12(&format!("note {purpose} {record_id} nonce"));
        let binding = NoteBinding {
            purpose,
            pseudonym: &note_pseudonym,
            institution_id: 7,
            record_id,
        };
        let sealed = det::seal_note(&key("inst7-v3"), text, &binding, nonce).unwrap();
        notes.push(json!({
            "name": format!("{purpose}-{record_id}"), "institution_key": "inst7-v3",
            "purpose": purpose, "pseudonym": note_pseudonym.as_str(), "institution_id": 7,
            "key_version": 3, "record_id": record_id, "nonce_hex": hex(&nonce), "text": text, "sealed": sealed,
        }));
    }

    let index_inputs: [(&str, BlindIndexField, &str, u8); 10] = [
        (
            "inst7-v3",
            BlindIndexField::Surname,
            "  ЁЛКИНА-Петрова ",
            16,
        ),
        ("inst7-v3", BlindIndexField::Surname, "елкина - петрова", 16),
        ("inst7-v3", BlindIndexField::FirstName, "Мария", 12),
        ("inst7-v3", BlindIndexField::Patronymic, "Ёсифовна", 1),
        ("inst7-v3", BlindIndexField::DateOfBirth, "30.11.1938", 20),
        ("inst7-v3", BlindIndexField::Snils, "112-233-445 95", 64),
        (
            "inst7-v3",
            BlindIndexField::PolicyNumber,
            "1050 2030 4050 6070",
            13,
        ),
        ("inst7-v3", BlindIndexField::Phone, "8 (921) 000-00-00", 24),
        ("inst7-v4", BlindIndexField::Surname, "Елкина-Петрова", 16),
        ("inst8-v1", BlindIndexField::Surname, "Елкина-Петрова", 16),
    ];
    let mut blind_indexes = Vec::new();
    for (key_name, field, input, bits) in index_inputs {
        let index = key(key_name)
            .blind_index(field, input, BlindIndexBits::new(bits).unwrap())
            .unwrap();
        blind_indexes.push(json!({
            "institution_key": key_name, "field": field.label(), "input": input,
            "normalized": normalize::normalize(field, input).unwrap(), "bits": bits,
            "value": index.value().to_string(), "token": index.to_token(),
        }));
    }
    let compound_inputs = [
        ("Салтыкова-Щедрина", "30.11.1938", 14),
        ("салтыкова щедрина", "1938", 14),
    ];
    let mut compound = Vec::new();
    for (surname, birth, bits) in compound_inputs {
        let index = key("inst7-v3")
            .blind_index_surname_birth_year(surname, birth, BlindIndexBits::new(bits).unwrap())
            .unwrap();
        compound.push(json!({
            "institution_key": "inst7-v3", "surname": surname, "birth": birth,
            "normalized": [normalize::name(surname).unwrap(), normalize::birth_year(birth).unwrap()],
            "bits": bits, "value": index.value().to_string(), "token": index.to_token(),
        }));
    }

    let normalization_cases: [(&str, &str); 23] = [
        ("surname", "  Ёлкина  "),
        ("surname", "Салтыков – Щедрин"),
        ("surname", "д’Артаньян"),
        ("surname", "ＩＶＡＮＯＶ"),
        ("surname", "Straße"),
        ("surname", "Ива\u{301}нов"),
        ("first_name", "Анна   Мария"),
        ("surname", "   "),
        ("date_of_birth", "1.2.1950"),
        ("date_of_birth", "1950-02-01"),
        ("date_of_birth", "29.02.1900"),
        ("date_of_birth", "01.02.50"),
        ("snils", "112-233-445 95"),
        ("snils", "112-233-445"),
        ("policy_number", "1050 2030 4050 6070"),
        ("phone", "8 (912) 345-67-89"),
        ("phone", "+7 912 345 67 89"),
        ("phone", "тел. 12"),
        // Added with the dropping of format characters and of stress marks composed into a
        // letter; appended so that every earlier vector stays as published.
        ("surname", "Ива\u{00AD}нова"),
        ("surname", "Ива\u{200B}но\u{200D}ва\u{FEFF}"),
        ("surname", "Сѐмина"),
        ("surname", "Се\u{0300}мина"),
        ("first_name", "Зѝна"),
    ];
    let normalization: Vec<Value> = normalization_cases
        .iter()
        .map(|(field, input)| {
            let f = BlindIndexField::from_label(field).unwrap();
            match normalize::normalize(f, input) {
                Ok(n) => json!({"field": field, "input": input, "normalized": n}),
                Err(e) => json!({"field": field, "input": input, "error": e.code()}),
            }
        })
        .collect();

    let pseudonyms = json!({
        "from_bits": [
            {"bits_hex": "00000000000000000000", "pseudonym": det::pseudonym([0; 10]).as_str()},
            {"bits_hex": "ffffffffffffffffffff", "pseudonym": det::pseudonym([0xff; 10]).as_str()},
            {"bits_hex": hex(&fixed("patient 1")[..10]), "pseudonym": pseudonym("patient 1").as_str()},
        ],
        "canonical": [{"input": "abcdefghjkmnpqrs", "pseudonym": "ABCDEFGHJKMNPQRS"}],
        "invalid": ["", "ABCDEFGHJKMNPQR", "ABCDEFGHJKMNPQRST", "ABCDEFGHIKMNPQRS", "ABCDEFGHJKLMNPQR",
                    "0123456789ABCDEO", "ABCDEFGHJKMNPQRU", "ABCD-EFGH-JKMN-P"],
    });

    let bit_cases: [(u64, &[u8]); 6] = [
        (50_000, &[]),
        (50_000, &[4]),
        (10_000, &[]),
        (8, &[]),
        (4, &[]),
        (50_000, &[14]),
    ];
    let bit_recommendations: Vec<Value> = bit_cases
        .iter()
        .map(|(r, existing)| match recommend_bits(*r, existing) {
            Ok(range) => json!({"patients": r, "existing_bits": existing, "min": range.min, "max": range.max}),
            Err(e) => json!({"patients": r, "existing_bits": existing, "error": e.code()}),
        })
        .collect();

    let negative = negative_vectors(&passports, &notes, &envelopes, &alice_file, &bob);

    json!({
        "about": "Test vectors of palreg's client-crypto formats (see client-crypto/README.md). \
                  Fixed material is SHA-256(\"palreg test vector: \" + label). Generated by \
                  `cargo test -p client-crypto --test vectors -- --ignored regenerate_vectors`; \
                  checked natively by client-crypto/tests/vectors.rs and in WASM by client-crypto/js-test/.",
        "users": users,
        "institution_keys": keys,
        "key_envelopes": envelopes,
        "key_chain": key_chain,
        "passports": passports,
        "notes": notes,
        "blind_indexes": blind_indexes,
        "compound_blind_indexes": compound,
        "normalization": normalization,
        "pseudonyms": pseudonyms,
        "bit_recommendations": bit_recommendations,
        "negative": negative,
    })
}

fn find<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|v| v["name"] == name).unwrap()
}

fn negative_vectors(
    passports: &[Value],
    notes: &[Value],
    envelopes: &[Value],
    alice_file: &str,
    bob: &UserKeyPair,
) -> Value {
    let mut out = Vec::new();

    // Passports: opened with institution key, pseudonym and institution id as stated.
    let p = find(passports, "full");
    let env = p["envelope"].as_str().unwrap();
    let other_pseudonym = pseudonym("patient 1");
    let mut passport = |name: &str,
                        input: String,
                        key_name: &str,
                        pseud: &str,
                        inst: i64,
                        error: &str,
                        shape_error: Option<&str>| {
        out.push(json!({
            "name": name, "format": "passport", "input": input, "institution_key": key_name,
            "pseudonym": pseud, "institution_id": inst, "error": error, "shape_error": shape_error,
        }));
    };
    let ps = p["pseudonym"].as_str().unwrap();
    passport(
        "flipped byte in ciphertext",
        flip(env, 40),
        "inst7-v3",
        ps,
        7,
        "decryption_failed",
        None,
    );
    passport(
        "flipped byte in tag",
        flip(env, last_index(env)),
        "inst7-v3",
        ps,
        7,
        "decryption_failed",
        None,
    );
    passport(
        "flipped byte in nonce",
        flip(env, 6),
        "inst7-v3",
        ps,
        7,
        "decryption_failed",
        None,
    );
    passport(
        "wrong pseudonym",
        env.to_owned(),
        "inst7-v3",
        other_pseudonym.as_str(),
        7,
        "decryption_failed",
        None,
    );
    passport(
        "wrong institution id",
        env.to_owned(),
        "inst7-v3",
        ps,
        8,
        "decryption_failed",
        None,
    );
    passport(
        "wrong key version (opened with v4)",
        env.to_owned(),
        "inst7-v4",
        ps,
        7,
        "key_version_mismatch",
        None,
    );
    passport(
        "key version in header rewritten 3->4, same key bytes under v4",
        set_byte(env, 4, 4),
        "inst7-v4-same-bytes",
        ps,
        7,
        "decryption_failed",
        None,
    );
    passport(
        "wrong institution key",
        env.to_owned(),
        "inst8-v1",
        ps,
        7,
        "key_version_mismatch",
        None,
    );
    passport(
        "truncated by one byte",
        truncate(env, last_index(env)),
        "inst7-v3",
        ps,
        7,
        "invalid_length",
        Some("invalid_length"),
    );
    passport(
        "truncated to the header",
        truncate(env, 17),
        "inst7-v3",
        ps,
        7,
        "invalid_length",
        Some("invalid_length"),
    );
    passport(
        "empty",
        String::new(),
        "inst7-v3",
        ps,
        7,
        "invalid_length",
        Some("invalid_length"),
    );
    passport(
        "unknown version byte",
        set_byte(env, 0, 2),
        "inst7-v3",
        ps,
        7,
        "unsupported_version",
        Some("unsupported_version"),
    );
    passport(
        "base64 padding",
        format!("{env}=="),
        "inst7-v3",
        ps,
        7,
        "invalid_encoding",
        Some("invalid_encoding"),
    );
    passport(
        "standard base64 alphabet",
        env.replace('-', "+").replace('_', "/") + "+",
        "inst7-v3",
        ps,
        7,
        "invalid_encoding",
        Some("invalid_encoding"),
    );
    let note = find(notes, "observation-obs-2024-0001");
    passport(
        "a sealed note is not a passport",
        note["sealed"].as_str().unwrap().to_owned(),
        "inst7-v3",
        note["pseudonym"].as_str().unwrap(),
        7,
        "decryption_failed",
        None,
    );

    // Notes.
    let sealed = note["sealed"].as_str().unwrap();
    let base = |name: &str,
                input: String,
                purpose: &str,
                record: &str,
                inst: i64,
                error: &str,
                shape_error: Option<&str>| {
        json!({
            "name": name, "format": "note", "input": input, "institution_key": "inst7-v3",
            "purpose": purpose, "pseudonym": note["pseudonym"], "institution_id": inst,
            "record_id": record, "error": error, "shape_error": shape_error,
        })
    };
    out.push(base(
        "flipped byte",
        flip(sealed, 100),
        "observation",
        "obs-2024-0001",
        7,
        "decryption_failed",
        None,
    ));
    out.push(base(
        "wrong record id",
        sealed.to_owned(),
        "observation",
        "obs-2024-0002",
        7,
        "decryption_failed",
        None,
    ));
    out.push(base(
        "wrong purpose",
        sealed.to_owned(),
        "need",
        "obs-2024-0001",
        7,
        "decryption_failed",
        None,
    ));
    out.push(base(
        "wrong institution id",
        sealed.to_owned(),
        "observation",
        "obs-2024-0001",
        8,
        "decryption_failed",
        None,
    ));
    out.push(base(
        "truncated",
        truncate(sealed, 300),
        "observation",
        "obs-2024-0001",
        7,
        "invalid_length",
        Some("invalid_length"),
    ));
    out.push(base(
        "a passport is not a note",
        env.to_owned(),
        "observation",
        "obs-2024-0001",
        7,
        "decryption_failed",
        None,
    ));

    // Key envelopes: opened by the named recipient with the stated ids and version.
    let e = find(envelopes, "envelope inst7-v3 to alice");
    let text = e["envelope"].as_str().unwrap();
    let bob_env = find(envelopes, "envelope inst7-v3 to bob")["envelope"]
        .as_str()
        .unwrap();
    let mut envelope = |name: &str,
                        input: String,
                        user: i64,
                        inst: i64,
                        ver: u32,
                        error: &str,
                        shape_error: Option<&str>| {
        out.push(json!({
            "name": name, "format": "key_envelope", "input": input, "recipient": "alice",
            "recipient_user_id": user, "institution_id": inst, "key_version": ver,
            "error": error, "shape_error": shape_error,
        }));
    };
    envelope(
        "flipped byte in wrapped key",
        flip(text, 50),
        ALICE_ID,
        7,
        3,
        "decryption_failed",
        None,
    );
    envelope(
        "flipped byte in ephemeral key",
        flip(text, 5),
        ALICE_ID,
        7,
        3,
        "decryption_failed",
        None,
    );
    envelope(
        "flipped byte in tag",
        flip(text, 92),
        ALICE_ID,
        7,
        3,
        "decryption_failed",
        None,
    );
    envelope(
        "wrong recipient user id",
        text.to_owned(),
        BOB_ID,
        7,
        3,
        "decryption_failed",
        None,
    );
    envelope(
        "wrong institution id",
        text.to_owned(),
        ALICE_ID,
        8,
        3,
        "decryption_failed",
        None,
    );
    envelope(
        "wrong key version",
        text.to_owned(),
        ALICE_ID,
        7,
        4,
        "decryption_failed",
        None,
    );
    envelope(
        "addressed to another user (bob)",
        bob_env.to_owned(),
        ALICE_ID,
        7,
        3,
        "decryption_failed",
        None,
    );
    envelope(
        "truncated",
        truncate(text, 92),
        ALICE_ID,
        7,
        3,
        "invalid_length",
        Some("invalid_length"),
    );
    envelope(
        "unknown version byte",
        set_byte(text, 0, 2),
        ALICE_ID,
        7,
        3,
        "unsupported_version",
        Some("unsupported_version"),
    );
    let mut zero_ephemeral = URL_SAFE_NO_PAD.decode(text).unwrap();
    zero_ephemeral[1..33].fill(0);
    envelope(
        "low-order ephemeral key",
        URL_SAFE_NO_PAD.encode(zero_ephemeral),
        ALICE_ID,
        7,
        3,
        "low_order_public_key",
        Some("low_order_public_key"),
    );

    // Key files: imported with the stated passphrase.
    let file: Value = serde_json::from_str(alice_file).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = file.clone();
        f(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    };
    let wrapped = file["wrapped_private_key"].as_str().unwrap().to_owned();
    let mut key_file_case = |name: &str, input: String, passphrase: &str, error: &str| {
        out.push(json!({"name": name, "format": "key_file", "input": input, "passphrase": passphrase, "error": error}));
    };
    key_file_case(
        "wrong passphrase",
        alice_file.to_owned(),
        "correct horse battery staple — парол",
        "wrong_passphrase",
    );
    key_file_case(
        "flipped byte in wrapped key",
        edit(&|v| v["wrapped_private_key"] = json!(flip(&wrapped, 20))),
        PASSPHRASE,
        "wrong_passphrase",
    );
    key_file_case(
        "public key replaced (bob's)",
        edit(&|v| v["public_key"] = json!(bob.public_key().encode())),
        PASSPHRASE,
        "wrong_passphrase",
    );
    key_file_case(
        "memory below the minimum",
        edit(&|v| v["kdf"]["memory_kib"] = json!(19455)),
        PASSPHRASE,
        "weak_kdf_parameters",
    );
    key_file_case(
        "one iteration",
        edit(&|v| v["kdf"]["iterations"] = json!(1)),
        PASSPHRASE,
        "weak_kdf_parameters",
    );
    key_file_case(
        "unknown file version",
        edit(&|v| v["version"] = json!(2)),
        PASSPHRASE,
        "unsupported_version",
    );
    key_file_case(
        "truncated wrapped key",
        edit(&|v| v["wrapped_private_key"] = json!(truncate(&wrapped, 40))),
        PASSPHRASE,
        "invalid_length",
    );
    key_file_case(
        "not argon2id",
        edit(&|v| v["kdf"]["algorithm"] = json!("argon2i")),
        PASSPHRASE,
        "invalid_key_file",
    );
    key_file_case(
        "truncated JSON",
        alice_file[..alice_file.len() / 2].to_owned(),
        PASSPHRASE,
        "invalid_key_file",
    );

    // Public keys (server shape check and WASM fingerprinting).
    let alice_pk = URL_SAFE_NO_PAD
        .decode(file["public_key"].as_str().unwrap())
        .unwrap();
    let mut pk = |name: &str, input: String, error: &str| {
        out.push(json!({"name": name, "format": "public_key", "input": input, "error": error, "shape_error": error}));
    };
    let mut v2 = alice_pk.clone();
    v2[0] = 2;
    pk(
        "unknown version byte",
        URL_SAFE_NO_PAD.encode(&v2),
        "unsupported_version",
    );
    pk(
        "truncated to 32 bytes",
        URL_SAFE_NO_PAD.encode(&alice_pk[..32]),
        "invalid_length",
    );
    let mut zero = vec![1u8];
    zero.extend_from_slice(&[0; 32]);
    pk(
        "low-order point (zero)",
        URL_SAFE_NO_PAD.encode(&zero),
        "low_order_public_key",
    );
    pk("not base64url", "not a key!".to_owned(), "invalid_encoding");

    // Blind-index tokens (server shape check only: a client never parses them).
    let mut token = |name: &str, input: &str, error: &str| {
        out.push(json!({"name": name, "format": "blind_index", "input": input, "error": error, "shape_error": error}));
    };
    token(
        "non-zero bits past the length",
        "01010000000303f0",
        "non_zero_padding_bits",
    );
    token(
        "value bytes do not match the length",
        "01010000000310ab",
        "invalid_length",
    );
    token("unknown field", "01090000000303e0", "unknown_field");
    token("zero bits", "0101000000030000", "invalid_bits");
    token("65 bits", "0101000000034100", "invalid_bits");
    token(
        "longer than 64 bits allow",
        "010100000003400000000000000000000000",
        "invalid_length",
    );
    token("uppercase hex", "01010000000303E0", "invalid_encoding");
    token("unknown version", "02010000000303e0", "unsupported_version");

    json!(out)
}

fn load() -> Value {
    let text = std::fs::read_to_string(vectors_path())
        .expect("tests/vectors.json is missing: regenerate it");
    serde_json::from_str(&text).unwrap()
}

fn items<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("vectors.json has no list {key}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector has no string {key}: {v}"))
}

fn i(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("vector has no integer {key}: {v}"))
}

fn u(v: &Value, key: &str) -> u32 {
    u32::try_from(i(v, key)).unwrap()
}

fn key_from(vectors: &Value, name: &str) -> InstitutionKey {
    let k = items(vectors, "institution_keys")
        .iter()
        .find(|k| k["name"] == name)
        .unwrap();
    det::institution_key(u(k, "key_version"), unhex(s(k, "key_hex")))
}

fn user_from(vectors: &Value, name: &str) -> UserKeyPair {
    let k = items(vectors, "users")
        .iter()
        .find(|k| k["name"] == name)
        .unwrap();
    det::user_key_pair(unhex(s(k, "secret_key_hex"))).unwrap()
}

#[test]
#[ignore = "writes tests/vectors.json; run after a deliberate format change"]
fn regenerate_vectors() {
    let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    std::fs::write(vectors_path(), text).unwrap();
}

#[test]
fn vector_file_is_what_the_generator_writes() {
    // Any change of a format shows here first: the file must be regenerated (and the version
    // byte bumped if the change is not backward compatible).
    assert_eq!(
        load(),
        generate(),
        "tests/vectors.json differs from the generator's output"
    );
}

#[test]
fn users_and_key_files() {
    let v = load();
    for user in items(&v, "users") {
        let pair = det::user_key_pair(unhex(s(user, "secret_key_hex"))).unwrap();
        assert_eq!(pair.public_key().encode(), s(user, "public_key"));
        assert_eq!(
            pair.public_key().fingerprint().to_string(),
            s(user, "fingerprint")
        );
        assert_eq!(
            shape::check_public_key(s(user, "public_key"))
                .unwrap()
                .fingerprint
                .as_str(),
            s(user, "fingerprint")
        );
        if let Some(file) = user["key_file"].as_str() {
            assert_eq!(
                key_file::key_file_public_key(file).unwrap(),
                *pair.public_key()
            );
            let opened = UserKeyPair::import_key_file(file, s(user, "passphrase")).unwrap();
            assert_eq!(det::secret_bytes(&opened), det::secret_bytes(&pair));
        }
    }
}

#[test]
fn key_envelopes() {
    let v = load();
    for e in items(&v, "key_envelopes") {
        let recipient = user_from(&v, s(e, "recipient"));
        let expected = key_from(&v, s(e, "institution_key"));
        shape::check_key_envelope(s(e, "envelope")).unwrap();
        let key = recipient
            .open_key_envelope(
                s(e, "envelope"),
                i(e, "recipient_user_id"),
                i(e, "institution_id"),
                u(e, "key_version"),
            )
            .unwrap();
        assert_eq!(
            det::institution_key_bytes(&key),
            det::institution_key_bytes(&expected)
        );
        assert_eq!(key.version(), u(e, "key_version"));
        let rewrapped = det::wrap_for(
            &expected,
            recipient.public_key(),
            i(e, "recipient_user_id"),
            i(e, "institution_id"),
            unhex(s(e, "ephemeral_secret_hex")),
            unhex(s(e, "nonce_hex")),
        )
        .unwrap();
        assert_eq!(rewrapped, s(e, "envelope"));
    }
}

#[test]
fn key_chain_links_and_fingerprints() {
    let v = load();
    for k in items(&v, "institution_keys") {
        let key = key_from(&v, s(k, "name"));
        assert_eq!(
            key.fingerprint(i(k, "institution_id")).to_string(),
            s(k, "fingerprint")
        );
    }
    let links = items(&v, "key_chain");
    assert!(!links.is_empty());
    for l in links {
        let (from, to) = (key_from(&v, s(l, "from")), key_from(&v, s(l, "to")));
        shape::check_key_chain_link(s(l, "link")).unwrap();
        assert_eq!(
            from.link_to(&to, i(l, "institution_id")).unwrap(),
            s(l, "link")
        );
        from.verify_link(&to, i(l, "institution_id"), s(l, "link"))
            .unwrap();
        for other in links.iter().filter(|o| o["to"] != l["to"]) {
            assert_eq!(
                from.verify_link(&to, i(l, "institution_id"), s(other, "link")),
                Err(CryptoError::DecryptionFailed)
            );
        }
    }
}

#[test]
fn passports() {
    let v = load();
    for p in items(&v, "passports") {
        let key = key_from(&v, s(p, "institution_key"));
        let pseud = Pseudonym::parse(s(p, "pseudonym")).unwrap();
        let expected: Passport = serde_json::from_value(p["passport"].clone()).unwrap();
        let info = shape::check_passport_envelope(s(p, "envelope")).unwrap();
        assert_eq!(info.key_version, u(p, "key_version"));
        assert_eq!(info.padded_len as i64, i(p, "padded_len"));
        assert_eq!(
            key.open_passport(s(p, "envelope"), &pseud, i(p, "institution_id"))
                .unwrap(),
            expected
        );
        let resealed = det::seal_passport(
            &key,
            &expected,
            &pseud,
            i(p, "institution_id"),
            unhex(s(p, "nonce_hex")),
        )
        .unwrap();
        assert_eq!(resealed, s(p, "envelope"));
    }
}

#[test]
fn notes() {
    let v = load();
    for n in items(&v, "notes") {
        let key = key_from(&v, s(n, "institution_key"));
        let pseud = Pseudonym::parse(s(n, "pseudonym")).unwrap();
        let binding = NoteBinding {
            purpose: s(n, "purpose"),
            pseudonym: &pseud,
            institution_id: i(n, "institution_id"),
            record_id: s(n, "record_id"),
        };
        assert_eq!(
            shape::check_sealed_note(s(n, "sealed"))
                .unwrap()
                .key_version,
            u(n, "key_version")
        );
        assert_eq!(
            key.open_note(s(n, "sealed"), &binding).unwrap(),
            s(n, "text")
        );
        assert_eq!(
            det::seal_note(&key, s(n, "text"), &binding, unhex(s(n, "nonce_hex"))).unwrap(),
            s(n, "sealed")
        );
    }
}

#[test]
fn blind_indexes() {
    let v = load();
    for b in items(&v, "blind_indexes") {
        let key = key_from(&v, s(b, "institution_key"));
        let field = BlindIndexField::from_label(s(b, "field")).unwrap();
        let bits = BlindIndexBits::new(u8::try_from(i(b, "bits")).unwrap()).unwrap();
        assert_eq!(
            normalize::normalize(field, s(b, "input")).unwrap(),
            s(b, "normalized")
        );
        let index = key.blind_index(field, s(b, "input"), bits).unwrap();
        assert_eq!(index.to_token(), s(b, "token"));
        assert_eq!(index.value().to_string(), s(b, "value"));
        let info = shape::check_blind_index(s(b, "token")).unwrap();
        assert_eq!(
            (info.field, info.key_version, info.bits),
            (field, key.version(), bits)
        );
    }
    for b in items(&v, "compound_blind_indexes") {
        let key = key_from(&v, s(b, "institution_key"));
        let bits = BlindIndexBits::new(u8::try_from(i(b, "bits")).unwrap()).unwrap();
        let index = key
            .blind_index_surname_birth_year(s(b, "surname"), s(b, "birth"), bits)
            .unwrap();
        assert_eq!(index.to_token(), s(b, "token"));
    }
    // Equal after normalization → equal tokens; another key version → another token.
    let list = items(&v, "blind_indexes");
    assert_eq!(list[0]["token"], list[1]["token"]);
    assert_ne!(list[0]["token"], list[8]["token"]);
}

#[test]
fn normalization_pseudonyms_and_bit_lengths() {
    let v = load();
    for n in items(&v, "normalization") {
        let field = BlindIndexField::from_label(s(n, "field")).unwrap();
        match (
            normalize::normalize(field, s(n, "input")),
            n.get("normalized"),
        ) {
            (Ok(got), Some(want)) => assert_eq!(got, want.as_str().unwrap()),
            (Err(e), None) => assert_eq!(e.code(), s(n, "error")),
            (got, _) => panic!("{n}: got {got:?}"),
        }
    }
    let p = &v["pseudonyms"];
    for case in p["from_bits"].as_array().unwrap() {
        assert_eq!(
            det::pseudonym(unhex(s(case, "bits_hex"))).as_str(),
            s(case, "pseudonym")
        );
        assert_eq!(
            Pseudonym::parse(s(case, "pseudonym")).unwrap().as_str(),
            s(case, "pseudonym")
        );
    }
    for case in p["canonical"].as_array().unwrap() {
        assert_eq!(
            Pseudonym::parse(s(case, "input")).unwrap().as_str(),
            s(case, "pseudonym")
        );
    }
    for bad in p["invalid"].as_array().unwrap() {
        assert_eq!(
            Pseudonym::parse(bad.as_str().unwrap()),
            Err(CryptoError::InvalidPseudonym),
            "{bad}"
        );
    }
    for case in items(&v, "bit_recommendations") {
        let existing: Vec<u8> = serde_json::from_value(case["existing_bits"].clone()).unwrap();
        match recommend_bits(case["patients"].as_u64().unwrap(), &existing) {
            Ok(range) => assert_eq!(
                (i64::from(range.min), i64::from(range.max)),
                (i(case, "min"), i(case, "max"))
            ),
            Err(e) => assert_eq!(e.code(), s(case, "error")),
        }
    }
}

#[test]
fn negative_vectors_fail_with_their_error() {
    let v = load();
    let alice = user_from(&v, "alice");
    let mut seen = BTreeMap::<String, usize>::new();
    for n in items(&v, "negative") {
        let input = s(n, "input");
        let format = s(n, "format");
        *seen.entry(format.to_owned()).or_default() += 1;
        let error = match format {
            "passport" => {
                let key = key_from(&v, s(n, "institution_key"));
                let pseud = Pseudonym::parse(s(n, "pseudonym")).unwrap();
                key.open_passport(input, &pseud, i(n, "institution_id"))
                    .map(|_| ())
                    .unwrap_err()
            }
            "note" => {
                let key = key_from(&v, s(n, "institution_key"));
                let pseud = Pseudonym::parse(s(n, "pseudonym")).unwrap();
                let binding = NoteBinding {
                    purpose: s(n, "purpose"),
                    pseudonym: &pseud,
                    institution_id: i(n, "institution_id"),
                    record_id: s(n, "record_id"),
                };
                key.open_note(input, &binding).map(|_| ()).unwrap_err()
            }
            "key_envelope" => alice
                .open_key_envelope(
                    input,
                    i(n, "recipient_user_id"),
                    i(n, "institution_id"),
                    u(n, "key_version"),
                )
                .map(|_| ())
                .unwrap_err(),
            "key_file" => UserKeyPair::import_key_file(input, s(n, "passphrase"))
                .map(|_| ())
                .unwrap_err(),
            "public_key" => PublicKey::parse(input).map(|_| ()).unwrap_err().into(),
            "blind_index" => shape::check_blind_index(input)
                .map(|_| ())
                .unwrap_err()
                .into(),
            other => panic!("unknown format {other}"),
        };
        assert_eq!(error.code(), s(n, "error"), "{}: {error}", s(n, "name"));

        // What the server's shape check says: `null` means "well-formed".
        if let Some(shape_error) = n.get("shape_error") {
            let shape_result = match format {
                "passport" => shape::check_passport_envelope(input).map(|_| ()),
                "note" => shape::check_sealed_note(input).map(|_| ()),
                "key_envelope" => shape::check_key_envelope(input).map(|_| ()),
                "public_key" => shape::check_public_key(input).map(|_| ()),
                "blind_index" => shape::check_blind_index(input).map(|_| ()),
                other => panic!("no shape check for {other}"),
            };
            match (shape_result, shape_error.as_str()) {
                (Ok(()), None) => {}
                (Err(e), Some(code)) => assert_eq!(e.code(), code, "{}", s(n, "name")),
                (got, want) => panic!(
                    "{}: shape check gave {got:?}, vector says {want:?}",
                    s(n, "name")
                ),
            }
        }
    }
    for format in [
        "passport",
        "note",
        "key_envelope",
        "key_file",
        "public_key",
        "blind_index",
    ] {
        assert!(
            seen.get(format).copied().unwrap_or(0) >= 4,
            "too few negative vectors for {format}"
        );
    }
}
