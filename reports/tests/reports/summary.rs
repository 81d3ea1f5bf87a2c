use std::collections::BTreeMap;

use palreg_reports::{
    AgeBand, Cell, InstitutionCounts, Locale, MedicamentNeed, Quantity, Sex, SummaryInput,
    summarize, summary_pdf,
};

use crate::common::{lines_after, meta, pages, row_tokens};

pub const INSTITUTIONS: [&str; 3] = ["Alpha", "Beta", "Gamma"];

fn map(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Three institutions whose counts mix large numbers, small ones (1..4) and zeros.
pub fn input() -> SummaryInput {
    let counts = |name: &str, base: u64, small: u64| {
        let mut age_sex = BTreeMap::new();
        for (b, band) in AgeBand::ALL.iter().enumerate() {
            let mut by_sex = BTreeMap::new();
            by_sex.insert(Sex::Male, base + b as u64);
            by_sex.insert(Sex::Female, base * 2 + b as u64);
            by_sex.insert(Sex::Unknown, if b % 2 == 0 { small } else { 0 });
            age_sex.insert(*band, by_sex);
        }
        InstitutionCounts {
            institution: name.to_string(),
            on_register_at_start: base * 10,
            on_register_at_end: base * 10 + 7,
            newly_registered: base + small,
            discharged: small,
            deceased: base,
            icd10_blocks: map(&[("C15-C26", base * 3), ("C30-C39", small), ("I20-I25", base)]),
            age_sex,
            care_forms: map(&[("home", base * 4), ("inpatient", base), ("day", small)]),
            needs: map(&[
                ("pain relief", base * 5),
                ("oxygen", small),
                ("wound care", base + 2),
            ]),
            medicaments: vec![
                MedicamentNeed {
                    medicament: "Морфин".to_string(),
                    unit: "ампула".to_string(),
                    controlled: true,
                    quantity: Quantity::parse(&format!("{}.5", base * 40)).unwrap(),
                    patients: base,
                },
                MedicamentNeed {
                    medicament: "Парацетамол".to_string(),
                    unit: "таблетка".to_string(),
                    controlled: false,
                    quantity: Quantity::parse(&format!("{}", base * 100 + small)).unwrap(),
                    patients: small,
                },
            ],
        }
    };
    SummaryInput {
        institutions: vec![
            counts("Alpha", 12, 2),
            counts("Beta", 30, 0),
            counts("Gamma", 8, 3),
        ],
    }
}

/// What a cell must read as: its true value, or "<5" — and "<5" whenever it is 1..4.
fn check_cell(token: &str, truth: u64, what: &str) -> bool {
    if (1..5).contains(&truth) {
        assert_eq!(token, "<5", "{what}: true value {truth} printed");
        return true;
    }
    if token == "<5" {
        return true;
    }
    assert_eq!(token, truth.to_string(), "{what}");
    false
}

/// Checks one printed row against its true per-institution values and their sum.
fn check_row(lines: &[&str], label: &str, truths: &[u64]) -> usize {
    let tokens =
        row_tokens(lines, label).unwrap_or_else(|| panic!("no row {label:?} in {lines:#?}"));
    let n = tokens.len();
    assert!(n > truths.len(), "{label}: {tokens:?}");
    let cells = &tokens[n - truths.len() - 1..];
    let mut hidden = 0;
    for (i, (&truth, token)) in truths.iter().zip(cells).enumerate() {
        hidden += usize::from(check_cell(
            token,
            truth,
            &format!("{label} / {}", INSTITUTIONS[i]),
        ));
    }
    let total: u64 = truths.iter().sum();
    hidden += usize::from(check_cell(
        &cells[truths.len()],
        total,
        &format!("{label} / total"),
    ));
    // A row with a hidden cell must hide at least two of its numbers (margin included).
    assert_ne!(
        hidden, 1,
        "{label}: a single hidden number is recoverable: {tokens:?}"
    );
    hidden
}

#[test]
fn printed_counts_equal_independent_sums_and_small_ones_are_hidden() {
    let input = input();
    let summary = summarize(&input, 5);
    let pdf = summary_pdf(&meta(Locale::En, &INSTITUTIONS), &summary).unwrap();
    let text = pages(&pdf).concat();
    let insts = &input.institutions;
    let pick =
        |f: &dyn Fn(&InstitutionCounts) -> u64| -> Vec<u64> { insts.iter().map(f).collect() };

    let register = lines_after(&text, "Patients on the register");
    let mut hidden = 0;
    hidden += check_row(
        &register,
        "Newly registered",
        &pick(&|i| i.newly_registered),
    );
    hidden += check_row(&register, "Discharged", &pick(&|i| i.discharged));
    hidden += check_row(&register, "Deceased", &pick(&|i| i.deceased));

    let icd = lines_after(&text, "Diagnosis (ICD-10 block)");
    for block in ["C15-C26", "C30-C39", "I20-I25"] {
        hidden += check_row(&icd, block, &pick(&|i| i.icd10_blocks[block]));
    }
    let care = lines_after(&text, "Care form");
    for form in ["home", "inpatient", "day"] {
        hidden += check_row(&care, form, &pick(&|i| i.care_forms[form]));
    }
    let needs = lines_after(&text, "Patients with each need");
    hidden += check_row(&needs, "oxygen", &pick(&|i| i.needs["oxygen"]));
    hidden += check_row(&needs, "wound care", &pick(&|i| i.needs["wound care"]));

    let ages = lines_after(&text, "Age band and sex");
    hidden += check_row(
        &ages,
        "0–17, unknown",
        &pick(&|i| i.age_sex[&AgeBand::Under18][&Sex::Unknown]),
    );
    hidden += check_row(
        &ages,
        "85+, male",
        &pick(&|i| i.age_sex[&AgeBand::From85][&Sex::Male]),
    );
    assert!(hidden > 10, "the test data must exercise suppression");
    assert!(text.contains("Small-cell suppression"), "footnote missing");
}

#[test]
fn secondary_suppression_hides_the_smallest_other_cell_of_a_row() {
    // Discharged: Alpha 2, Beta 0, Gamma 3 — both primary; total 5 visible is fine.
    // Oxygen: the same. Newly registered: 14, 30, 11 — nothing hidden.
    let summary = summarize(&input(), 5);
    let discharged = &summary.register[3];
    assert_eq!(discharged.key, "discharged");
    assert_eq!(
        discharged.by_institution,
        vec![Cell::Suppressed, Cell::Shown(0), Cell::Suppressed]
    );
    assert_eq!(discharged.total, Cell::Shown(5));

    // Unknown sex, 0–17: 2, 0, 3 → both hidden, total 5 shown.
    let row = summary
        .age_sex
        .rows
        .iter()
        .find(|r| r.key == "0-17" && r.sex.as_deref() == Some("unknown"))
        .unwrap();
    assert_eq!(
        row.by_institution,
        vec![Cell::Suppressed, Cell::Shown(0), Cell::Suppressed]
    );

    // Paracetamol was prescribed to 2, 0 and 3 patients: its quantities are hidden with them.
    let para = &summary.medicaments[0];
    assert_eq!(para.medicament, "Парацетамол");
    assert_eq!(
        para.patients,
        vec![Cell::Suppressed, Cell::Shown(0), Cell::Suppressed]
    );
    assert!(para.quantity[0].shown().is_none() && para.quantity[2].shown().is_none());
    assert_eq!(
        para.quantity[1].shown(),
        Some(Quantity::parse("3000").unwrap())
    );
    assert_eq!(
        para.quantity_total.shown(),
        Some(Quantity::parse("5005").unwrap())
    );
}

#[test]
fn a_lone_small_cell_takes_the_smallest_nonzero_neighbour_with_it() {
    let mut input = input();
    // Oxygen: 2, 9, 40 → 2 is hidden, and 9 (the smallest non-zero) with it.
    input.institutions[0].needs.insert("oxygen".into(), 2);
    input.institutions[1].needs.insert("oxygen".into(), 9);
    input.institutions[2].needs.insert("oxygen".into(), 40);
    let summary = summarize(&input, 5);
    let oxygen = summary
        .needs
        .rows
        .iter()
        .find(|r| r.key == "oxygen")
        .unwrap();
    assert_eq!(
        oxygen.by_institution,
        vec![Cell::Suppressed, Cell::Suppressed, Cell::Shown(40)]
    );
    assert_eq!(oxygen.total, Cell::Shown(51));
}

#[test]
fn medicament_quantities_are_printed_where_their_patients_are() {
    let summary = summarize(&input(), 5);
    let pdf = summary_pdf(&meta(Locale::En, &INSTITUTIONS), &summary).unwrap();
    let text = pages(&pdf).concat();
    let controlled = lines_after(&text, "Controlled substances");
    // Morphine: 12, 30, 8 patients; 480.5 + 1200.5 + 320.5 ampoules.
    let tokens = row_tokens(&controlled, "Морфин, ампула").expect("morphine row");
    assert_eq!(
        tokens[tokens.len() - 4..],
        ["480.5", "1200.5", "320.5", "2001.5"]
    );
    let plain = lines_after(&text, "Medicament needs");
    let tokens = row_tokens(&plain, "Парацетамол, таблетка").expect("paracetamol row");
    assert_eq!(
        tokens[tokens.len() - 4..],
        ["hidden", "3000", "hidden", "5005"]
    );
}

#[test]
fn russian_summary_round_trips_cyrillic() {
    let summary = summarize(&input(), 5);
    let pdf = summary_pdf(&meta(Locale::Ru, &INSTITUTIONS), &summary).unwrap();
    let text = pages(&pdf).concat();
    for expected in [
        "Морфин",
        "Иванова-Петрова",
        "Возраст и пол",
        "Подавление малых значений",
        "Страница 1 из",
    ] {
        assert!(text.contains(expected), "{expected:?} missing");
    }
}

#[test]
fn many_institutions_split_into_several_tables_with_the_total_last() {
    let mut input = input();
    let base = input.institutions[0].clone();
    input.institutions = (0..25)
        .map(|i| InstitutionCounts {
            institution: format!("Inst{i:02}"),
            ..base.clone()
        })
        .collect();
    let summary = summarize(&input, 5);
    let names: Vec<&str> = summary.institutions.iter().map(String::as_str).collect();
    let pdf = summary_pdf(&meta(Locale::En, &names), &summary).unwrap();
    let text = pages(&pdf).concat();
    for name in &names {
        assert!(text.contains(name), "{name} missing");
    }
    // Every institution has 12 deceased: the total is 25 × 12 = 300.
    let deceased: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("Deceased"))
        .collect();
    assert!(
        deceased.len() >= 2,
        "the register table was not split: {deceased:?}"
    );
    assert!(
        deceased.last().unwrap().trim_end().ends_with(" 300"),
        "{deceased:?}"
    );
}

