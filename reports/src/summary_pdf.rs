//! The summary report as a PDF: one table per breakdown, categories down the side and
//! institutions across (split into several tables when they do not fit the page width), the
//! total in the last column, and the suppression rule as a footnote.

use std::ops::Range;

use crate::ReportError;
use crate::labels::{self, Labels};
use crate::layout::Face;
use crate::model::{Locale, ReportMeta};
use crate::render::{Align, Column, Orientation, RowStyle, TABLE_SIZE, TableRow, Writer, render};
use crate::summary::{CountRow, CountTable, MedicamentRow, QuantityCell, SuppressedSummary};
use crate::suppress::footnote;

const LABEL_WIDTH: f32 = 175.0;
const MIN_NUMBER_WIDTH: f32 = 52.0;
const MAX_NUMBER_WIDTH: f32 = 85.0;
/// Up to this many institutions the report is portrait.
const PORTRAIT_MAX_INSTITUTIONS: usize = 5;

/// Renders the suppressed summary. Only what [`SuppressedSummary`] holds is printed, so
/// nothing suppressed there can appear here.
pub fn summary_pdf(meta: &ReportMeta, summary: &SuppressedSummary) -> Result<Vec<u8>, ReportError> {
    meta.check()?;
    let orientation = if summary.institutions.len() <= PORTRAIT_MAX_INSTITUTIONS {
        Orientation::Portrait
    } else {
        Orientation::Landscape
    };
    render(meta, orientation, |writer| {
        draw(writer, meta.locale, summary)
    })
}

fn draw(writer: &mut Writer, locale: Locale, summary: &SuppressedSummary) {
    let l = writer.labels();
    let layout = ColumnLayout::new(writer.content_width(), &summary.institutions);
    let k = summary.k;
    let rule = footnote(locale, k);

    let first_sentence = rule
        .split_inclusive(". ")
        .next()
        .unwrap_or(&rule)
        .trim()
        .to_string();
    writer.paragraph(&first_sentence, Face::Regular, TABLE_SIZE);

    let register_rows: Vec<SummaryRow> = summary
        .register
        .iter()
        .zip(l.register_measures)
        .map(|(row, label)| counts_row(label.to_string(), row, k, RowStyle::Plain))
        .collect();
    section(
        writer,
        &layout,
        summary,
        l.register_movement,
        &register_rows,
    );

    let icd = keyed_rows(&summary.icd10_blocks, l, k);
    section(writer, &layout, summary, l.icd10_blocks, &icd);

    let age_sex = age_sex_rows(&summary.age_sex, l, k);
    section(writer, &layout, summary, l.age_sex, &age_sex);

    let care = keyed_rows(&summary.care_forms, l, k);
    section(writer, &layout, summary, l.care_forms, &care);

    let needs = keyed_rows(&summary.needs, l, k);
    section(writer, &layout, summary, l.needs, &needs);
    writer.paragraph(l.needs_note, Face::Regular, TABLE_SIZE);

    let medicaments = medicament_rows(&summary.medicaments, l, k, locale);
    section(writer, &layout, summary, l.medicament_needs, &medicaments);
    let controlled = medicament_rows(&summary.controlled_medicaments, l, k, locale);
    section(
        writer,
        &layout,
        summary,
        l.controlled_substances,
        &controlled,
    );

    writer.heading(l.notes, 30.0);
    writer.paragraph(&rule, Face::Regular, TABLE_SIZE);
}

/// How the institutions are split into tables that fit the page width.
struct ColumnLayout {
    chunks: Vec<Range<usize>>,
    number_width: f32,
}

impl ColumnLayout {
    fn new(content_width: f32, institutions: &[String]) -> Self {
        let room = content_width - LABEL_WIDTH;
        let per_table = ((room / MIN_NUMBER_WIDTH).floor() as usize).max(2);
        let n = institutions.len();
        let chunks: Vec<Range<usize>> = if n < per_table {
            std::iter::once(0..n).collect()
        } else {
            // The total column comes with the last chunk, so leave it room in every chunk.
            let size = per_table - 1;
            (0..n.div_ceil(size))
                .map(|i| i * size..((i + 1) * size).min(n))
                .collect()
        };
        let widest = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| c.len() + usize::from(i + 1 == chunks.len()))
            .max()
            .unwrap_or(1);
        ColumnLayout {
            number_width: (room / widest as f32).min(MAX_NUMBER_WIDTH),
            chunks,
        }
    }
}

