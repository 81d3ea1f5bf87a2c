//! The native half of the WASM <-> native round trip run by `scripts/test-crypto-js.sh`.
//!
//! ```sh
//! cargo run -p client-crypto --example interop -- write native.json   # native seals, WASM opens
//! cargo run -p client-crypto --example interop -- check wasm.json     # WASM sealed, native opens
//! ```
//!
//! The file holds a fresh key file with its passphrase, a key envelope to that key, and a
//! passport, a note and blind indexes under the enveloped institution key. `check` opens all
//! of it with the public API only, recomputes the blind indexes, and checks that a tampered
//! copy and a wrong binding are refused. The JavaScript side (`client-crypto/js-test/interop.test.mjs`)
//! writes and checks the same shape.

use std::process::ExitCode;

use client_crypto::{
    BlindIndexBits, BlindIndexField, CryptoError, InstitutionKey, NoteBinding, Passport, Pseudonym,
    Sex, UserKeyPair,
};
use serde_json::{Value, json};

const USER_ID: i64 = 501;
const INSTITUTION_ID: i64 = 12;
const KEY_VERSION: u32 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("write"), Some(path)) => write(path),
        (Some("check"), Some(path)) => check(path),
        _ => Err("usage: interop write|check FILE".to_owned()),
    };
    match result {
        Ok(message) => {
            println!("interop: {message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("interop: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn e(error: impl std::fmt::Display) -> String {
    error.to_string()
}

fn sample_passport() -> Passport {
    let mut p = Passport::new("Кузнецова-Ёлкина", "Ольга", "1947-03-09", Sex::Female);
    p.patronymic = Some("Викторовна".into());
    p.snils = Some("123-456-789 64".into());
    p.address = Some("г. Сортавала, ул. Карельская, д. 5".into());
    p.notes = Some("Written natively, opened in WASM.".into());
    p
}

fn write(path: &str) -> Result<String, String> {
    let pair = UserKeyPair::generate().map_err(e)?;
    let passphrase = "native passphrase — родной";
    let key_file = pair.export_key_file(passphrase).map_err(e)?;
    let key = InstitutionKey::generate(KEY_VERSION).map_err(e)?;
    let envelope = key
        .wrap_for(pair.public_key(), USER_ID, INSTITUTION_ID)
        .map_err(e)?;
    let pseudonym = Pseudonym::generate().map_err(e)?;
    let passport = sample_passport();
    let sealed = key
        .seal_passport(&passport, &pseudonym, INSTITUTION_ID)
        .map_err(e)?;
    let text = "Наблюдение: состояние стабильное.";
    let binding = NoteBinding {
        purpose: "observation",
        pseudonym: &pseudonym,
        institution_id: INSTITUTION_ID,
        record_id: "native-record-1",
    };
    let note = key.seal_note(text, &binding).map_err(e)?;
    let bits = BlindIndexBits::new(16).map_err(e)?;
    let surname_index = key
        .blind_index(BlindIndexField::Surname, &passport.surname, bits)
        .map_err(e)?;
    let compound = key
        .blind_index_surname_birth_year(&passport.surname, &passport.date_of_birth, bits)
        .map_err(e)?;
    let doc = json!({
        "writer": "native",
        "passphrase": passphrase,
        "key_file": key_file,
        "user_id": USER_ID,
        "institution_id": INSTITUTION_ID,
        "key_version": KEY_VERSION,
        "key_envelope": envelope,
        "pseudonym": pseudonym.as_str(),
        "passport": serde_json::to_value(&passport).map_err(e)?,
        "passport_envelope": sealed,
        "note": { "purpose": "observation", "record_id": "native-record-1", "text": text, "sealed": note },
        "blind_indexes": [
            { "field": "surname", "value": passport.surname, "bits": 16, "token": surname_index.to_token() },
        ],
        "compound_index": {
            "surname": passport.surname, "birth": passport.date_of_birth, "bits": 16, "token": compound.to_token(),
        },
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc).map_err(e)?).map_err(e)?;
    Ok(format!("wrote {path}"))
}

fn field<'a>(doc: &'a Value, path: &[&str]) -> Result<&'a Value, String> {
    path.iter()
        .try_fold(doc, |v, k| v.get(k))
        .ok_or_else(|| format!("missing {}", path.join(".")))
}

fn text<'a>(doc: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    field(doc, path)?
        .as_str()
        .ok_or_else(|| format!("{} is not a string", path.join(".")))
}

