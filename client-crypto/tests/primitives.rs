//! Known-answer tests of the primitives client-crypto builds on, with published vectors, so a
//! dependency update that changed a primitive's output would be caught here and not first in
//! an interoperability failure.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hex_literal::hex;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// RFC 7748, section 5.2, first X25519 test vector.
#[test]
fn x25519_rfc7748_5_2() {
    let scalar = hex!("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let u = hex!("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    let out = hex!("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    assert_eq!(x25519_dalek::x25519(scalar, u), out);
}

/// RFC 7748, section 6.1: Alice and Bob's Diffie-Hellman.
#[test]
fn x25519_rfc7748_6_1() {
    let alice = x25519_dalek::StaticSecret::from(hex!(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    ));
    let bob_public = hex!("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_eq!(
        x25519_dalek::PublicKey::from(&alice).to_bytes(),
        hex!("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        alice.diffie_hellman(&bob_public.into()).to_bytes(),
        hex!("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    );
}

/// RFC 5869, appendix A.1 (HKDF-SHA256, basic test case).
#[test]
fn hkdf_sha256_rfc5869_a_1() {
    let ikm = [0x0b; 22];
    let salt = hex!("000102030405060708090a0b0c");
    let info = hex!("f0f1f2f3f4f5f6f7f8f9");
    let mut okm = [0u8; 42];
    Hkdf::<Sha256>::new(Some(&salt), &ikm)
        .expand(&info, &mut okm)
        .unwrap();
    assert_eq!(
        okm,
        hex!(
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        )
    );
}

/// RFC 4231, section 4.3 (test case 2, HMAC-SHA-256).
#[test]
fn hmac_sha256_rfc4231_case_2() {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?");
    assert_eq!(
        mac.finalize().into_bytes()[..],
        hex!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
}

/// NIST CAVP `gcmEncryptExtIV256.rsp` (AES-256-GCM, 96-bit IV, 128-bit plaintext and AAD),
/// <https://csrc.nist.gov/Projects/cryptographic-algorithm-validation-program/CAVP-TESTING-BLOCK-CIPHER-MODES>.
#[test]
fn aes256gcm_nist_cavp() {
    let cipher = Aes256Gcm::new(
        &hex!("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b").into(),
    );
    let nonce = Nonce::from(hex!("ac93a1a6145299bde902f21a"));
    let aad = hex!("1e0889016f67601c8ebea4943bc23ad6");
    let mut buf = hex!("2d71bcfa914e4ac045b2aa60955fad24");
    let tag = cipher
        .encrypt_inout_detached(&nonce, &aad, (&mut buf[..]).into())
        .unwrap();
    assert_eq!(buf, hex!("8995ae2e6df3dbf96fac7b7137bae67f"));
    assert_eq!(tag[..], hex!("eca5aa77d51d4a0a14d9c51e1da474ab"));
}
