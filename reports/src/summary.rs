//! The summary report's numbers after suppression: what `summary.json` holds, and what the
//! summary PDF and the FHIR `MeasureReport` are drawn from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{AgeBand, InstitutionCounts, Quantity, Sex, SummaryInput};
use crate::suppress::{Cell, Margins, TableIndex, TableSystem, suppress_system};

/// A medicament quantity after suppression. In JSON: a decimal string, or `null` when hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityCell {
    Shown(Quantity),
    Suppressed,
}

impl QuantityCell {
    pub fn shown(self) -> Option<Quantity> {
        match self {
            QuantityCell::Shown(q) => Some(q),
            QuantityCell::Suppressed => None,
        }
    }
}

impl Serialize for QuantityCell {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QuantityCell {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<Quantity>::deserialize(deserializer)?
            .map_or(QuantityCell::Suppressed, QuantityCell::Shown))
    }
}

/// One row of a summary table: a category, its count in each institution (in the order of
/// [`SuppressedSummary::institutions`]) and across all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRow {
    /// The category: a register measure, an ICD-10 block, an age band ("all" for all ages),
    /// a care form, a need; "total" for a column-totals row.
    pub key: String,
    /// Only in the age-and-sex table: "M", "F", "unknown" or "all".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    pub by_institution: Vec<Cell>,
    pub total: Cell,
}

/// A breakdown: its rows and, when the categories partition the patients, a totals row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountTable {
    pub rows: Vec<CountRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<CountRow>,
}

/// Quantity of one medicament (in one unit) prescribed per institution and in total, with the
/// number of patients it was prescribed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicamentRow {
    pub medicament: String,
    pub unit: String,
    pub controlled: bool,
    pub patients: Vec<Cell>,
    pub patients_total: Cell,
    pub quantity: Vec<QuantityCell>,
    pub quantity_total: QuantityCell,
}

/// Keys of the register-movement rows, in order.
pub const REGISTER_MEASURES: [&str; 5] = [
    "on_register_at_start",
    "on_register_at_end",
    "newly_registered",
    "discharged",
    "deceased",
];

/// The summary report after small-cell suppression: safe to publish as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressedSummary {
    /// Counts from 1 to k−1 are hidden.
    pub k: u64,
    /// The suppression rule in English.
    pub rule: String,
    /// Column order of every `by_institution` and `patients`/`quantity` vector.
    pub institutions: Vec<String>,
    /// Rows keyed by [`REGISTER_MEASURES`].
    pub register: Vec<CountRow>,
    pub icd10_blocks: CountTable,
    pub age_sex: CountTable,
    pub care_forms: CountTable,
    /// Not a partition (a patient may have several needs): no totals row.
    pub needs: CountTable,
    pub medicaments: Vec<MedicamentRow>,
    pub controlled_medicaments: Vec<MedicamentRow>,
}

impl fmt::Display for SuppressedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary of {} institutions (k = {})",
            self.institutions.len(),
            self.k
        )
    }
}

/// Computes every published number of the summary report and suppresses small cells, with
/// counts from 1 to `k − 1` hidden (see [`crate::suppress`] and the crate README). A `k` of
/// 0 or 1 hides nothing; the server's configuration should insist on at least 2.
pub fn summarize(input: &SummaryInput, k: u64) -> SuppressedSummary {
    let insts = &input.institutions;
    let mut system = TableSystem::default();

    let register_rows = register_matrix(insts);
    let register = system.add_table(&register_rows, insts.len(), Margins::Rows);
    add_flow_identities(&mut system, &register);

    let icd_keys = union_keys(insts.iter().map(|i| &i.icd10_blocks));
    let icd = system.add_table(
        &keyed_matrix(insts, &icd_keys, |i| &i.icd10_blocks),
        insts.len(),
        Margins::Both,
    );

    let age_sex = AgeSexIndex::build(&mut system, insts);

    let care_keys = union_keys(insts.iter().map(|i| &i.care_forms));
    let care = system.add_table(
        &keyed_matrix(insts, &care_keys, |i| &i.care_forms),
        insts.len(),
        Margins::Both,
    );

    let need_keys = union_keys(insts.iter().map(|i| &i.needs));
    let needs = system.add_table(
        &keyed_matrix(insts, &need_keys, |i| &i.needs),
        insts.len(),
        Margins::Rows,
    );

    let medicaments = MedicamentMatrix::build(insts);
    let med_patients = system.add_table(&medicaments.patients, insts.len(), Margins::Rows);

    link_population_totals(&mut system, &register, &[&icd, &age_sex.table, &care]);

    // An institution with fewer than k patients in the period is hidden whole, zeros and all:
    // beside one "<k" per table its zeros would say what its few patients have (one patient:
    // the diagnosis, age band, care form and needs of that person).
    let mut forced = Vec::new();
    for (c, institution) in insts.iter().enumerate() {
        let population = institution.on_register_at_start + institution.newly_registered;
        if population > 0 && population < k {
            let tables = [
                &register,
                &icd,
                &age_sex.table,
                &care,
                &needs,
                &med_patients,
            ];
            for table in tables {
                forced.extend(table.cells.iter().map(|row| row[c]));
                forced.extend(table.column_totals.get(c).copied());
            }
            forced.extend(age_sex.column_margins(c));
        }
    }

    let hidden = suppress_system(&system.values, &system.lines, k, &forced);
    let values = &system.values;

    let register_table = register.resolve(values, &hidden);
    let register_out = REGISTER_MEASURES
        .iter()
        .enumerate()
        .map(|(r, key)| CountRow {
            key: (*key).to_string(),
            sex: None,
            by_institution: register_table.cells[r].clone(),
            total: register_table.row_totals[r],
        })
        .collect();

    let (medicaments_out, controlled_out) =
        medicaments.resolve(&med_patients.resolve(values, &hidden));

    SuppressedSummary {
        k,
        rule: crate::suppress::footnote(crate::Locale::En, k),
        institutions: insts.iter().map(|i| i.institution.clone()).collect(),
        register: register_out,
        icd10_blocks: keyed_table(&icd, &icd_keys, values, &hidden),
        age_sex: age_sex.resolve(values, &hidden),
        care_forms: keyed_table(&care, &care_keys, values, &hidden),
        needs: keyed_table(&needs, &need_keys, values, &hidden),
        medicaments: medicaments_out,
        controlled_medicaments: controlled_out,
    }
}

