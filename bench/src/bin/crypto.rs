//! Native benchmark of client-crypto, each figure beside its baseline from the same run:
//!
//! ```sh
//! cargo run --release -p palreg-bench --bin crypto
//! ```
//!
//! The WASM figures come from `bench/wasm/bench.mjs` (see bench/README.md).

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use client_crypto::{
    BlindIndexBits, BlindIndexField, ContactPerson, IdentityDocument, InstitutionKey, KdfParams,
    Passport, Pseudonym, Sex, UserKeyPair, normalize,
};
use hmac::{Hmac, Mac};
use palreg_bench::measure::{
    Comparison, compare, cpus, human_rate, human_time, load_average, round_duration,
};
use sha2::Sha256;

/// A passport whose JSON is a little under 1 KiB, so it is padded to the 1 KiB bucket.
fn passport_1k() -> Passport {
    let mut p = Passport::new("Салтыкова-Щедрина", "Анна-Мария", "1938-11-30", Sex::Female);
    p.patronymic = Some("Иосифовна".into());
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
    p.notes = Some(
        "Проживает одна; ключ у соседки (кв. 3). Аллергия на пенициллин. Плохо слышит.".into(),
    );
    p
}

struct Row {
    name: &'static str,
    value: String,
    baseline_name: &'static str,
    baseline: String,
    ratio: String,
    best_ratio: String,
    target: &'static str,
    met: Option<bool>,
}

fn print(rows: &[Row]) {
    println!(
        "{:<38} {:>12}   {:<30} {:>12}   {:>7} {:>7}   {:<22} met",
        "operation", "figure", "baseline (same run)", "baseline", "ratio", "best", "target"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<38} {:>12}   {:<30} {:>12}   {:>7} {:>7}   {:<22} {}",
            r.name, r.value, r.baseline_name, r.baseline, r.ratio, r.best_ratio, r.target, met
        );
    }
}

fn rate_row(
    name: &'static str,
    baseline_name: &'static str,
    c: Comparison,
    target: &'static str,
    met: Option<bool>,
) -> Row {
    Row {
        name,
        value: human_rate(c.ops),
        baseline_name,
        baseline: human_rate(c.baseline),
        ratio: format!("{:.0}%", 100.0 * c.ratio),
        best_ratio: format!("{:.0}%", 100.0 * c.best_ratio),
        target,
        met,
    }
}

/// A row in time per operation; the ratio is how many baseline operations one costs.
fn time_row(
    name: &'static str,
    baseline_name: &'static str,
    c: Comparison,
    target: &'static str,
    met: Option<bool>,
) -> Row {
    Row {
        name,
        value: human_time(c.ops),
        baseline_name,
        baseline: human_time(c.baseline),
        ratio: format!("{:.2}x", 1.0 / c.ratio),
        best_ratio: format!("{:.2}x", 1.0 / c.best_ratio),
        target,
        met,
    }
}

