#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod aead;
pub mod blind_index;
mod encoding;
mod error;
pub mod institution_key;
pub mod key_chain;
pub mod key_envelope;
pub mod key_file;
pub mod keypair;
pub mod normalize;
pub mod note;
mod padding;
pub mod passport;
pub mod pseudonym;
mod random;
pub mod shape;

#[cfg(feature = "test-vectors")]
pub mod deterministic;

pub use blind_index::{
    BIRTH_YEAR_BITS, BitRange, BlindIndex, BlindIndexBits, BlindIndexField, recommend_bits,
};
pub use error::{CryptoError, Format, ShapeError};
pub use institution_key::InstitutionKey;
pub use key_file::KdfParams;
pub use keypair::{Fingerprint, PublicKey, UserKeyPair};
pub use note::NoteBinding;
pub use passport::{ContactPerson, IdentityDocument, Passport, Sex};
pub use pseudonym::Pseudonym;
