use palreg_reports::{Locale, SuppressedSummary, summarize, to_fhir_measure_report};
use serde_json::Value;

use crate::common::meta;
use crate::summary::{INSTITUTIONS, input};

#[test]
fn summary_json_round_trips_and_hides_suppressed_cells_as_null() {
    let summary = summarize(&input(), 5);
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["k"], 5);
    assert_eq!(json["institutions"], serde_json::json!(INSTITUTIONS));
    let discharged = &json["register"][3];
    assert_eq!(discharged["key"], "discharged");
    assert_eq!(
        discharged["by_institution"],
        serde_json::json!([null, 0, null])
    );
    assert_eq!(discharged["total"], 5);
    // Quantities are exact decimal strings.
    assert_eq!(
        json["controlled_medicaments"][0]["quantity_total"],
        "2001.5"
    );
    let back: SuppressedSummary = serde_json::from_value(json).unwrap();
    assert_eq!(back, summary);
}

fn strata(group: &Value, stratifier: usize) -> &Vec<Value> {
    group["stratifier"][stratifier]["stratum"]
        .as_array()
        .unwrap()
}

#[test]
fn fhir_measure_report_carries_the_same_suppressed_numbers() {
    let summary = summarize(&input(), 5);
    let report = to_fhir_measure_report(&summary, &meta(Locale::En, &INSTITUTIONS));
    assert_eq!(report["resourceType"], "MeasureReport");
    assert_eq!(report["status"], "complete");
    assert_eq!(report["type"], "summary");
    assert_eq!(report["period"]["start"], "2025-01-01");
    assert_eq!(report["period"]["end"], "2025-03-31");
    assert_eq!(report["date"], "2025-04-01T09:30:00Z");

    let groups = report["group"].as_array().unwrap();
    let group = |code: &str| {
        groups
            .iter()
            .find(|g| g["code"]["coding"][0]["code"] == code)
            .unwrap_or_else(|| panic!("no group {code}"))
    };
    // Discharged: 2, 0, 3 → masked, 0, masked; total 5.
    let discharged = group("register-discharged");
    assert_eq!(discharged["population"][0]["count"], 5);
    let by_inst = strata(discharged, 0);
    assert_eq!(by_inst[1]["population"][0]["count"], 0);
    for hidden in [&by_inst[0], &by_inst[2]] {
        let population = &hidden["population"][0];
        assert!(population.get("count").is_none(), "{population}");
        assert_eq!(population["extension"][0]["valueCode"], "masked");
    }

    // No published count anywhere in the report is between 1 and 4.
    fn walk(v: &Value, counts: &mut Vec<u64>) {
        match v {
            Value::Object(map) => {
                if let Some(n) = map.get("count").and_then(Value::as_u64) {
                    counts.push(n);
                }
                map.values().for_each(|v| walk(v, counts));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, counts)),
            _ => {}
        }
    }
    let mut counts = Vec::new();
    walk(&report, &mut counts);
    assert!(counts.len() > 100);
    assert!(counts.iter().all(|&n| n == 0 || n >= 5), "{counts:?}");

    // ICD-10 cells: institution × block, with the column totals as the institution stratifier.
    let icd = group("icd10-block");
    let cells = strata(icd, 2);
    let alpha_c15 = cells
        .iter()
        .find(|s| {
            s["component"][0]["value"]["text"] == "Alpha"
                && s["component"][1]["value"]["text"] == "C15-C26"
        })
        .unwrap();
    assert_eq!(
        alpha_c15["population"][0]["count"],
        summary.icd10_blocks.rows[0].by_institution[0]
            .shown()
            .unwrap()
    );

    // Morphine quantity as measureScore with its unit.
    let controlled = group("controlled-medicament");
    let total = &strata(controlled, 0)[0];
    assert_eq!(total["measureScore"]["value"], serde_json::json!(2001.5));
    assert_eq!(total["measureScore"]["unit"], "ампула");
    assert_eq!(total["population"][0]["count"], 50);
}
