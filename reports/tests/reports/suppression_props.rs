use palreg_reports::suppress::suppress_table;
use palreg_reports::{Cell, InstitutionCounts, MedicamentNeed, Quantity, SummaryInput, summarize};
use proptest::prelude::*;

/// Tables of 1..6 × 1..6 counts, with small values (1..k−1) common.
fn table() -> impl Strategy<Value = Vec<Vec<u64>>> {
    (1usize..7, 1usize..7).prop_flat_map(|(rows, cols)| {
        let value = prop_oneof![Just(0u64), 1u64..5, 5u64..60];
        proptest::collection::vec(proptest::collection::vec(value, cols), rows)
    })
}

/// Hidden cells of a line (its cells plus its total), and whether a number shown is wrong.
fn check_line(cells: &[(Cell, u64)], k: u64) -> Result<(), TestCaseError> {
    let hidden = cells.iter().filter(|(c, _)| c.is_suppressed()).count();
    prop_assert!(
        hidden != 1,
        "one hidden cell in a line is derivable: {cells:?}"
    );
    for &(cell, truth) in cells {
        if let Cell::Shown(n) = cell {
            prop_assert_eq!(n, truth, "a shown number is not the true one");
            prop_assert!(n == 0 || n >= k, "visible small cell {}", n);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_visible_small_cell_and_no_derivable_hidden_cell(rows in table(), k in 2u64..8) {
        let t = suppress_table(&rows, k);
        let width = rows[0].len();
        let row_sums: Vec<u64> = rows.iter().map(|r| r.iter().sum()).collect();
        let col_sums: Vec<u64> = (0..width).map(|c| rows.iter().map(|r| r[c]).sum()).collect();
        let grand: u64 = row_sums.iter().sum();

        for (r, row) in rows.iter().enumerate() {
            let mut line: Vec<(Cell, u64)> = row.iter().enumerate().map(|(c, &v)| (t.cells[r][c], v)).collect();
            line.push((t.row_totals[r], row_sums[r]));
            check_line(&line, k)?;
        }
        for c in 0..width {
            let mut line: Vec<(Cell, u64)> = rows.iter().enumerate().map(|(r, row)| (t.cells[r][c], row[c])).collect();
            line.push((t.column_totals[c], col_sums[c]));
            check_line(&line, k)?;
        }
        let mut line: Vec<(Cell, u64)> = t.column_totals.iter().copied().zip(col_sums.iter().copied()).collect();
        line.push((t.grand_total, grand));
        check_line(&line, k)?;
        let mut line: Vec<(Cell, u64)> = t.row_totals.iter().copied().zip(row_sums.iter().copied()).collect();
        line.push((t.grand_total, grand));
        check_line(&line, k)?;
        // Every primary cell is hidden.
        for (r, row) in rows.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if v >= 1 && v < k {
                    prop_assert!(t.cells[r][c].is_suppressed());
                }
            }
        }
    }

    #[test]
    fn a_summary_never_shows_a_small_count(
        counts in proptest::collection::vec(proptest::collection::vec(0u64..12, 12), 1..5),
        k in 2u64..7,
    ) {
        let input = SummaryInput {
            institutions: counts.iter().enumerate().map(|(i, c)| InstitutionCounts {
                institution: format!("I{i}"),
                on_register_at_start: c[0],
                on_register_at_end: c[1],
                newly_registered: c[2],
                discharged: c[3],
                deceased: c[4],
                icd10_blocks: [("A".to_string(), c[5]), ("B".to_string(), c[6])].into(),
                care_forms: [("home".to_string(), c[7]), ("day".to_string(), c[8])].into(),
                needs: [("pain".to_string(), c[9])].into(),
                age_sex: [(palreg_reports::AgeBand::From85, [(palreg_reports::Sex::Female, c[10]), (palreg_reports::Sex::Male, c[11])].into())].into(),
                medicaments: vec![MedicamentNeed {
                    medicament: "M".into(), unit: "mg".into(), controlled: false,
                    quantity: Quantity::from_milli(c[11] * 1500), patients: c[11],
                }],
            }).collect(),
        };
        let summary = summarize(&input, k);
        let json = serde_json::to_value(&summary).unwrap();
        fn walk(v: &serde_json::Value, k: u64, path: &str) -> Result<(), TestCaseError> {
            match v {
                serde_json::Value::Number(n) if !path.ends_with("/k") => {
                    let n = n.as_u64().unwrap();
                    prop_assert!(n == 0 || n >= k, "{} = {}", path, n);
                }
                serde_json::Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() { walk(item, k, &format!("{path}/{i}"))?; }
                }
                serde_json::Value::Object(map) => {
                    for (key, item) in map { walk(item, k, &format!("{path}/{key}"))?; }
                }
                _ => {}
            }
            Ok(())
        }
        walk(&json, k, "")?;
        // Totals that are shown are the true sums.
        let deceased: u64 = counts.iter().map(|c| c[4]).sum();
        if let Cell::Shown(n) = summary.register[4].total { prop_assert_eq!(n, deceased); }
        // No row or column of any table holds exactly one hidden number.
        let one_hidden = |cells: &mut dyn Iterator<Item = Cell>| cells.filter(|c| c.is_suppressed()).count() == 1;
        let tables = [&summary.icd10_blocks, &summary.care_forms, &summary.needs, &summary.age_sex];
        let all_rows = summary.register.iter().chain(tables.iter().flat_map(|t| t.rows.iter().chain(&t.totals)));
        for row in all_rows {
            prop_assert!(!one_hidden(&mut row.by_institution.iter().copied().chain([row.total])), "row {:?}", row);
        }
        for table in [&summary.icd10_blocks, &summary.care_forms, &summary.age_sex] {
            let totals = table.totals.as_ref().unwrap();
            let interior: Vec<_> = table.rows.iter().filter(|r| r.key != "all" && r.sex.as_deref() != Some("all")).collect();
            for c in 0..summary.institutions.len() {
                let mut column = interior.iter().map(|r| r.by_institution[c]).chain([totals.by_institution[c]]);
                prop_assert!(!one_hidden(&mut column), "column {} of {:?}", c, table);
            }
            let mut total_column = interior.iter().map(|r| r.total).chain([totals.total]);
            prop_assert!(!one_hidden(&mut total_column));
        }
        // A hidden patient count always hides its quantity, and a shown one shows it.
        for row in summary.medicaments.iter() {
            for (p, q) in row.patients.iter().zip(&row.quantity) {
                prop_assert_eq!(p.is_suppressed(), q.shown().is_none());
            }
        }
    }
}