#[test]
fn an_empty_summary_still_renders() {
    let summary = summarize(&SummaryInput::default(), 5);
    let pdf = summary_pdf(&meta(Locale::En, &[]), &summary).unwrap();
    let pages = pages(&pdf);
    assert!(pages[0].contains("Patients on the register"));
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains(&format!("Page {} of {}", i + 1, pages.len())));
    }
    // Every count of an empty register is a visible zero.
    let text = pages.concat();
    assert!(
        !text.lines().any(|l| l.trim_end().ends_with("<5")),
        "{text}"
    );
}

#[test]
fn an_institution_without_patients_in_the_period_renders_with_zero_totals() {
    // No care form, ICD-10 block or need has a row: the tables' totals still have one cell per
    // institution (this once panicked in the renderer: a totals row with no cells).
    let input = SummaryInput {
        institutions: vec![InstitutionCounts {
            institution: "Empty".to_string(),
            ..Default::default()
        }],
    };
    let summary = summarize(&input, 5);
    for table in [&summary.icd10_blocks, &summary.care_forms] {
        assert!(table.rows.is_empty());
        let totals = table.totals.as_ref().expect("totals row");
        assert_eq!(totals.by_institution, vec![Cell::Shown(0)]);
        assert_eq!(totals.total, Cell::Shown(0));
    }
    let pdf = summary_pdf(&meta(Locale::En, &["Empty"]), &summary).expect("renders");
    assert!(pages(&pdf).concat().contains("Empty"));
}