/// A table row before it is cut into column chunks: label, one text per institution, total.
struct SummaryRow {
    label: String,
    cells: Vec<String>,
    total: String,
    style: RowStyle,
}

fn section(
    writer: &mut Writer,
    layout: &ColumnLayout,
    summary: &SuppressedSummary,
    heading: &str,
    rows: &[SummaryRow],
) {
    let l = writer.labels();
    writer.heading(heading, 45.0);
    if rows.is_empty() {
        writer.paragraph(l.none, Face::Regular, TABLE_SIZE);
        return;
    }
    let last = layout.chunks.len().saturating_sub(1);
    for (i, chunk) in layout.chunks.iter().enumerate() {
        let with_total = i == last;
        let mut columns = vec![Column {
            header: l.category.to_string(),
            width: LABEL_WIDTH,
            align: Align::Left,
        }];
        columns.extend(
            summary.institutions[chunk.clone()]
                .iter()
                .map(|name| Column {
                    header: name.clone(),
                    width: layout.number_width,
                    align: Align::Right,
                }),
        );
        if with_total {
            columns.push(Column {
                header: l.total.to_string(),
                width: layout.number_width,
                align: Align::Right,
            });
        }
        writer.table(
            &columns,
            rows.iter().map(|row| {
                let mut cells = vec![row.label.clone()];
                cells.extend(row.cells[chunk.clone()].iter().cloned());
                if with_total {
                    cells.push(row.total.clone());
                }
                TableRow {
                    cells,
                    style: row.style,
                }
            }),
        );
    }
}

fn counts_row(label: String, row: &CountRow, k: u64, style: RowStyle) -> SummaryRow {
    SummaryRow {
        label,
        cells: row.by_institution.iter().map(|c| c.display(k)).collect(),
        total: row.total.display(k),
        style,
    }
}

fn keyed_rows(table: &CountTable, l: &Labels, k: u64) -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = table
        .rows
        .iter()
        .map(|row| counts_row(row.key.clone(), row, k, RowStyle::Plain))
        .collect();
    if let Some(totals) = &table.totals {
        rows.push(counts_row(l.total.to_string(), totals, k, RowStyle::Total));
    }
    rows
}

fn band_label(key: &str, l: &Labels) -> String {
    if key == "all" {
        l.all_ages.to_string()
    } else {
        key.replace('-', "–")
    }
}

fn sex_label(key: Option<&str>, l: &Labels) -> &'static str {
    match key {
        Some("M") => l.sexes[0],
        Some("F") => l.sexes[1],
        Some("unknown") => l.sexes[2],
        _ => l.all_sexes,
    }
}

fn age_sex_rows(table: &CountTable, l: &Labels, k: u64) -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = table
        .rows
        .iter()
        .map(|row| {
            let all = row.sex.as_deref() == Some("all") || row.key == "all";
            let label = format!(
                "{}, {}",
                band_label(&row.key, l),
                sex_label(row.sex.as_deref(), l)
            );
            counts_row(
                label,
                row,
                k,
                if all { RowStyle::Bold } else { RowStyle::Plain },
            )
        })
        .collect();
    if let Some(totals) = &table.totals {
        rows.push(counts_row(l.total.to_string(), totals, k, RowStyle::Total));
    }
    rows
}

fn medicament_rows(list: &[MedicamentRow], l: &Labels, k: u64, locale: Locale) -> Vec<SummaryRow> {
    let quantity = |q: QuantityCell| match q {
        QuantityCell::Shown(q) => q.format(locale),
        QuantityCell::Suppressed => l.hidden.to_string(),
    };
    let mut rows = Vec::new();
    for row in list {
        rows.push(SummaryRow {
            label: format!("{}, {}", row.medicament, labels::unit(&row.unit, locale)),
            cells: row.quantity.iter().map(|&q| quantity(q)).collect(),
            total: quantity(row.quantity_total),
            style: RowStyle::Bold,
        });
        rows.push(SummaryRow {
            label: l.patients.to_string(),
            cells: row.patients.iter().map(|c| c.display(k)).collect(),
            total: row.patients_total.display(k),
            style: RowStyle::Plain,
        });
    }
    rows
}
