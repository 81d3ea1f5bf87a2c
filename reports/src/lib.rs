#![doc = include_str!("../README.md")]

mod assemble;
mod fhir;
mod labels;
pub mod layout;
mod model;
mod prescription;
mod render;
pub mod signing;
mod summary;
mod summary_pdf;
pub mod suppress;

pub use fhir::{MEASURE_URL, PALREG_CODES, to_fhir_measure_report};
pub use model::{
    AgeBand, InstitutionCounts, Locale, MedicamentNeed, PrescriptionRow, Quantity, ReportMeta, Sex,
    SummaryInput,
};
pub use prescription::{
    CONTROLLED_MARK, MAX_PRESCRIPTION_ROWS, MedicamentTotal, PrescriptionTotals, prescription_pdf,
    prescription_totals, short_pseudonym,
};
pub use signing::{
    ReportPublicKey, ReportSignature, ReportSigningKey, SigningError, VerifyError, verify,
    verify_file,
};
pub use summary::{
    CountRow, CountTable, MedicamentRow, QuantityCell, REGISTER_MEASURES, SuppressedSummary,
    summarize,
};
pub use summary_pdf::summary_pdf;
pub use suppress::{Cell, DEFAULT_K};

/// Why a report could not be produced. Every variant is the caller's input or a broken build,
/// never a partial document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("invalid report input: {0}")]
    InvalidInput(String),
    #[error("report too large: {rows} rows (at most {limit})")]
    TooLarge { rows: usize, limit: usize },
    #[error("font error: {0}")]
    Font(String),
    #[error("PDF error: {0}")]
    Pdf(String),
}