fn register_matrix(insts: &[InstitutionCounts]) -> Vec<Vec<u64>> {
    let measures: [fn(&InstitutionCounts) -> u64; 5] = [
        |i| i.on_register_at_start,
        |i| i.on_register_at_end,
        |i| i.newly_registered,
        |i| i.discharged,
        |i| i.deceased,
    ];
    measures
        .iter()
        .map(|measure| insts.iter().map(measure).collect())
        .collect()
}

/// Where the numbers of a column satisfy `start + new = end + discharged + deceased`, a reader
/// can solve that equation too, so it is a line of the system.
fn add_flow_identities(system: &mut TableSystem, register: &TableIndex) {
    let columns = register.cells.first().map_or(0, Vec::len);
    let column = |c: usize| -> Vec<usize> { register.cells.iter().map(|row| row[c]).collect() };
    let mut candidates: Vec<Vec<usize>> = (0..columns).map(column).collect();
    candidates.push(register.row_totals.clone());
    for cells in candidates {
        let v = |r: usize| system.values[cells[r]];
        // Rows: start, end, new, discharged, deceased.
        if v(0) + v(2) == v(1) + v(3) + v(4) {
            system.add_equation(vec![
                (cells[0], 1),
                (cells[2], 1),
                (cells[1], -1),
                (cells[3], -1),
                (cells[4], -1),
            ]);
        }
    }
}

/// The population of a column is published several times: as the register's start and end
/// counts and as the total of each breakdown. Where two of these are the same number, hiding
/// one and showing the other would give it away, so they are tied by an equation `a = b`.
fn link_population_totals(system: &mut TableSystem, register: &TableIndex, tables: &[&TableIndex]) {
    let columns = register.cells.first().map_or(0, Vec::len);
    let mut groups: Vec<Vec<usize>> = (0..columns)
        .map(|c| {
            let mut cells = vec![register.cells[0][c], register.cells[1][c]];
            cells.extend(
                tables
                    .iter()
                    .filter_map(|t| t.column_totals.get(c).copied()),
            );
            cells
        })
        .collect();
    let mut overall = vec![register.row_totals[0], register.row_totals[1]];
    overall.extend(tables.iter().filter_map(|t| t.grand_total));
    groups.push(overall);

    // The breakdowns count everyone on the register at some time in the period: those on it at
    // the start and those registered during it. Where a table's total is that sum, a reader
    // can write `start + new = total` (and work out a hidden start from a shown total and new).
    let mut sums: Vec<(usize, usize, Vec<usize>)> = (0..columns)
        .map(|c| {
            let totals = tables
                .iter()
                .filter_map(|t| t.column_totals.get(c).copied());
            (register.cells[0][c], register.cells[2][c], totals.collect())
        })
        .collect();
    sums.push((
        register.row_totals[0],
        register.row_totals[2],
        tables.iter().filter_map(|t| t.grand_total).collect(),
    ));
    for (start, new, totals) in sums {
        for total in totals {
            if system.values[start] + system.values[new] == system.values[total] {
                system.add_equation(vec![(start, 1), (new, 1), (total, -1)]);
            }
        }
    }

    for cells in groups {
        let mut by_value: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for cell in cells {
            by_value.entry(system.values[cell]).or_default().push(cell);
        }
        for same in by_value.values() {
            for pair in same.windows(2) {
                system.add_line(pair.to_vec());
            }
        }
    }
}

