//! Size buckets: the plaintext is `u32 BE length | payload | zero bytes` padded to the next
//! power of two of at least 512 bytes, so a ciphertext's length tells only the bucket.

use crate::CryptoError;

/// The smallest bucket.
pub(crate) const MIN_BUCKET: usize = 512;
/// The largest bucket of a passport.
pub(crate) const MAX_PASSPORT_PADDED: usize = 64 * 1024;
/// The largest bucket of a sealed note.
pub(crate) const MAX_NOTE_PADDED: usize = 1024 * 1024;
/// The u32 length in front of the payload.
pub(crate) const LEN_PREFIX: usize = 4;

/// Is `n` a bucket size (a power of two from 512 to `max`)?
pub(crate) fn is_bucket(n: usize, max: usize) -> bool {
    n.is_power_of_two() && (MIN_BUCKET..=max).contains(&n)
}

/// The bucket a payload of `payload_len` bytes is padded to.
pub(crate) fn bucket_for(payload_len: usize, max: usize) -> Result<usize, CryptoError> {
    let needed = payload_len.saturating_add(LEN_PREFIX).max(MIN_BUCKET);
    needed
        .checked_next_power_of_two()
        .filter(|&b| b <= max)
        .ok_or(CryptoError::TooLarge {
            max: max - LEN_PREFIX,
        })
}

#[cfg(test)]
pub(crate) fn pad(payload: &[u8], max: usize) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    let bucket = bucket_for(payload.len(), max)?;
    let len = u32::try_from(payload.len()).map_err(|_| CryptoError::TooLarge { max })?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(bucket));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.resize(bucket, 0);
    Ok(out)
}

/// The payload of an authenticated padded plaintext; refuses a length prefix that does not
/// fit and non-zero padding, so there is exactly one valid encoding of each payload.
pub(crate) fn unpad(padded: &[u8]) -> Result<&[u8], CryptoError> {
    let (prefix, rest) = padded
        .split_first_chunk::<LEN_PREFIX>()
        .ok_or(CryptoError::InvalidPadding)?;
    let len =
        usize::try_from(u32::from_be_bytes(*prefix)).map_err(|_| CryptoError::InvalidPadding)?;
    if len > rest.len() {
        return Err(CryptoError::InvalidPadding);
    }
    let (payload, zeros) = rest.split_at(len);
    if zeros.iter().any(|&b| b != 0) {
        return Err(CryptoError::InvalidPadding);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets() {
        assert_eq!(bucket_for(0, MAX_PASSPORT_PADDED).unwrap(), 512);
        assert_eq!(bucket_for(508, MAX_PASSPORT_PADDED).unwrap(), 512);
        assert_eq!(bucket_for(509, MAX_PASSPORT_PADDED).unwrap(), 1024);
        assert_eq!(bucket_for(65532, MAX_PASSPORT_PADDED).unwrap(), 65536);
        assert!(matches!(
            bucket_for(65533, MAX_PASSPORT_PADDED),
            Err(CryptoError::TooLarge { .. })
        ));
        assert!(is_bucket(1024, MAX_PASSPORT_PADDED));
        assert!(!is_bucket(256, MAX_PASSPORT_PADDED));
        assert!(!is_bucket(1000, MAX_PASSPORT_PADDED));
        assert!(!is_bucket(131072, MAX_PASSPORT_PADDED));
    }

    #[test]
    fn unpad_refuses_bad_padding() {
        let mut p = pad(b"abc", MAX_PASSPORT_PADDED).unwrap();
        assert_eq!(unpad(&p).unwrap(), b"abc");
        p[100] = 1;
        assert_eq!(unpad(&p), Err(CryptoError::InvalidPadding));
        let mut q = pad(b"abc", MAX_PASSPORT_PADDED).unwrap();
        q[0..4].copy_from_slice(&600u32.to_be_bytes());
        assert_eq!(unpad(&q), Err(CryptoError::InvalidPadding));
        assert_eq!(unpad(&[0, 0]), Err(CryptoError::InvalidPadding));
    }

    proptest! {
        #[test]
        fn pad_round_trips_and_hides_length(payload in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let padded = pad(&payload, MAX_PASSPORT_PADDED).unwrap();
            prop_assert!(is_bucket(padded.len(), MAX_PASSPORT_PADDED));
            prop_assert!(padded.len() >= payload.len() + 4);
            // Never more than twice what is needed (or the minimum bucket).
            prop_assert!(padded.len() <= (2 * (payload.len() + 4)).max(MIN_BUCKET));
            prop_assert_eq!(unpad(&padded).unwrap(), &payload[..]);
        }

        #[test]
        fn payloads_in_one_bucket_pad_to_one_length(a in 0usize..508, b in 0usize..508) {
            let pa = pad(&vec![7u8; a], MAX_PASSPORT_PADDED).unwrap();
            let pb = pad(&vec![9u8; b], MAX_PASSPORT_PADDED).unwrap();
            prop_assert_eq!(pa.len(), pb.len());
        }
    }
}
