use palreg_reports::signing::SIG_FILE_HEADER;
use palreg_reports::{
    Locale, ReportPublicKey, ReportSignature, ReportSigningKey, SigningError, VerifyError,
    prescription_pdf, verify_file,
};

use crate::common::{meta, rows};

fn report() -> Vec<u8> {
    let (rows, _) = rows(20, 9);
    prescription_pdf(&meta(Locale::En, &["Hospital"]), &rows).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("palreg-reports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_signed_report_verifies_and_any_flipped_byte_fails() {
    let key = ReportSigningKey::from_seed(&[7; 32]);
    let pdf = report();
    let sig = key.sign(&pdf).to_sig_file();
    let public = key.public_key().to_pem();
    assert_eq!(verify_file(&pdf, &sig, &public), Ok(()));

    for position in [0, 1, pdf.len() / 3, pdf.len() / 2, pdf.len() - 1] {
        let mut changed = pdf.clone();
        changed[position] ^= 0x01;
        assert_eq!(
            verify_file(&changed, &sig, &public),
            Err(VerifyError::Mismatch),
            "byte {position}"
        );
    }
    let mut longer = pdf.clone();
    longer.push(b'\n');
    assert_eq!(
        verify_file(&longer, &sig, &public),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn another_key_does_not_verify() {
    let pdf = report();
    let sig = ReportSigningKey::from_seed(&[1; 32])
        .sign(&pdf)
        .to_sig_file();
    let other = ReportSigningKey::from_seed(&[2; 32])
        .public_key()
        .to_base64();
    assert_eq!(verify_file(&pdf, &sig, &other), Err(VerifyError::Mismatch));
}

#[test]
fn signature_and_key_formats_round_trip() {
    let key = ReportSigningKey::from_seed(&[3; 32]);
    let sig = key.sign(b"report");
    let file = sig.to_sig_file();
    assert!(file.starts_with(SIG_FILE_HEADER));
    assert_eq!(ReportSignature::parse(&file), Ok(sig));
    assert_eq!(ReportSignature::parse(&sig.to_base64()), Ok(sig));
    let public = key.public_key();
    assert_eq!(ReportPublicKey::parse(&public.to_pem()), Ok(public));
    assert_eq!(ReportPublicKey::parse(&public.to_base64()), Ok(public));
    assert_eq!(
        verify_file(b"report", &sig.to_base64(), &public.to_base64()),
        Ok(())
    );

    assert_eq!(
        ReportSignature::parse("garbage"),
        Err(VerifyError::MalformedSignature)
    );
    assert_eq!(
        ReportSignature::parse(&file.replace("ed25519", "rsa")),
        Err(VerifyError::MalformedSignature)
    );
    // A file of the same form under another header (a backup's) reads only under that header.
    let other = sig.to_sig_file_under("palreg-backup-signature v1");
    assert_eq!(
        ReportSignature::parse_sig_file(&other, "palreg-backup-signature v1"),
        Ok(sig)
    );
    assert_eq!(
        ReportSignature::parse(&other),
        Err(VerifyError::MalformedSignature)
    );
    for text in [&file, &sig.to_base64()] {
        assert_eq!(
            ReportSignature::parse_sig_file(text, "palreg-backup-signature v1"),
            Err(VerifyError::MalformedSignature)
        );
    }
    assert_eq!(
        ReportPublicKey::parse("AAAA"),
        Err(VerifyError::MalformedPublicKey)
    );
    assert!(
        !format!("{key:?}").contains("[3, 3"),
        "Debug must not print the seed"
    );
}

/// RFC 8032, section 7.1, TEST 1 (empty message).
#[test]
fn rfc8032_test_vector() {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let seed: [u8; 32] = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .try_into()
        .unwrap();
    let key = ReportSigningKey::from_seed(&seed);
    assert_eq!(
        key.public_key().to_bytes().to_vec(),
        hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    assert_eq!(
        key.sign(b"").to_bytes().to_vec(),
        hex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
    );
}

#[cfg(unix)]
#[test]
fn the_key_file_is_created_once_private_and_reloaded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("key");
    let path = dir.join("report-signing.key");
    let first = ReportSigningKey::load_or_generate(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read(&path).unwrap().len(), 32);
    let again = ReportSigningKey::load_or_generate(&path).unwrap();
    assert_eq!(first.public_key(), again.public_key());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        ReportSigningKey::load(&path),
        Err(SigningError::InsecurePermissions { .. })
    ));

    let short = dir.join("short.key");
    std::fs::write(&short, [1u8; 31]).unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        ReportSigningKey::load(&short),
        Err(SigningError::Malformed { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