fn int(doc: &Value, path: &[&str]) -> Result<i64, String> {
    field(doc, path)?
        .as_i64()
        .ok_or_else(|| format!("{} is not an integer", path.join(".")))
}

/// Tampers with a character in the middle of a base64url text: it carries six bits of the
/// ciphertext, so the text stays valid base64url and only the authentication tag can refuse it.
/// (The last character may carry padding bits, which the strict decoder refuses as bad encoding.)
fn flip_middle_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let middle = chars.len() / 2;
    if let Some(c) = chars.get_mut(middle) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

fn check(path: &str) -> Result<String, String> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).map_err(e)?).map_err(e)?;
    let writer = text(&doc, &["writer"])?;
    let user_id = int(&doc, &["user_id"])?;
    let institution_id = int(&doc, &["institution_id"])?;
    let key_version = u32::try_from(int(&doc, &["key_version"])?).map_err(e)?;

    let pair =
        UserKeyPair::import_key_file(text(&doc, &["key_file"])?, text(&doc, &["passphrase"])?)
            .map_err(|err| format!("key file: {err}"))?;
    let key = pair
        .open_key_envelope(
            text(&doc, &["key_envelope"])?,
            user_id,
            institution_id,
            key_version,
        )
        .map_err(|err| format!("key envelope: {err}"))?;
    let pseudonym = Pseudonym::parse(text(&doc, &["pseudonym"])?).map_err(e)?;

    let sealed = text(&doc, &["passport_envelope"])?;
    let opened = key
        .open_passport(sealed, &pseudonym, institution_id)
        .map_err(|err| format!("passport: {err}"))?;
    let expected: Passport =
        serde_json::from_value(field(&doc, &["passport"])?.clone()).map_err(e)?;
    if opened != expected {
        return Err("the opened passport differs from the one written".to_owned());
    }
    match key.open_passport(&flip_middle_char(sealed), &pseudonym, institution_id) {
        Err(CryptoError::DecryptionFailed) => {}
        Err(err) => return Err(format!("a tampered passport envelope gave {err}")),
        Ok(_) => return Err("a tampered passport envelope opened".to_owned()),
    }
    match key.open_passport(sealed, &pseudonym, institution_id + 1) {
        Err(CryptoError::DecryptionFailed) => {}
        Err(err) => return Err(format!("the passport for another institution gave {err}")),
        Ok(_) => return Err("the passport opened for another institution".to_owned()),
    }

    let binding = NoteBinding {
        purpose: text(&doc, &["note", "purpose"])?,
        pseudonym: &pseudonym,
        institution_id,
        record_id: text(&doc, &["note", "record_id"])?,
    };
    let note = key
        .open_note(text(&doc, &["note", "sealed"])?, &binding)
        .map_err(|err| format!("note: {err}"))?;
    if note != text(&doc, &["note", "text"])? {
        return Err("the opened note differs from the one written".to_owned());
    }

    let list = field(&doc, &["blind_indexes"])?
        .as_array()
        .ok_or("blind_indexes is not a list")?;
    for item in list {
        let f = BlindIndexField::from_label(text(item, &["field"])?).map_err(e)?;
        let bits =
            BlindIndexBits::new(u8::try_from(int(item, &["bits"])?).map_err(e)?).map_err(e)?;
        let token = key
            .blind_index(f, text(item, &["value"])?, bits)
            .map_err(e)?
            .to_token();
        if token != text(item, &["token"])? {
            return Err(format!("blind index of {f} differs: {token}"));
        }
    }
    let c = field(&doc, &["compound_index"])?;
    let bits = BlindIndexBits::new(u8::try_from(int(c, &["bits"])?).map_err(e)?).map_err(e)?;
    let token = key
        .blind_index_surname_birth_year(text(c, &["surname"])?, text(c, &["birth"])?, bits)
        .map_err(e)?
        .to_token();
    if token != text(c, &["token"])? {
        return Err(format!("compound blind index differs: {token}"));
    }
    Ok(format!("opened everything {writer} wrote in {path}"))
}