/// One institution's counts: the register movement, and everyone in one ICD-10 block, one age
/// band and sex, one care form.
fn simple(name: &str, register: [u64; 5], block: &str) -> InstitutionCounts {
    let [start, end, new, discharged, deceased] = register;
    let population = start + new;
    let mut age_sex = BTreeMap::new();
    age_sex.insert(AgeBand::ALL[4], BTreeMap::from([(Sex::Female, population)]));
    InstitutionCounts {
        institution: name.to_string(),
        on_register_at_start: start,
        on_register_at_end: end,
        newly_registered: new,
        discharged,
        deceased,
        icd10_blocks: map(&[(block, population)]),
        age_sex,
        care_forms: map(&[("home", population)]),
        needs: map(&[("pain relief", population)]),
        medicaments: Vec::new(),
    }
}

/// The breakdowns count everyone on the register in the period, `start + new`: a hidden start
/// beside a shown number of new patients and a shown breakdown total would be their difference.
#[test]
fn a_hidden_start_is_not_the_breakdown_total_minus_the_new() {
    let input = SummaryInput {
        institutions: vec![
            simple("A", [3, 6, 10, 0, 7], "C50-C50"),
            simple("B", [20, 25, 10, 5, 0], "C50-C50"),
        ],
    };
    let s = summarize(&input, 5);
    let start = &s.register[0];
    let new = &s.register[2];
    assert!(start.by_institution[0].is_suppressed(), "3 is small");
    let totals = s.icd10_blocks.totals.as_ref().unwrap();
    let care = s.care_forms.totals.as_ref().unwrap();
    let age = s.age_sex.totals.as_ref().unwrap();
    let shown_total = [totals, care, age]
        .iter()
        .any(|t| !t.by_institution[0].is_suppressed());
    assert!(
        new.by_institution[0].is_suppressed() || !shown_total,
        "start of A = total − new: {s:#?}"
    );
}