fn union_keys<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> Vec<String> {
    let keys: BTreeSet<&String> = maps.flat_map(BTreeMap::keys).collect();
    keys.into_iter().cloned().collect()
}

fn keyed_matrix(
    insts: &[InstitutionCounts],
    keys: &[String],
    map: impl Fn(&InstitutionCounts) -> &BTreeMap<String, u64>,
) -> Vec<Vec<u64>> {
    keys.iter()
        .map(|key| {
            insts
                .iter()
                .map(|i| map(i).get(key).copied().unwrap_or(0))
                .collect()
        })
        .collect()
}

fn keyed_table(index: &TableIndex, keys: &[String], values: &[u64], hidden: &[bool]) -> CountTable {
    let table = index.resolve(values, hidden);
    let rows = keys
        .iter()
        .enumerate()
        .map(|(r, key)| CountRow {
            key: key.clone(),
            sex: None,
            by_institution: table.cells[r].clone(),
            total: table.row_totals[r],
        })
        .collect();
    let totals = index.grand_total.map(|_| CountRow {
        key: "total".to_string(),
        sex: None,
        by_institution: table.column_totals.clone(),
        total: table.grand_total,
    });
    CountTable { rows, totals }
}

/// Age band × sex × institution: a three-way table published with all its margins (per band,
/// per sex, per institution, and every combination of two), so each margin is a line.
struct AgeSexIndex {
    /// Rows (band, sex) × institutions, with row totals, column totals and grand total.
    table: TableIndex,
    /// `band_totals[b][c]`: all sexes of band `b` in column `c` (the last column is the total).
    band_totals: Vec<Vec<usize>>,
    /// `sex_totals[s][c]`: all ages of sex `s` in column `c` (the last column is the total).
    sex_totals: Vec<Vec<usize>>,
}

impl AgeSexIndex {
    fn row(band: usize, sex: usize) -> usize {
        band * Sex::ALL.len() + sex
    }

    /// The band and sex margins of institution `c`.
    fn column_margins(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        self.band_totals
            .iter()
            .chain(&self.sex_totals)
            .map(move |totals| totals[c])
    }

