//! Writes sample reports to look at: `cargo run -p palreg-reports --example sample -- DIR`.
//!
//! DIR receives prescriptions-{en,ru}.pdf (long enough to span pages), summary-{en,ru}.pdf,
//! summary-many-ru.pdf (14 institutions, landscape),
//! summary.json, summary.fhir.json, and a detached signature with the public key for
//! prescriptions-ru.pdf.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use palreg_reports::{
    AgeBand, DEFAULT_K, InstitutionCounts, Locale, MedicamentNeed, PrescriptionRow, Quantity,
    ReportMeta, ReportSigningKey, Sex, SummaryInput, prescription_pdf, summarize, summary_pdf,
    to_fhir_measure_report,
};

fn meta(locale: Locale, title: &str, institutions: &[&str]) -> ReportMeta {
    ReportMeta {
        title: title.to_string(),
        institutions: institutions.iter().map(|s| s.to_string()).collect(),
        period_from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        period_to: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
        generated_at: NaiveDate::from_ymd_opt(2025, 4, 1)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap(),
        author: "Иванова-Петрова Анна Александровна".to_string(),
        locale,
    }
}

fn prescriptions(n: usize) -> Vec<PrescriptionRow> {
    let medicaments = [
        ("Морфин", "ампула", true, "10 мг", "п/к", "каждые 4 ч"),
        (
            "Парацетамол",
            "таблетка",
            false,
            "500 мг",
            "внутрь",
            "3 раза в день",
        ),
        (
            "Морфина гидрохлорид раствор для инъекций 10 мг/мл",
            "ампула",
            true,
            "5 мг; при прорывной боли дополнительно 2,5 мг, но не чаще 1 раза в час, не более 60 мг в сутки",
            "п/к",
            "каждые 4 ч и по требованию",
        ),
        (
            "Метоклопрамид",
            "ампула",
            false,
            "10 мг",
            "в/м",
            "при тошноте",
        ),
        (
            "Фентанил ТТС 25 мкг/ч",
            "пластырь",
            true,
            "1 пластырь",
            "трансдермально",
            "каждые 72 ч",
        ),
    ];
    (0..n)
        .map(|i| {
            let (medicament, unit, controlled, dose, route, frequency) =
                medicaments[i % medicaments.len()];
            PrescriptionRow {
                number: format!("25-{:05}", i + 1),
                date: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
                    + chrono::Days::new((i % 90) as u64),
                pseudonym: format!(
                    "{:016X}",
                    (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ),
                medicament: medicament.to_string(),
                controlled,
                dose: dose.to_string(),
                route: route.to_string(),
                frequency: frequency.to_string(),
                quantity: Quantity::from_milli(((i % 12) as u64 + 1) * 2_500),
                unit: unit.to_string(),
                prescriber: if i % 3 == 0 {
                    "Иванова-Петрова А. А."
                } else {
                    "Smith J."
                }
                .to_string(),
                status: if i % 11 == 0 {
                    "отменено"
                } else {
                    "выдано"
                }
                .to_string(),
            }
        })
        .collect()
}

fn summary_input() -> SummaryInput {
    let institution = |name: &str, base: u64, small: u64| {
        let age_sex = AgeBand::ALL
            .iter()
            .enumerate()
            .map(|(b, band)| {
                let by_sex: BTreeMap<Sex, u64> = [
                    (Sex::Male, base + 2 * b as u64),
                    (Sex::Female, base + 3 * b as u64),
                    (Sex::Unknown, if b == 2 { small } else { 0 }),
                ]
                .into();
                (*band, by_sex)
            })
            .collect();
        let map = |entries: &[(&str, u64)]| -> BTreeMap<String, u64> {
            entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        InstitutionCounts {
            institution: name.to_string(),
            on_register_at_start: base * 9,
            on_register_at_end: base * 9 + small + 4,
            newly_registered: base + 6,
            discharged: small,
            deceased: base / 2,
            icd10_blocks: map(&[
                ("C15-C26", base * 4),
                ("C30-C39", base),
                ("C50", small),
                ("I50", base / 2),
            ]),
            age_sex,
            care_forms: map(&[
                ("на дому", base * 5),
                ("стационар", base),
                ("дневной стационар", small),
            ]),
            needs: map(&[
                ("обезболивание", base * 5),
                ("кислород", small),
                ("уход за раной", base + 1),
            ]),
            medicaments: vec![
                MedicamentNeed {
                    medicament: "Морфин".into(),
                    unit: "ампула".into(),
                    controlled: true,
                    quantity: Quantity::from_milli(base * 37_500),
                    patients: base,
                },
                MedicamentNeed {
                    medicament: "Парацетамол".into(),
                    unit: "таблетка".into(),
                    controlled: false,
                    quantity: Quantity::from_milli(base * 120_000),
                    patients: small + 1,
                },
            ],
        }
    };
    SummaryInput {
        institutions: vec![
            institution("ГБУЗ «Республиканская больница им. В. А. Баранова»", 14, 2),
            institution("ГБУЗ «Городская поликлиника № 2»", 31, 0),
            institution("ГБУЗ «Кондопожская ЦРБ»", 6, 3),
        ],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/sample-reports".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let hospital = ["ГБУЗ «Республиканская больница им. В. А. Баранова»"];
    let rows = prescriptions(130);
    let en = prescription_pdf(&meta(Locale::En, "Prescription report", &hospital), &rows)?;
    std::fs::write(dir.join("prescriptions-en.pdf"), &en)?;
    let ru = prescription_pdf(&meta(Locale::Ru, "Отчёт о назначениях", &hospital), &rows)?;
    std::fs::write(dir.join("prescriptions-ru.pdf"), &ru)?;

    let input = summary_input();
    let summary = summarize(&input, DEFAULT_K);
    let names: Vec<&str> = summary.institutions.iter().map(String::as_str).collect();
    let en_meta = meta(Locale::En, "Summary report", &names);
    std::fs::write(dir.join("summary-en.pdf"), summary_pdf(&en_meta, &summary)?)?;
    let ru_meta = meta(Locale::Ru, "Сводный отчёт", &names);
    std::fs::write(dir.join("summary-ru.pdf"), summary_pdf(&ru_meta, &summary)?)?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    std::fs::write(
        dir.join("summary.fhir.json"),
        serde_json::to_string_pretty(&to_fhir_measure_report(&summary, &en_meta))?,
    )?;

    // Enough institutions for a landscape report split into several tables.
    let mut many = summary_input();
    let template = many.institutions.clone();
    many.institutions = (0..14)
        .map(|i| {
            let mut inst = template[i % template.len()].clone();
            inst.institution = format!("ГБУЗ «Районная больница № {}»", i + 1);
            inst
        })
        .collect();
    let many = summarize(&many, DEFAULT_K);
    let names: Vec<&str> = many.institutions.iter().map(String::as_str).collect();
    let many_meta = meta(Locale::Ru, "Сводный отчёт по региону", &names);
    std::fs::write(
        dir.join("summary-many-ru.pdf"),
        summary_pdf(&many_meta, &many)?,
    )?;

    let key = ReportSigningKey::generate()?;
    std::fs::write(
        dir.join("prescriptions-ru.pdf.sig"),
        key.sign(&ru).to_sig_file(),
    )?;
    std::fs::write(dir.join("report-public-key.pem"), key.public_key().to_pem())?;
    println!("sample reports written to {}", dir.display());
    Ok(())
}
