#![doc = include_str!("../README.md")]

pub mod audit_queue;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod openapi;
pub mod password;
pub mod ratelimit;
pub mod routes;
pub mod secrets;
pub mod seed;
pub mod startup;
pub mod state;
pub mod tls;
