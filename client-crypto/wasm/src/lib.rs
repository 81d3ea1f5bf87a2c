//! WASM wrapper of client-crypto.