/// The hidden cells of a suppressed table that its published numbers determine, by Gaussian
/// elimination over the rationals (f64; the tables are tiny) on its row, column and grand
/// total equations: independent of the crate's own check, which works modulo a prime.
fn determined(rows: &[Vec<u64>], t: &palreg_reports::suppress::SuppressedTable) -> Vec<String> {
    let width = rows[0].len();
    // Every published number: interior cells, row totals, column totals, grand total.
    let mut cells: Vec<(String, Cell)> = Vec::new();
    for (r, row) in t.cells.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            cells.push((format!("cell {r},{c}"), *cell));
        }
    }
    let row_total = |r: usize| rows.len() * width + r;
    let column_total = |c: usize| rows.len() * width + rows.len() + c;
    let grand = rows.len() * width + rows.len() + width;
    for (r, cell) in t.row_totals.iter().enumerate() {
        cells.push((format!("row total {r}"), *cell));
    }
    for (c, cell) in t.column_totals.iter().enumerate() {
        cells.push((format!("column total {c}"), *cell));
    }
    cells.push(("grand total".into(), t.grand_total));
    let mut equations: Vec<Vec<(usize, f64)>> = Vec::new();
    for r in 0..rows.len() {
        let mut e: Vec<_> = (0..width).map(|c| (r * width + c, 1.0)).collect();
        e.push((row_total(r), -1.0));
        equations.push(e);
    }
    for c in 0..width {
        let mut e: Vec<_> = (0..rows.len()).map(|r| (r * width + c, 1.0)).collect();
        e.push((column_total(c), -1.0));
        equations.push(e);
    }
    let mut e: Vec<_> = (0..rows.len()).map(|r| (row_total(r), 1.0)).collect();
    e.push((grand, -1.0));
    equations.push(e);
    let unknowns: Vec<usize> = (0..cells.len())
        .filter(|&i| cells[i].1.is_suppressed())
        .collect();
    let mut m: Vec<Vec<f64>> = equations
        .iter()
        .map(|e| {
            let mut row = vec![0.0; unknowns.len()];
            for &(i, a) in e {
                if let Ok(u) = unknowns.binary_search(&i) {
                    row[u] += a;
                }
            }
            row
        })
        .collect();
    let mut pivots = Vec::new();
    let mut next = 0;
    for col in 0..unknowns.len() {
        let Some(p) = (next..m.len()).find(|&r| m[r][col].abs() > 1e-9) else {
            continue;
        };
        m.swap(next, p);
        let scale = m[next][col];
        for v in m[next].iter_mut() {
            *v /= scale;
        }
        let pivot = m[next].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != next && row[col].abs() > 1e-9 {
                let f = row[col];
                for (v, p) in row.iter_mut().zip(&pivot) {
                    *v -= f * p;
                }
            }
        }
        pivots.push((next, col));
        next += 1;
    }
    pivots
        .into_iter()
        .filter(|&(r, _)| m[r].iter().filter(|v| v.abs() > 1e-9).count() == 1)
        .map(|(_, col)| cells[unknowns[col]].0.clone())
        .collect()
}