fn main() {
    let key = InstitutionKey::generate(1).expect("rng");
    let pseudonym = Pseudonym::generate().expect("rng");
    let passport = passport_1k();
    let json_len = passport.to_json().expect("json").len();
    let sealed = key.seal_passport(&passport, &pseudonym, 7).expect("seal");
    let padded = client_crypto::shape::check_passport_envelope(&sealed)
        .expect("shape")
        .padded_len;
    println!("palreg client-crypto native bench: passport JSON {json_len} B, padded to {padded} B");
    println!(
        "{} CPUs, load average {} at start; each figure and its baseline alternate in 9 rounds of {:?}, medians shown\n",
        cpus(),
        load_average().unwrap_or_else(|| "?".into()),
        round_duration()
    );

    // Bare AES-256-GCM on the same padded size, with a prepared key schedule, as the baseline.
    let bare = Aes256Gcm::new(&[7u8; 32].into());
    let nonce = Nonce::from([1u8; 12]);
    let aad = [0u8; 48];
    let mut bare_ct = vec![0u8; padded];
    let bare_tag = bare
        .encrypt_inout_detached(&nonce, &aad, bare_ct.as_mut_slice().into())
        .expect("encrypt");

    let mut rows = Vec::new();

    let seal = compare(
        || key.seal_passport(&passport, &pseudonym, 7),
        || {
            let mut buf = vec![0u8; padded];
            bare.encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into())
                .map(|t| (buf, t))
        },
    );
    rows.push(rate_row(
        "passport seal (~1 KiB)",
        "bare AES-256-GCM encrypt 1 KiB",
        seal,
        "(report)",
        None,
    ));

    let open = compare(
        || key.open_passport(&sealed, &pseudonym, 7).expect("open"),
        || {
            let mut buf = bare_ct.clone();
            bare.decrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into(), &bare_tag)
                .map(|()| buf)
        },
    );
    // The 80 % target is the WASM one (bench/wasm); natively AES-NI makes the bare call so
    // cheap that base64, JSON and zeroizing dominate, so the native ratio is only reported.
    rows.push(rate_row(
        "passport open (~1 KiB)",
        "bare AES-256-GCM decrypt 1 KiB",
        open,
        "(report; WASM: 80%)",
        None,
    ));

    let alice = UserKeyPair::generate().expect("rng");
    let envelope = key.wrap_for(alice.public_key(), 42, 7).expect("wrap");
    let secret = x25519_dalek::StaticSecret::from([9u8; 32]);
    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([5u8; 32]));
    let unwrap = compare(
        || {
            alice
                .open_key_envelope(&envelope, 42, 7, 1)
                .expect("unwrap")
        },
        || secret.diffie_hellman(black_box(&peer)),
    );
    rows.push(time_row(
        "key envelope unwrap",
        "bare X25519 exchange",
        unwrap,
        "<= 2x one exchange",
        Some(1.0 / unwrap.ratio <= 2.0),
    ));

    let bits = BlindIndexBits::new(16).expect("bits");
    let normalized = normalize::name("Салтыкова-Щедрина").expect("normalize");
    let hmac_key = <Hmac<Sha256> as KeyInit>::new_from_slice(&[3u8; 32]).expect("hmac");
    let bare_hmac = || {
        let mut mac = hmac_key.clone();
        mac.update(&(normalized.len() as u32).to_be_bytes());
        mac.update(black_box(normalized.as_bytes()));
        mac.finalize().into_bytes()
    };
    let index = compare(
        || key.blind_index_normalized(BlindIndexField::Surname, &[black_box(&normalized)], bits),
        bare_hmac,
    );
    rows.push(rate_row(
        "blind index (normalized value)",
        "bare HMAC-SHA256, prepared key",
        index,
        ">= 5 M/s",
        Some(index.ops >= 5e6),
    ));
    let full = compare(
        || {
            key.blind_index(
                BlindIndexField::Surname,
                black_box(" САЛТЫКОВА - Щедрина "),
                bits,
            )
        },
        bare_hmac,
    );
    rows.push(rate_row(
        "blind index incl. normalization",
        "bare HMAC-SHA256, prepared key",
        full,
        "(report)",
        None,
    ));

    let file = alice.export_key_file("bench passphrase").expect("export");
    let p = KdfParams::MINIMUM;
    let params =
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32)).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let unlock = compare(
        || UserKeyPair::import_key_file(&file, "bench passphrase").expect("import"),
        || {
            let mut out = [0u8; 32];
            argon
                .hash_password_into(b"bench passphrase", &[1u8; 16], &mut out)
                .map(|()| out)
        },
    );
    rows.push(time_row(
        "key file unlock (Argon2id 19 MiB t=2)",
        "bare Argon2id, same parameters",
        unlock,
        "(report)",
        None,
    ));

    print(&rows);
    println!(
        "\nratio: median of the per-round ratios (\"met\" is judged on it); best: the two sides' \
         fastest rounds,\nthe least disturbed by other load. Times: how many baseline operations one costs."
    );
}
