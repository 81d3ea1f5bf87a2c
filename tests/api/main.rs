//! Black-box tests of the HTTP API; every test runs on SQLite and on PostgreSQL.

mod admin;
mod audit;
mod auth;
mod errors;
mod import;
mod keys;
mod openapi;
mod prescription_dates;
mod refs;
mod register;
mod reports;
mod search;
mod startup;
