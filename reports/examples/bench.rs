//! Prescription report benchmark: `cargo run --release -p palreg-reports --example bench`.
//!
//! 1. Time of a 5,000-row prescription report against a bare printpdf drawing of the same
//!    table (same fonts, fixed one-line rows, a page break every N rows, no wrapping), in the
//!    same process; the target is a ratio of at most 2.
//! 2. Peak resident memory (VmHWM) of a fresh process rendering 5,000 and 50,000 rows.

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use palreg_reports::layout::{BOLD_TTF, REGULAR_TTF};
use palreg_reports::{Locale, PrescriptionRow, Quantity, ReportMeta, prescription_pdf};
use printpdf::{
    FontId, Line, LinePoint, Mm, Op, ParsedFont, PdfDocument, PdfFont, PdfFontHandle, PdfPage,
    PdfSaveOptions, Point, Pt, TextItem, TextMatrix,
};

const ROUNDS: usize = 3;

fn meta() -> ReportMeta {
    ReportMeta {
        title: "Отчёт о назначениях".to_string(),
        institutions: vec!["ГБУЗ «Городская больница № 1»".to_string()],
        period_from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        period_to: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
        generated_at: NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap(),
        author: "Иванова-Петрова А. А.".to_string(),
        locale: Locale::Ru,
    }
}

fn rows(n: usize) -> Vec<PrescriptionRow> {
    let medicaments = [
        ("Морфин", "ампула", true),
        ("Парацетамол", "таблетка", false),
        ("Метоклопрамид", "ампула", false),
        ("Фентанил ТТС", "пластырь", true),
    ];
    (0..n)
        .map(|i| {
            let (medicament, unit, controlled) = medicaments[i % medicaments.len()];
            PrescriptionRow {
                number: format!("25-{:06}", i + 1),
                date: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
                    + chrono::Days::new((i % 365) as u64),
                pseudonym: format!("P{:015X}", i * 7919),
                medicament: medicament.to_string(),
                controlled,
                dose: format!("{} мг", 5 + i % 20),
                route: "п/к".to_string(),
                frequency: "каждые 4 ч".to_string(),
                quantity: Quantity::from_milli(((i % 40) as u64 + 1) * 500),
                unit: unit.to_string(),
                prescriber: "Иванова-Петрова А. А.".to_string(),
                status: "выдано".to_string(),
            }
        })
        .collect()
}