/// An institution with fewer than k patients in the period is hidden whole: its zeros would
/// otherwise say what its one patient has.
#[test]
fn an_institution_with_fewer_than_k_patients_is_hidden_whole() {
    let mut alone = simple("Tiny", [0, 1, 1, 0, 0], "C50-C50");
    alone.icd10_blocks.insert("I20-I25".into(), 0);
    let big = |name| {
        let mut b = simple(name, [30, 40, 20, 5, 5], "I20-I25");
        b.icd10_blocks.insert("C50-C50".into(), 0);
        b
    };
    let input = SummaryInput {
        institutions: vec![alone, big("Big 1"), big("Big 2")],
    };
    let s = summarize(&input, 5);
    let column = |t: &palreg_reports::CountTable| {
        t.rows
            .iter()
            .chain(&t.totals)
            .map(|r| r.by_institution[0])
            .collect::<Vec<_>>()
    };
    for (what, cells) in [
        ("icd", column(&s.icd10_blocks)),
        ("age and sex", column(&s.age_sex)),
        ("care", column(&s.care_forms)),
        ("needs", column(&s.needs)),
    ] {
        assert!(
            cells.iter().all(|c| c.is_suppressed()),
            "{what}: the tiny institution shows {cells:?}"
        );
    }
    assert!(
        s.register
            .iter()
            .all(|r| r.by_institution[0].is_suppressed())
    );
}
