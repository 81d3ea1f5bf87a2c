//! The summary as a FHIR R4 `MeasureReport` (`summary.fhir.json`).
//!
//! Layout: one `group` per published table (`register-<measure>`, `icd10-block`, `age-sex`,
//! `care-form`, `need`, `medicament`, `controlled-medicament`). A group's `initial-population`
//! count is the table's grand total where the table has one. Its stratifiers are the
//! table's margins and cells: `institution` (column totals, or the register measure per
//! institution), the category alone (row totals), and the category crossed with the
//! institution as a two- or three-component stratum (the cells). Medicament strata carry
//! the patient count as the population count and the quantity as `measureScore` with its
//! unit.
//!
//! A suppressed count has no `count`; the population (or, for a quantity, the stratum)
//! carries the standard `data-absent-reason` extension with code `masked` instead, so a
//! consumer sees a hidden cell, not a missing one.

use serde_json::{Value, json};

use crate::model::ReportMeta;
use crate::summary::{CountRow, CountTable, MedicamentRow, QuantityCell, SuppressedSummary};
use crate::suppress::Cell;

const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
const MEASURE_POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
/// Code system of the palreg-specific group and stratifier codes.
pub const PALREG_CODES: &str = "urn:palreg:summary";
/// The canonical URL the report claims to be a report of.
pub const MEASURE_URL: &str = "urn:palreg:measure:summary-v1";

/// Renders the suppressed summary as a FHIR R4 `MeasureReport` (status `complete`, type
/// `summary`); see the module documentation for its layout.
pub fn to_fhir_measure_report(summary: &SuppressedSummary, meta: &ReportMeta) -> Value {
    let institutions = &summary.institutions;
    let mut groups: Vec<Value> = summary
        .register
        .iter()
        .map(|row| register_group(row, institutions))
        .collect();
    groups.push(table_group(
        "icd10-block",
        &summary.icd10_blocks,
        institutions,
    ));
    groups.push(table_group("age-sex", &summary.age_sex, institutions));
    groups.push(table_group("care-form", &summary.care_forms, institutions));
    groups.push(table_group("need", &summary.needs, institutions));
    groups.push(medicament_group(
        "medicament",
        &summary.medicaments,
        institutions,
    ));
    groups.push(medicament_group(
        "controlled-medicament",
        &summary.controlled_medicaments,
        institutions,
    ));

    json!({
        "resourceType": "MeasureReport",
        "meta": { "tag": [{ "system": PALREG_CODES, "code": format!("suppressed-k{}", summary.k) }] },
        "text": {
            "status": "generated",
            "div": format!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>",
                escape_xml(&summary.rule)
            ),
        },
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_URL,
        "date": format!("{}Z", meta.generated_at.format("%Y-%m-%dT%H:%M:%S")),
        "period": {
            "start": meta.period_from.format("%Y-%m-%d").to_string(),
            "end": meta.period_to.format("%Y-%m-%d").to_string(),
        },
        "reporter": { "display": meta.institutions.join("; ") },
        "group": groups,
    })
}

fn code(code: &str) -> Value {
    json!({ "coding": [{ "system": PALREG_CODES, "code": code }], "text": code })
}

fn population(cell: Cell) -> Value {
    let coding =
        json!({ "coding": [{ "system": MEASURE_POPULATION, "code": "initial-population" }] });
    match cell {
        Cell::Shown(n) => json!({ "code": coding, "count": n }),
        Cell::Suppressed => json!({
            "code": coding,
            "extension": [{ "url": DATA_ABSENT_REASON, "valueCode": "masked" }],
        }),
    }
}

fn stratum(components: &[(&str, &str)], cell: Cell) -> Value {
    let mut stratum = match components {
        [(_, value)] => json!({ "value": { "text": value } }),
        _ => json!({
            "component": components
                .iter()
                .map(|(c, v)| json!({ "code": code(c), "value": { "text": v } }))
                .collect::<Vec<_>>()
        }),
    };
    stratum["population"] = json!([population(cell)]);
    stratum
}