/// The same table drawn with printpdf directly: fixed columns, one line per row, a header
/// row and a page break every `ROWS_PER_PAGE` rows, nothing measured or wrapped.
fn bare_printpdf(rows: &[PrescriptionRow], regular: &ParsedFont, bold: &ParsedFont) -> Vec<u8> {
    const ROWS_PER_PAGE: usize = 48;
    const X: [f32; 8] = [34.0, 88.0, 150.0, 220.0, 380.0, 560.0, 640.0, 740.0];
    let (regular_id, bold_id) = (FontId("R".into()), FontId("B".into()));
    let text = |ops: &mut Vec<Op>, x: f32, y: f32, s: String| {
        ops.push(Op::SetTextMatrix {
            matrix: TextMatrix::Translate(Pt(x), Pt(y)),
        });
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(s)],
        });
    };
    let rule = |ops: &mut Vec<Op>, y: f32| {
        ops.push(Op::DrawLine {
            line: Line {
                points: [34.0, 808.0]
                    .iter()
                    .map(|&x| LinePoint {
                        p: Point { x: Pt(x), y: Pt(y) },
                        bezier: false,
                    })
                    .collect(),
                is_closed: false,
            },
        });
    };
    let pages = rows
        .chunks(ROWS_PER_PAGE)
        .map(|chunk| {
            let mut ops = vec![
                Op::StartTextSection,
                Op::SetFont {
                    font: PdfFontHandle::External(bold_id.clone()),
                    size: Pt(8.0),
                },
            ];
            let header = [
                "№",
                "Дата",
                "Пациент",
                "Препарат",
                "Доза / путь / кратность",
                "Количество",
                "Врач",
                "Статус",
            ];
            for (x, h) in X.iter().zip(header) {
                text(&mut ops, *x, 550.0, h.to_string());
            }
            ops.push(Op::SetFont {
                font: PdfFontHandle::External(regular_id.clone()),
                size: Pt(8.0),
            });
            for (i, row) in chunk.iter().enumerate() {
                let y = 535.0 - i as f32 * 10.5;
                let cells = [
                    row.number.clone(),
                    row.date.to_string(),
                    row.pseudonym.chars().take(8).collect(),
                    row.medicament.clone(),
                    format!("{} / {} / {}", row.dose, row.route, row.frequency),
                    format!("{} {}", row.quantity, row.unit),
                    row.prescriber.clone(),
                    row.status.clone(),
                ];
                for (x, cell) in X.iter().zip(cells) {
                    text(&mut ops, *x, y, cell);
                }
            }
            ops.push(Op::EndTextSection);
            for i in 0..=chunk.len() {
                rule(&mut ops, 545.0 - i as f32 * 10.5);
            }
            PdfPage::new(Mm(297.0), Mm(210.0), ops)
        })
        .collect();
    let mut doc = PdfDocument::new("bare");
    doc.resources
        .fonts
        .map
        .insert(regular_id, PdfFont::new(regular.clone()));
    doc.resources
        .fonts
        .map
        .insert(bold_id, PdfFont::new(bold.clone()));
    doc.pages = pages;
    let options = PdfSaveOptions {
        optimize: true,
        subset_fonts: true,
        secure: true,
        image_optimization: None,
    };
    doc.save(&options, &mut Vec::new())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Child mode: render `n` rows once and print the peak RSS.
fn memory_child(n: usize) {
    let rows = rows(n);
    let before = peak_rss_kib();
    let pdf = prescription_pdf(&meta(), &rows).expect("report");
    println!("{n} {before} {} {}", peak_rss_kib(), pdf.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--memory") {
        memory_child(args[2].parse().expect("row count"));
        return;
    }

    let rows = rows(5_000);
    let regular = ParsedFont::from_bytes(REGULAR_TTF, 0, &mut Vec::new()).expect("font");
    let bold = ParsedFont::from_bytes(BOLD_TTF, 0, &mut Vec::new()).expect("font");
    // Warm up: parse the report's fonts once, as a long-running server would have.
    let report = prescription_pdf(&meta(), &rows).expect("report");
    let bare = bare_printpdf(&rows, &regular, &bold);

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        std::hint::black_box(prescription_pdf(&meta(), &rows).expect("report"));
        ours.push(start.elapsed());
        let start = Instant::now();
        std::hint::black_box(bare_printpdf(&rows, &regular, &bold));
        theirs.push(start.elapsed());
    }
    let (ours, theirs) = (median(ours), median(theirs));
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
    let pages = pdf_pages(&report);
    println!(
        "5,000 rows: palreg-reports {ours:.2?} ({pages} pages, {} KiB)",
        report.len() / 1024
    );
    println!(
        "5,000 rows: bare printpdf  {theirs:.2?} ({} KiB)",
        bare.len() / 1024
    );
    println!(
        "ratio {ratio:.2} (target <= 2.00): {}",
        if ratio <= 2.0 { "met" } else { "NOT met" }
    );

    let exe = std::env::current_exe().expect("own path");
    for n in [5_000, 50_000] {
        let out = Command::new(&exe)
            .args(["--memory", &n.to_string()])
            .output()
            .expect("child run");
        let line = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if let [n, before, peak, size] = fields[..] {
            println!(
                "{n:>6} rows: peak RSS {} MiB (before rendering {} MiB), PDF {} KiB",
                peak / 1024,
                before / 1024,
                size / 1024
            );
        } else {
            println!(
                "{n} rows: child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Page count, read back with pdf-extract.
fn pdf_pages(pdf: &[u8]) -> usize {
    pdf_extract::extract_text_from_mem_by_pages(pdf).map_or(0, |pages| pages.len())
}