/// Two lines with two hidden cells each can pin one down together (the reviewer's example:
/// column 3 and the zeros of C and D give B3 = 3). No hidden cell may be determined.
#[test]
fn hidden_cells_are_not_determined_by_equations_taken_together() {
    let rows = vec![
        vec![1, 2, 10],
        vec![2, 1, 3],
        vec![0, 0, 2],
        vec![0, 0, 3],
        vec![10, 10, 10],
    ];
    let t = suppress_table(&rows, 5);
    assert_eq!(determined(&rows, &t), Vec::<String>::new(), "{t:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_hidden_cell_is_determined_by_the_table(rows in table(), k in 2u64..8) {
        let t = suppress_table(&rows, k);
        let found = determined(&rows, &t);
        prop_assert!(found.is_empty(), "determined: {:?} in {:?}", found, t);
    }
}

/// A large region of small institutions (50, most counts small): every small count is hidden
/// and the exact-disclosure step finishes. (Its cost at the register's size is for the summary
/// benchmark, `palreg-bench --bin summary`, to measure.)
#[test]
fn a_large_region_of_small_institutions() {
    use palreg_reports::{AgeBand, Sex};
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let institutions: Vec<InstitutionCounts> = (0..50)
        .map(|i| {
            let mut age_sex = std::collections::BTreeMap::new();
            for band in AgeBand::ALL {
                let mut by_sex = std::collections::BTreeMap::new();
                for sex in [Sex::Male, Sex::Female] {
                    by_sex.insert(sex, next(8));
                }
                age_sex.insert(band, by_sex);
            }
            InstitutionCounts {
                institution: format!("Hospice {i}"),
                on_register_at_start: next(40),
                on_register_at_end: next(40),
                newly_registered: next(20),
                discharged: next(6),
                deceased: next(10),
                icd10_blocks: (0..30).map(|b| (format!("B{b:02}"), next(6))).collect(),
                age_sex,
                care_forms: (0..4).map(|b| (format!("care {b}"), next(15))).collect(),
                needs: (0..10).map(|b| (format!("need {b}"), next(10))).collect(),
                medicaments: (0..40)
                    .map(|m| MedicamentNeed {
                        medicament: format!("M{m}"),
                        unit: "mg".into(),
                        controlled: m % 3 == 0,
                        quantity: Quantity::parse("10").unwrap(),
                        patients: next(6),
                    })
                    .collect(),
            }
        })
        .collect();
    let input = SummaryInput { institutions };
    let summary = summarize(&input, 5);
    let tables = [
        &summary.icd10_blocks,
        &summary.age_sex,
        &summary.care_forms,
        &summary.needs,
    ];
    for (c, institution) in input.institutions.iter().enumerate() {
        for (key, truth) in &institution.icd10_blocks {
            let row = summary
                .icd10_blocks
                .rows
                .iter()
                .find(|r| &r.key == key)
                .unwrap();
            if (1..5).contains(truth) {
                assert!(row.by_institution[c].is_suppressed(), "{key} of {c}");
            }
        }
    }
    for table in tables {
        for row in table.rows.iter().chain(&table.totals) {
            for cell in row.by_institution.iter().chain([&row.total]) {
                assert!(cell.shown().is_none_or(|n| n == 0 || n >= 5), "{row:?}");
            }
        }
    }
}
