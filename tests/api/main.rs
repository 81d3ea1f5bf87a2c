//! Black-box tests of the HTTP API; every test runs on SQLite and on PostgreSQL.

mod admin;
mod audit;
mod auth;
mod backup;
mod calendar_dates;
mod errors;
mod import;
mod keys;
mod openapi;
mod refs;
mod register;
mod reports;
mod search;
mod startup;
mod totp;
