use std::collections::BTreeMap;

use palreg_reports::{Locale, PrescriptionRow, prescription_pdf};

use crate::common::{MEDICAMENTS, lines_after, meta, pages, row_tokens, rows, tenths_text};

/// (prescriptions, tenths) per (medicament, unit), summed here without the crate.
fn independent_totals(
    rows: &[PrescriptionRow],
    tenths: &[u64],
) -> BTreeMap<(String, String), (u64, u64)> {
    let mut totals = BTreeMap::new();
    for (row, &q) in rows.iter().zip(tenths) {
        let entry = totals
            .entry((row.medicament.clone(), row.unit.clone()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += q;
    }
    totals
}

fn check_totals(locale: Locale, heading_plain: &str, heading_controlled: &str, decimal: char) {
    let (rows, tenths) = rows(120, 7);
    let pdf = prescription_pdf(&meta(locale, &["ГБУЗ «Городская больница № 1»"]), &rows).unwrap();
    let text = pages(&pdf).concat();
    let expected = independent_totals(&rows, &tenths);

    let plain = lines_after(&text, heading_plain);
    let controlled = lines_after(&text, heading_controlled);
    for ((medicament, unit), (count, q)) in &expected {
        let is_controlled = MEDICAMENTS.iter().any(|m| m.0 == medicament && m.2);
        let section = if is_controlled { &controlled } else { &plain };
        let tokens = row_tokens(section, medicament)
            .unwrap_or_else(|| panic!("no totals line for {medicament} in {section:#?}"));
        // Medicament | unit | prescriptions | total quantity.
        let n = tokens.len();
        assert!(n >= 3, "{medicament}: {tokens:?}");
        assert_eq!(tokens[n - 3], *unit, "{medicament} unit");
        assert_eq!(
            tokens[n - 2],
            count.to_string(),
            "{medicament} prescriptions"
        );
        assert_eq!(
            tokens[n - 1],
            tenths_text(*q, decimal),
            "{medicament} quantity"
        );
    }
    // A controlled substance is not totalled among the others, and vice versa.
    let before_controlled: Vec<&str> = plain
        .iter()
        .copied()
        .take_while(|l| !l.contains(heading_controlled))
        .collect();
    for (name, _, is_controlled) in MEDICAMENTS {
        let listed = row_tokens(&before_controlled, name).is_some();
        assert_eq!(listed, !is_controlled, "{name} in the plain totals");
    }
}

#[test]
fn totals_equal_an_independent_sum_over_the_rows() {
    check_totals(
        Locale::En,
        "Totals by medicament",
        "Controlled substances",
        '.',
    );
}

#[test]
fn totals_in_russian_use_a_decimal_comma() {
    check_totals(
        Locale::Ru,
        "Итоги по препаратам",
        "Контролируемые вещества",
        ',',
    );
}

#[test]
fn prescription_count_is_printed() {
    let (rows, _) = rows(37, 3);
    let pdf = prescription_pdf(&meta(Locale::En, &["Hospital"]), &rows).unwrap();
    let text = pages(&pdf).concat();
    assert!(text.contains("Prescriptions in the period: 37"), "{text}");
}

#[test]
fn cyrillic_text_round_trips() {
    let (mut rows, _) = rows(5, 11);
    rows[0].medicament = "Морфин".to_string();
    let pdf = prescription_pdf(
        &meta(
            Locale::Ru,
            &["ГБУЗ «Республиканская больница им. В. А. Баранова»"],
        ),
        &rows,
    )
    .unwrap();
    let text = pages(&pdf).concat();
    for expected in [
        "Отчёт о назначениях",
        "Морфин",
        "Иванова-Петрова",
        "Республиканская больница",
        "Препарат",
        "Страница 1 из 1",
        "Учреждения",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {text}");
    }
}

#[test]
fn pseudonyms_are_printed_in_short_form_only() {
    let (rows, _) = rows(10, 5);
    let pdf = prescription_pdf(&meta(Locale::En, &["Hospital"]), &rows).unwrap();
    let text = pages(&pdf).concat();
    for row in &rows {
        let short: String = row.pseudonym.chars().take(8).collect();
        assert!(text.contains(&format!("{short}…")), "{short} missing");
        assert!(!text.contains(&row.pseudonym), "full pseudonym printed");
    }
}

#[test]
fn a_long_table_breaks_across_pages_with_header_and_page_numbers() {
    let (rows, _) = rows(400, 1);
    let pdf = prescription_pdf(&meta(Locale::En, &["Hospital"]), &rows).unwrap();
    let pages = pages(&pdf);
    let total = pages.len();
    assert!(total >= 8, "only {total} pages for 400 rows");
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("Page {} of {total}", i + 1)),
            "page {} footer: {page}",
            i + 1
        );
        assert!(page.contains("Prescriptions"), "page {} header", i + 1);
    }
    // The header row is repeated on every page that carries table rows.
    let table_pages = pages.iter().filter(|p| p.contains("25-00")).count();
    let header_pages = pages
        .iter()
        .filter(|p| p.contains("Dose / route / frequency"))
        .count();
    assert!(table_pages >= total - 1);
    assert_eq!(header_pages, table_pages);
    // Every row appears once, none lost or doubled at a page break.
    let text = pages.concat();
    for row in &rows {
        assert_eq!(text.matches(&row.number).count(), 1, "row {}", row.number);
    }
}

#[test]
fn an_empty_report_still_renders() {
    let pdf = prescription_pdf(&meta(Locale::En, &["Hospital"]), &[]).unwrap();
    let text = pages(&pdf).concat();
    assert!(text.contains("Prescriptions in the period: 0"));
    assert!(text.contains("Page 1 of 1"));
}

#[test]
fn an_inverted_period_is_refused() {
    let mut meta = meta(Locale::En, &["Hospital"]);
    std::mem::swap(&mut meta.period_from, &mut meta.period_to);
    assert!(prescription_pdf(&meta, &[]).is_err());
}

#[test]
fn a_report_longer_than_one_chunk_of_pages_is_joined_whole() {
    // More than 100 pages: rendered and serialized in two chunks, then joined.
    let (rows, _) = rows(3_600, 13);
    let pdf = prescription_pdf(&meta(Locale::Ru, &["Hospital"]), &rows).unwrap();
    let pages = pages(&pdf);
    let total = pages.len();
    assert!(total > 100, "only {total} pages");
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("Страница {} из {total}", i + 1)),
            "page {}",
            i + 1
        );
        assert!(
            page.contains("Отчёт о назначениях"),
            "page {} header",
            i + 1
        );
    }
    // Cyrillic extracts from the second chunk too, and every row is there once.
    assert!(
        pages[total - 1].contains("Итоги по препаратам")
            || pages[total - 2].contains("Итоги по препаратам")
    );
    let text = pages.concat();
    for row in rows.iter().step_by(97) {
        assert_eq!(text.matches(&row.number).count(), 1, "row {}", row.number);
    }
    assert!(text.contains("Назначений за период: 3600"));
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    // Reproducible output: a report can be regenerated and its signature compared.
    let (rows, _) = rows(50, 21);
    let meta = meta(Locale::Ru, &["Hospital"]);
    assert_eq!(
        prescription_pdf(&meta, &rows).unwrap(),
        prescription_pdf(&meta, &rows).unwrap()
    );
}