fn stratifier(codes: &[&str], strata: Vec<Value>) -> Value {
    json!({ "code": codes.iter().map(|c| code(c)).collect::<Vec<_>>(), "stratum": strata })
}

fn by_institution(institutions: &[String], cells: &[Cell]) -> Vec<Value> {
    institutions
        .iter()
        .zip(cells)
        .map(|(name, &cell)| stratum(&[("institution", name)], cell))
        .collect()
}

fn register_group(row: &CountRow, institutions: &[String]) -> Value {
    json!({
        "code": code(&format!("register-{}", row.key.replace('_', "-"))),
        "population": [population(row.total)],
        "stratifier": [stratifier(&["institution"], by_institution(institutions, &row.by_institution))],
    })
}

fn table_group(name: &str, table: &CountTable, institutions: &[String]) -> Value {
    // The age-and-sex table's categories are two codes (band, sex); the others one.
    let category_codes: Vec<&str> = if name == "age-sex" {
        vec!["age-band", "sex"]
    } else {
        vec![name]
    };
    let components = |row: &CountRow| -> Vec<(&str, String)> {
        let mut parts = vec![(category_codes[0], row.key.clone())];
        if let (Some(sex), Some(code)) = (&row.sex, category_codes.get(1)) {
            parts.push((code, sex.clone()));
        }
        parts
    };

    let mut row_totals = Vec::new();
    let mut cells = Vec::new();
    for row in &table.rows {
        let parts = components(row);
        let refs: Vec<(&str, &str)> = parts.iter().map(|(c, v)| (*c, v.as_str())).collect();
        row_totals.push(stratum(&refs, row.total));
        for (name, &cell) in institutions.iter().zip(&row.by_institution) {
            let mut with_inst = vec![("institution", name.as_str())];
            with_inst.extend(refs.iter().copied());
            cells.push(stratum(&with_inst, cell));
        }
    }
    let mut crossed_codes = vec!["institution"];
    crossed_codes.extend(category_codes.iter().copied());

    let mut stratifiers = Vec::new();
    let mut group = json!({ "code": code(name) });
    if let Some(totals) = &table.totals {
        group["population"] = json!([population(totals.total)]);
        stratifiers.push(stratifier(
            &["institution"],
            by_institution(institutions, &totals.by_institution),
        ));
    }
    stratifiers.push(stratifier(&category_codes, row_totals));
    stratifiers.push(stratifier(&crossed_codes, cells));
    group["stratifier"] = Value::Array(stratifiers);
    group
}

fn quantity_stratum(
    components: &[(&str, &str)],
    patients: Cell,
    quantity: QuantityCell,
    unit: &str,
) -> Value {
    let mut stratum = stratum(components, patients);
    match quantity {
        QuantityCell::Shown(q) => {
            // FHIR decimals are JSON numbers; a Quantity has at most three decimals, so the
            // text form parses back to the exact value.
            let value: Value = serde_json::from_str(&q.to_string()).unwrap_or(Value::Null);
            stratum["measureScore"] = json!({ "value": value, "unit": unit });
        }
        QuantityCell::Suppressed => {
            stratum["extension"] = json!([{ "url": DATA_ABSENT_REASON, "valueCode": "masked" }]);
        }
    }
    stratum
}

fn medicament_group(name: &str, rows: &[MedicamentRow], institutions: &[String]) -> Value {
    let mut totals = Vec::new();
    let mut cells = Vec::new();
    for row in rows {
        let label = format!("{} ({})", row.medicament, row.unit);
        totals.push(quantity_stratum(
            &[("medicament", &label)],
            row.patients_total,
            row.quantity_total,
            &row.unit,
        ));
        for ((inst, &patients), &quantity) in
            institutions.iter().zip(&row.patients).zip(&row.quantity)
        {
            cells.push(quantity_stratum(
                &[("institution", inst), ("medicament", &label)],
                patients,
                quantity,
                &row.unit,
            ));
        }
    }
    json!({
        "code": code(name),
        "stratifier": [
            stratifier(&["medicament"], totals),
            stratifier(&["institution", "medicament"], cells),
        ],
    })
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
