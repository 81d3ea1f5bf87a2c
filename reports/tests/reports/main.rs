//! Integration tests of palreg-reports: the PDFs are read back with pdf-extract and compared
//! with computations over the test data that do not go through the crate.

mod common;
mod fhir_json;
mod prescription;
mod signing;
mod summary;
mod suppression_props;
