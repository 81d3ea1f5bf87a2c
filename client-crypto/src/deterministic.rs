//! Deterministic entry points (fixed keys, nonces, salts and ephemeral secrets), compiled only
//! with the `test-vectors` feature, to generate and check the published test vectors.
//!
//! Never use them to protect real data: a repeated nonce under one key breaks AES-GCM. The
//! WASM wrapper does not enable this feature.

use zeroize::Zeroizing;

use crate::{
    CryptoError, InstitutionKey, KdfParams, NoteBinding, Passport, Pseudonym, PublicKey,
    UserKeyPair,
};

/// An institution key with the given bytes.
pub fn institution_key(version: u32, bytes: [u8; 32]) -> InstitutionKey {
    InstitutionKey::from_bytes(version, Zeroizing::new(bytes))
}

/// A key pair from the given private key bytes.
pub fn user_key_pair(secret: [u8; 32]) -> Result<UserKeyPair, CryptoError> {
    UserKeyPair::from_secret_bytes(secret)
}

/// The private key bytes of a key pair (to check a key file's contents).
pub fn secret_bytes(pair: &UserKeyPair) -> [u8; 32] {
    pair.secret().to_bytes()
}

/// The bytes of an institution key (to check an unwrapped key).
pub fn institution_key_bytes(key: &InstitutionKey) -> [u8; 32] {
    *key.bytes()
}

/// The pseudonym encoding these 80 bits.
pub fn pseudonym(bits: [u8; 10]) -> Pseudonym {
    Pseudonym::from_random_bytes(bits)
}

/// [`InstitutionKey::seal_passport`] with a fixed nonce.
pub fn seal_passport(
    key: &InstitutionKey,
    passport: &Passport,
    pseudonym: &Pseudonym,
    institution_id: i64,
    nonce: [u8; 12],
) -> Result<String, CryptoError> {
    key.seal_passport_with_nonce(passport, pseudonym, institution_id, &nonce)
}

/// [`InstitutionKey::seal_note`] with a fixed nonce.
pub fn seal_note(
    key: &InstitutionKey,
    text: &str,
    binding: &NoteBinding<'_>,
    nonce: [u8; 12],
) -> Result<String, CryptoError> {
    key.seal_note_with_nonce(text, binding, &nonce)
}

/// [`InstitutionKey::wrap_for`] with a fixed ephemeral secret and nonce.
pub fn wrap_for(
    key: &InstitutionKey,
    recipient: &PublicKey,
    recipient_user_id: i64,
    institution_id: i64,
    ephemeral_secret: [u8; 32],
    nonce: [u8; 12],
) -> Result<String, CryptoError> {
    key.wrap_for_with(
        recipient,
        recipient_user_id,
        institution_id,
        &ephemeral_secret,
        &nonce,
    )
}

/// [`UserKeyPair::export_key_file_with`] with a fixed salt and nonce.
pub fn export_key_file(
    pair: &UserKeyPair,
    passphrase: &str,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 12],
) -> Result<String, CryptoError> {
    pair.export_key_file_inner(passphrase, params, &salt, &nonce)
}