    fn build(system: &mut TableSystem, insts: &[InstitutionCounts]) -> Self {
        let rows: Vec<Vec<u64>> = AgeBand::ALL
            .iter()
            .flat_map(|band| Sex::ALL.iter().map(move |sex| (band, sex)))
            .map(|(band, sex)| {
                insts
                    .iter()
                    .map(|i| {
                        i.age_sex
                            .get(band)
                            .and_then(|by_sex| by_sex.get(sex))
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
        let table = system.add_table(&rows, insts.len(), Margins::Both);
        let columns = insts.len() + 1;
        // Column `c` of the (band, sex) row: an institution's cell, or the row total.
        let cell = |band: usize, sex: usize, c: usize| -> usize {
            let r = Self::row(band, sex);
            if c < insts.len() {
                table.cells[r][c]
            } else {
                table.row_totals[r]
            }
        };
        let column_total = |c: usize| -> Option<usize> {
            if c < insts.len() {
                table.column_totals.get(c).copied()
            } else {
                table.grand_total
            }
        };

        let margin = |system: &mut TableSystem, parts: Vec<usize>| -> usize {
            let total = system.add_cell(parts.iter().map(|&i| system.values[i]).sum());
            system.add_line(parts.into_iter().chain([total]).collect());
            total
        };
        let band_totals: Vec<Vec<usize>> = (0..AgeBand::ALL.len())
            .map(|b| {
                (0..columns)
                    .map(|c| margin(system, (0..Sex::ALL.len()).map(|s| cell(b, s, c)).collect()))
                    .collect()
            })
            .collect();
        let sex_totals: Vec<Vec<usize>> = (0..Sex::ALL.len())
            .map(|s| {
                (0..columns)
                    .map(|c| {
                        margin(
                            system,
                            (0..AgeBand::ALL.len()).map(|b| cell(b, s, c)).collect(),
                        )
                    })
                    .collect()
            })
            .collect();
        // The new margins add up across institutions and across bands (or sexes) too.
        for totals in band_totals.iter().chain(&sex_totals) {
            system.add_line(totals.clone());
        }
        for c in 0..columns {
            let Some(total) = column_total(c) else {
                continue;
            };
            for group in [&band_totals, &sex_totals] {
                system.add_line(group.iter().map(|t| t[c]).chain([total]).collect());
            }
        }
        AgeSexIndex {
            table,
            band_totals,
            sex_totals,
        }
    }

    fn resolve(&self, values: &[u64], hidden: &[bool]) -> CountTable {
        let table = self.table.resolve(values, hidden);
        let cell = |i: usize| {
            if hidden[i] {
                Cell::Suppressed
            } else {
                Cell::Shown(values[i])
            }
        };
        let split = |cells: &[usize]| -> (Vec<Cell>, Cell) {
            let (last, rest) = cells
                .split_last()
                .map_or((None, &[][..]), |(l, r)| (Some(*l), r));
            (
                rest.iter().map(|&i| cell(i)).collect(),
                last.map_or(Cell::Shown(0), cell),
            )
        };
        let mut rows = Vec::new();
        for (b, band) in AgeBand::ALL.iter().enumerate() {
            for (s, sex) in Sex::ALL.iter().enumerate() {
                let r = Self::row(b, s);
                rows.push(CountRow {
                    key: band.key().to_string(),
                    sex: Some(sex.key().to_string()),
                    by_institution: table.cells[r].clone(),
                    total: table.row_totals[r],
                });
            }
            let (by_institution, total) = split(&self.band_totals[b]);
            rows.push(CountRow {
                key: band.key().to_string(),
                sex: Some("all".to_string()),
                by_institution,
                total,
            });
        }
        for (s, sex) in Sex::ALL.iter().enumerate() {
            let (by_institution, total) = split(&self.sex_totals[s]);
            rows.push(CountRow {
                key: "all".to_string(),
                sex: Some(sex.key().to_string()),
                by_institution,
                total,
            });
        }
        CountTable {
            rows,
            totals: Some(CountRow {
                key: "total".to_string(),
                sex: Some("all".to_string()),
                by_institution: table.column_totals.clone(),
                total: table.grand_total,
            }),
        }
    }
}

/// Medicaments keyed by (name, unit), with patients and quantities per institution.
struct MedicamentMatrix {
    keys: Vec<(String, String, bool)>,
    patients: Vec<Vec<u64>>,
    quantities: Vec<Vec<Quantity>>,
}

impl MedicamentMatrix {
    fn build(insts: &[InstitutionCounts]) -> Self {
        // (medicament, unit) → (controlled, patients per institution, quantity per institution)
        type Entry = (bool, Vec<u64>, Vec<Quantity>);
        let mut by_key: BTreeMap<(String, String), Entry> = BTreeMap::new();
        for (c, inst) in insts.iter().enumerate() {
            for need in &inst.medicaments {
                let entry = by_key
                    .entry((need.medicament.clone(), need.unit.clone()))
                    .or_insert_with(|| {
                        (
                            false,
                            vec![0; insts.len()],
                            vec![Quantity::ZERO; insts.len()],
                        )
                    });
                entry.0 |= need.controlled;
                entry.1[c] += need.patients;
                entry.2[c] = saturating_add(entry.2[c], need.quantity);
            }
        }
        let mut matrix = MedicamentMatrix {
            keys: Vec::new(),
            patients: Vec::new(),
            quantities: Vec::new(),
        };
        for ((medicament, unit), (controlled, patients, quantities)) in by_key {
            matrix.keys.push((medicament, unit, controlled));
            matrix.patients.push(patients);
            matrix.quantities.push(quantities);
        }
        matrix
    }

    /// A quantity is published exactly where its patient count is: the quantities add up
    /// along the same lines as the counts, so they inherit a safe pattern.
    fn resolve(
        &self,
        patients: &crate::suppress::SuppressedTable,
    ) -> (Vec<MedicamentRow>, Vec<MedicamentRow>) {
        let quantity = |shown: Cell, q: Quantity| match shown {
            Cell::Shown(_) => QuantityCell::Shown(q),
            Cell::Suppressed => QuantityCell::Suppressed,
        };
        let (mut plain, mut controlled) = (Vec::new(), Vec::new());
        for (r, (medicament, unit, is_controlled)) in self.keys.iter().enumerate() {
            let total = self.quantities[r]
                .iter()
                .fold(Quantity::ZERO, |a, &b| saturating_add(a, b));
            let row = MedicamentRow {
                medicament: medicament.clone(),
                unit: unit.clone(),
                controlled: *is_controlled,
                patients: patients.cells[r].clone(),
                patients_total: patients.row_totals[r],
                quantity: patients.cells[r]
                    .iter()
                    .zip(&self.quantities[r])
                    .map(|(&p, &q)| quantity(p, q))
                    .collect(),
                quantity_total: quantity(patients.row_totals[r], total),
            };
            if *is_controlled {
                controlled.push(row);
            } else {
                plain.push(row);
            }
        }
        (plain, controlled)
    }
}

fn saturating_add(a: Quantity, b: Quantity) -> Quantity {
    a.checked_add(b).unwrap_or(Quantity::from_milli(u64::MAX))
}
