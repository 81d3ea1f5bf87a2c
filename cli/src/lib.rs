#![doc = include_str!("../README.md")]

pub mod api;
pub mod cli;
pub mod config;
pub mod csvfile;
pub mod dates;
pub mod error;
pub mod export;
pub mod http;
pub mod import;
pub mod keys;
pub mod patients;
pub mod refs;
pub mod row;
mod tls_pin;

pub use error::{Error, Result};
