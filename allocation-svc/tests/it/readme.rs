//! The README's Configuration table and metric list are claims about the code: every setting
//! either service reads is in the table, with the services that read it and, where the table
//! gives one value, its default; every metric family either service registers is in the list,
//! and the list names no other.

use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory;
use testkit::metrics::scrape;

use crate::support::*;

const README: &str = include_str!("../../../README.md");

/// Read from the environment only, by the OpenTelemetry convention (service_kit::telemetry):
/// no flag, so not in `--help`.
const ENVIRONMENT_ONLY: [&str; 1] = ["OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The rows of the README table whose header line starts with `header`: the cells of each.
fn table(header: &str) -> Vec<Vec<String>> {
    let mut lines = README.lines().map(str::trim);
    lines.by_ref().find(|line| line.starts_with(header));
    lines
        .skip(1) // |---|
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The backticked names in a cell (`A` / `B`, `a`, `b`).
fn names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Each setting of `command` (its environment variable) with its default, if it has one.
fn settings(command: clap::Command) -> BTreeMap<String, Option<String>> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            let defaults: Vec<_> = arg
                .get_default_values()
                .iter()
                .filter_map(|v| v.to_str())
                .collect();
            Some((env, (!defaults.is_empty()).then(|| defaults.join(","))))
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_every_setting_with_its_services_and_default() {
    let investment = settings(investment_svc::config::Config::command());
    let allocation = settings(allocation_svc::Config::command());
    let mut documented = BTreeSet::new();
    for row in table("| variable | default | service |") {
        let (variables, default, service) = (&row[0], &row[1], row[2].as_str());
        for name in names(variables) {
            if ENVIRONMENT_ONLY.contains(&name.as_str()) {
                continue;
            }
            let read_by = (
                investment.contains_key(&name),
                allocation.contains_key(&name),
            );
            let expected = match service {
                "both" => (true, true),
                "investment-svc" => (true, false),
                "allocation-svc" => (false, true),
                other => panic!("{name}: unknown service column {other:?}"),
            };
            assert_eq!(read_by, expected, "{name}: README says {service}");
            let code = investment.get(&name).or(allocation.get(&name)).cloned();
            // A single value in backticks is the default; prose ("unset", "half of ...") is not
            // compared.
            let table_default = default
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'))
                .filter(|d| !d.contains('`'));
            if let Some(table_default) = table_default {
                assert_eq!(
                    code.flatten().as_deref(),
                    Some(table_default),
                    "{name}: default in README"
                );
            }
            documented.insert(name);
        }
    }
    let read: BTreeSet<_> = investment
        .keys()
        .chain(allocation.keys())
        .cloned()
        .collect();
    let missing: Vec<_> = read.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "settings not in the README table: {missing:?}"
    );
}

/// The files that register metric families: the common ones, the publishes and each service's
/// own.
const REGISTERING: [&str; 4] = [
    include_str!("../../../service-kit/src/metrics.rs"),
    include_str!("../../../allocation-bus/src/metrics.rs"),
    include_str!("../../../investment-svc/src/metrics.rs"),
    include_str!("../../src/metrics.rs"),
];

/// The names passed to `registry.register(` in `source` (families with no sample yet are not
/// in a scrape, so the registrations are read where they are written).
fn registered(source: &str) -> Vec<String> {
    source
        .split("registry.register(")
        .skip(1)
        .filter_map(|call| Some(call.split('"').nth(1)?.to_owned()))
        .collect()
}

/// The family names in a scrape (`# TYPE name type`), counters with their `_total` suffix as
/// the samples carry it.
fn scraped(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some(match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_owned(),
            })
        })
        .collect()
}

#[tokio::test]
async fn the_metric_list_is_every_family_the_services_register() {
    let mut listed = BTreeSet::new();
    let mut family_names = BTreeSet::new();
    for row in table("| metric | type | labels | what |") {
        for name in names(&row[0]) {
            // A counter's samples are `<family>_total`.
            let family = match row[1].as_str() {
                "counter" => name
                    .strip_suffix("_total")
                    .unwrap_or_else(|| panic!("{name}: a counter without _total"))
                    .to_owned(),
                _ => name.clone(),
            };
            family_names.insert(family);
            listed.insert(name);
        }
    }
    let registered: BTreeSet<String> = REGISTERING.iter().flat_map(|s| registered(s)).collect();
    assert_eq!(
        family_names, registered,
        "README metric list vs registered families"
    );

    // And what a live scrape shows (the families with samples), types included.
    let stack = stack_with(Options {
        metrics: true,
        ..Options::default()
    })
    .await;
    for addr in [
        stack.investment_svc.metrics_addr.expect("metrics"),
        stack.replicas[0].metrics_addr.expect("metrics"),
    ] {
        let shown = scraped(&scrape(addr).await);
        let unlisted: Vec<_> = shown.difference(&listed).collect();
        assert!(
            unlisted.is_empty(),
            "scraped, not in the README: {unlisted:?}"
        );
    }
}
