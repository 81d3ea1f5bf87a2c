//! The one source of randomness: the operating system's CSPRNG (`crypto.getRandomValues` in
//! the browser).

use crate::CryptoError;

pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError::Rng)?;
    Ok(bytes)
}
