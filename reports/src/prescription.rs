//! The prescription report of one institution for a period: every prescription as a row,
//! then totals per medicament and unit, with controlled substances in their own section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::labels::{self, format_date};
use crate::layout::Face;
use crate::model::{Locale, PrescriptionRow, Quantity, ReportMeta};
use crate::render::{Align, Column, Orientation, RowStyle, TABLE_SIZE, TableRow, Writer, render};

/// Reports larger than this are refused: the whole document is built in memory (see the
/// README), so the limit is what keeps memory bounded. 100,000 rows are about 2,000 pages.
pub const MAX_PRESCRIPTION_ROWS: usize = 100_000;

/// Marks a controlled substance in the rows of the prescription table.
pub const CONTROLLED_MARK: &str = "‡";

/// Total of one medicament in one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicamentTotal {
    pub medicament: String,
    pub unit: String,
    pub prescriptions: u64,
    pub quantity: Quantity,
}

/// The totals printed under the prescription table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrescriptionTotals {
    pub prescriptions: u64,
    /// Non-controlled medicaments, by name then unit.
    pub medicaments: Vec<MedicamentTotal>,
    /// Controlled substances, by name then unit.
    pub controlled: Vec<MedicamentTotal>,
}

/// Sums every row given, per (medicament, unit). A medicament is controlled if any of its
/// rows says so. Fails only if a total overflows.
pub fn prescription_totals(rows: &[PrescriptionRow]) -> Result<PrescriptionTotals, ReportError> {
    let mut by_key: BTreeMap<(&str, &str), (bool, u64, Quantity)> = BTreeMap::new();
    for row in rows {
        let entry = by_key
            .entry((row.medicament.as_str(), row.unit.as_str()))
            .or_insert((false, 0, Quantity::ZERO));
        entry.0 |= row.controlled;
        entry.1 += 1;
        entry.2 = entry.2.checked_add(row.quantity).ok_or_else(|| {
            ReportError::InvalidInput(format!("total of {} overflows", row.medicament))
        })?;
    }
    let mut totals = PrescriptionTotals {
        prescriptions: rows.len() as u64,
        medicaments: Vec::new(),
        controlled: Vec::new(),
    };
    for ((medicament, unit), (controlled, prescriptions, quantity)) in by_key {
        let total = MedicamentTotal {
            medicament: medicament.to_string(),
            unit: unit.to_string(),
            prescriptions,
            quantity,
        };
        if controlled {
            totals.controlled.push(total);
        } else {
            totals.medicaments.push(total);
        }
    }
    Ok(totals)
}

/// The short form of a pseudonym printed in reports: its first 8 characters and "…".
pub fn short_pseudonym(pseudonym: &str) -> String {
    let mut chars = pseudonym.chars();
    let head: String = chars.by_ref().take(8).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Renders the prescription report (A4 landscape) of `rows`, in the order given, followed by
/// the totals computed from them.
pub fn prescription_pdf(
    meta: &ReportMeta,
    rows: &[PrescriptionRow],
) -> Result<Vec<u8>, ReportError> {
    meta.check()?;
    if rows.len() > MAX_PRESCRIPTION_ROWS {
        return Err(ReportError::TooLarge {
            rows: rows.len(),
            limit: MAX_PRESCRIPTION_ROWS,
        });
    }
    let totals = prescription_totals(rows)?;
    let locale = meta.locale;
    render(meta, Orientation::Landscape, |writer| {
        draw(writer, locale, rows, &totals)
    })
}

fn draw(
    writer: &mut Writer,
    locale: Locale,
    rows: &[PrescriptionRow],
    totals: &PrescriptionTotals,
) {
    let l = writer.labels();

    let columns = scaled_columns(
        writer.content_width(),
        &[
            (l.number, 6.5, Align::Left),
            (l.date, 7.5, Align::Left),
            (l.patient, 8.0, Align::Left),
            (l.medicament, 19.0, Align::Left),
            (l.dose_route_frequency, 26.0, Align::Left),
            (l.quantity, 10.0, Align::Right),
            (l.prescriber, 14.0, Align::Left),
            (l.status, 9.0, Align::Left),
        ],
    );
    writer.table(
        &columns,
        rows.iter().map(|row| {
            let medicament = if row.controlled {
                format!("{} {CONTROLLED_MARK}", row.medicament)
            } else {
                row.medicament.clone()
            };
            TableRow::plain(vec![
                row.number.clone(),
                format_date(row.date, locale),
                short_pseudonym(&row.pseudonym),
                medicament,
                [
                    row.dose.as_str(),
                    labels::route(&row.route, locale),
                    row.frequency.as_str(),
                ]
                .iter()
                .filter(|s| !s.trim().is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" / "),
                format!(
                    "{} {}",
                    row.quantity.format(locale),
                    labels::unit(&row.unit, locale)
                ),
                row.prescriber.clone(),
                labels::status(&row.status, locale).to_string(),
            ])
        }),
    );
    writer.paragraph(
        &format!("{}: {}", l.prescriptions_in_period, totals.prescriptions),
        Face::Bold,
        TABLE_SIZE,
    );
    if !totals.controlled.is_empty() {
        writer.paragraph(l.controlled_marker_note, Face::Regular, TABLE_SIZE);
    }

    let totals_columns = scaled_columns(
        writer.content_width() * 0.7,
        &[
            (l.medicament, 40.0, Align::Left),
            (l.unit, 15.0, Align::Left),
            (l.prescriptions, 15.0, Align::Right),
            (l.total_quantity, 18.0, Align::Right),
        ],
    );
    for (heading, list) in [
        (l.totals_by_medicament, &totals.medicaments),
        (l.controlled_substances, &totals.controlled),
    ] {
        writer.heading(heading, 40.0);
        if list.is_empty() {
            writer.paragraph(l.none, Face::Regular, TABLE_SIZE);
            continue;
        }
        writer.table(
            &totals_columns,
            list.iter().map(|t| TableRow {
                cells: vec![
                    t.medicament.clone(),
                    labels::unit(&t.unit, locale).to_string(),
                    t.prescriptions.to_string(),
                    t.quantity.format(locale),
                ],
                style: RowStyle::Plain,
            }),
        );
    }
}

/// Columns whose relative `weights` are scaled to fill `width` points.
pub(crate) fn scaled_columns(width: f32, spec: &[(&str, f32, Align)]) -> Vec<Column> {
    let sum: f32 = spec.iter().map(|(_, w, _)| w).sum();
    spec.iter()
        .map(|&(header, weight, align)| Column {
            header: header.to_string(),
            width: width * weight / sum,
            align,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_pseudonym_keeps_eight_characters() {
        assert_eq!(short_pseudonym("PX7K2M9QZZZZ"), "PX7K2M9Q…");
        assert_eq!(short_pseudonym("ABCDEFGH"), "ABCDEFGH");
        assert_eq!(short_pseudonym("Ёжик"), "Ёжик");
    }
}
