use chrono::NaiveDate;
use palreg_reports::{Locale, PrescriptionRow, Quantity, ReportMeta};

pub fn meta(locale: Locale, institutions: &[&str]) -> ReportMeta {
    ReportMeta {
        title: match locale {
            Locale::En => "Prescriptions".to_string(),
            Locale::Ru => "Отчёт о назначениях".to_string(),
        },
        institutions: institutions.iter().map(|s| s.to_string()).collect(),
        period_from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        period_to: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
        generated_at: NaiveDate::from_ymd_opt(2025, 4, 1)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap(),
        author: "Иванова-Петрова А. А.".to_string(),
        locale,
    }
}

/// (name, unit, controlled) of the test medicaments.
pub const MEDICAMENTS: [(&str, &str, bool); 5] = [
    ("Морфин", "ампула", true),
    ("Парацетамол", "таблетка", false),
    ("Метоклопрамид", "ампула", false),
    ("Фентанил ТТС", "пластырь", true),
    ("Лактулоза", "мл", false),
];

/// A small deterministic generator, so the tests need no random crate and always see the
/// same data.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed)
    }
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// `n` prescriptions and, beside them, each one's quantity in tenths (to sum independently).
pub fn rows(n: usize, seed: u64) -> (Vec<PrescriptionRow>, Vec<u64>) {
    let mut rng = Lcg::new(seed);
    let mut rows = Vec::new();
    let mut tenths = Vec::new();
    for i in 0..n {
        let (medicament, unit, controlled) =
            MEDICAMENTS[rng.next(MEDICAMENTS.len() as u64) as usize];
        let q = 1 + rng.next(400);
        tenths.push(q);
        let dose = if i % 7 == 0 {
            "10 мг, при усилении боли дополнительно 5 мг, но не более 60 мг в сутки; контролировать частоту дыхания".to_string()
        } else {
            format!("{} мг", 5 + rng.next(20))
        };
        rows.push(PrescriptionRow {
            number: format!("{}-{:05}", 25, i + 1),
            date: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(rng.next(90)),
            pseudonym: format!("P{:07X}Q{:012X}", rng.next(0xFFFFFFF), i),
            medicament: medicament.to_string(),
            controlled,
            dose,
            route: "п/к".to_string(),
            frequency: "каждые 4 ч".to_string(),
            quantity: Quantity::parse(&format!("{}.{}", q / 10, q % 10)).unwrap(),
            unit: unit.to_string(),
            prescriber: "Иванова-Петрова А. А.".to_string(),
            status: "выдано".to_string(),
        });
    }
    (rows, tenths)
}

pub fn pages(pdf: &[u8]) -> Vec<String> {
    pdf_extract::extract_text_from_mem_by_pages(pdf).expect("pdf-extract reads the report")
}

/// Formats tenths the way the report prints a quantity (no trailing ".0").
pub fn tenths_text(tenths: u64, decimal: char) -> String {
    if tenths.is_multiple_of(10) {
        (tenths / 10).to_string()
    } else {
        format!("{}{decimal}{}", tenths / 10, tenths % 10)
    }
}

/// The extracted lines of `text` that come after the first line containing `marker`.
pub fn lines_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    for line in lines.by_ref() {
        if line.contains(marker) {
            break;
        }
    }
    lines.collect()
}

/// Whitespace-separated tokens of the first line starting with `label`, after the label.
pub fn row_tokens(lines: &[&str], label: &str) -> Option<Vec<String>> {
    lines.iter().find_map(|line| {
        let rest = line.strip_prefix(label)?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        Some(rest.split_whitespace().map(str::to_string).collect())
    })
}
