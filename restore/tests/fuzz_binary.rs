//! Property tests of the binary-COPY converter (`restore::binary::BinaryRows`), through its
//! public API.
//!
//! 1. Random rows (field soups for every column type, text and CSV syntax) never panic or hang:
//!    the converter returns binary rows or an error.
//! 2. The server as an oracle: random values of every converted type (extremes, BC dates,
//!    infinities, odd time zones, escapes) are inserted on a real PostgreSQL, copied out as
//!    text (what pg_dump writes), converted, loaded with `COPY ... (FORMAT binary)` into a
//!    second table, and copied out again: the two texts must be identical byte for byte, or
//!    the converter must refuse the rows (`is_unconvertible`: the caller then loads text).
//!
//! `PROPTEST_CASES=N` for longer runs.

use std::io::{Read, Write};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use restore::binary::{is_unconvertible, BinaryRows, ColumnType, Input};
use testkit::TestServer;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const TYPES: &[ColumnType] = &[
    ColumnType::Bool,
    ColumnType::Int2,
    ColumnType::Int4,
    ColumnType::Int8,
    ColumnType::Text,
    ColumnType::Json,
    ColumnType::Jsonb,
    ColumnType::Numeric,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::TimestampTz,
];

/// Field text of every kind, valid and not.
const FIELDS: &[&str] = &[
    "t",
    "f",
    "true",
    "0",
    "-1",
    "32767",
    "-32768",
    "32768",
    "2147483647",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1.5",
    "-0.000",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e5",
    "0001",
    "+1",
    "",
    "\\N",
    "\\\\",
    "\\t",
    "\\n",
    "\\x41",
    "\\101",
    "\\u00e9",
    "{\"a\": [1, 2]}",
    "[]",
    "\"s\"",
    "2024-02-29",
    "0001-01-01",
    "0001-01-01 BC",
    "5874897-12-31",
    "294276-12-31 23:59:59.999999",
    "infinity",
    "-infinity",
    "2024-01-01 00:00:00",
    "2024-01-01 24:00:00",
    "2024-13-01",
    "2024-01-01 12:00:00.1234567",
    "2024-06-30 23:59:60",
    "1850-01-01 00:00:00+00:19:32",
    "2024-01-01 10:00:00+05:30",
    "2024-01-01 10:00:00-09:30:15",
    "2024-01-01T10:00:00",
    "\"",
    "\"\"",
    "\"a,b\"",
    "\"x\ny\"",
    "é",
    "\u{0}",
    "\u{ff}",
    "\r",
];

fn row_soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => prop::sample::select(FIELDS).prop_map(|f| f.as_bytes().to_vec()),
        2 => prop::sample::select(vec!["\t", ",", "\n", "\\.\n"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
}

#[test]
fn random_rows_never_panic() {
    let strategy = (
        prop::collection::vec(prop::sample::select(TYPES), 1..6),
        any::<bool>(),
        row_soup(),
        1usize..64,
    );
    TestRunner::new(config(600))
        .run(&strategy, |(columns, csv, input, step)| {
            let syntax = if csv { Input::Csv } else { Input::Text };
            let reader = testkit::Trickle::new(&input, step);
            let mut out = Vec::new();
            let r = BinaryRows::new(reader, columns, syntax)
                .take(64 << 20)
                .read_to_end(&mut out);
            if r.is_ok() {
                prop_assert!(
                    out.starts_with(b"PGCOPY\n\xff\r\n\0"),
                    "no binary COPY header"
                );
                prop_assert!(out.ends_with(&[0xff, 0xff]), "no end-of-data marker");
            }
            Ok(())
        })
        .unwrap();
}

/// The table both sides use: one column per converted type.
const TABLE: &str = "(b bool, i2 int2, i4 int4, i8 int8, t text, v varchar(40), j json, jb jsonb,
    n numeric, d date, ts timestamp, tz timestamptz)";
const COLUMNS: &[ColumnType] = &[
    ColumnType::Bool,
    ColumnType::Int2,
    ColumnType::Int4,
    ColumnType::Int8,
    ColumnType::Text,
    ColumnType::Text,
    ColumnType::Json,
    ColumnType::Jsonb,
    ColumnType::Numeric,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::TimestampTz,
];

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn or_null(v: Option<String>) -> String {
    v.unwrap_or_else(|| "NULL".into())
}

fn int_of(bits: u32) -> impl Strategy<Value = String> {
    let max = (1i128 << (bits - 1)) - 1;
    let min = -(1i128 << (bits - 1));
    prop_oneof![
        Just(max.to_string()),
        Just(min.to_string()),
        Just("0".to_string()),
        (min as i64..=max as i64).prop_map(|v| v.to_string()),
    ]
}

fn numeric() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("'NaN'".to_string()),
        1 => Just("'Infinity'".to_string()),
        1 => Just("'-Infinity'".to_string()),
        1 => Just("0.000".to_string()),
        30 => (any::<bool>(), "[0-9]{1,30}", "[0-9]{0,20}", -30i32..30).prop_map(|(neg, a, b, e)| {
            format!("({}{a}.{b}0e{e})::numeric", if neg { "-" } else { "" })
        }),
    ]
}

fn date() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("'infinity'".to_string()),
        1 => Just("'-infinity'".to_string()),
        1 => Just("'0001-01-01 BC'".to_string()),
        1 => Just("'5874897-12-31'".to_string()),
        30 => (-700_000i64..2_900_000).prop_map(|d| format!("(date '2000-01-01' + {d})")),
    ]
}

fn timestamp(tz: bool) -> impl Strategy<Value = String> {
    let ty = if tz { "timestamptz" } else { "timestamp" };
    prop_oneof![
        1 => Just(format!("'infinity'::{ty}")),
        1 => Just(format!("'-infinity'::{ty}")),
        1 => Just(format!("'4713-01-01 00:00:00 BC'::{ty}")),
        // The largest value, written in UTC so every TimeZone can show it.
        1 => Just(format!("'294276-12-31 23:59:59.999999{}'::{ty}", if tz { "+00" } else { "" })),
        30 => (-60_000_000_000i64..250_000_000_000, 0u32..1_000_000).prop_map(move |(s, us)| {
            format!("(timestamp '2000-01-01' + interval '{s} seconds' + interval '{us} microseconds')::{ty}")
        }),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                "\t", "\n", "\r", "\\", "\\N", "'", "\"", ",", "é", "😀", " "
            ])
            .prop_map(String::from),
            "[a-zA-Z0-9]{0,6}",
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

fn json() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        Just("[1, 2.50, -3e2]".to_string()),
        Just("{\"a\" : {\"b\":[true,false,null]},  \"é\\u00e9\": \"x\\ty\"}".to_string()),
        text().prop_map(|t| serde_json::to_string(&t).unwrap()),
    ]
}

/// One row as SQL expressions, NULLs included.
fn row() -> impl Strategy<Value = Vec<String>> {
    let n = |s: BoxedStrategy<String>| prop::option::weighted(0.85, s).prop_map(or_null);
    (
        (
            n(prop::bool::ANY.prop_map(|b| b.to_string()).boxed()),
            n(int_of(16).boxed()),
            n(int_of(32).boxed()),
            n(int_of(64).boxed()),
            n(text().prop_map(|t| lit(&t)).boxed()),
            n(text()
                .prop_map(|t| lit(&t.chars().take(40).collect::<String>()))
                .boxed()),
        ),
        (
            n(json().prop_map(|j| format!("{}::json", lit(&j))).boxed()),
            n(json().prop_map(|j| format!("{}::jsonb", lit(&j))).boxed()),
            n(numeric().boxed()),
            n(date().boxed()),
            n(timestamp(false).boxed()),
            n(timestamp(true).boxed()),
        ),
    )
        .prop_map(|((a, b, c, d, e, f), (g, h, i, j, k, l))| {
            vec![a, b, c, d, e, f, g, h, i, j, k, l]
        })
}

fn copy_out(c: &mut postgres::Client, table: &str) -> Vec<u8> {
    let mut out = Vec::new();
    c.copy_out(&format!("COPY {table} TO STDOUT"))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn converted_rows_load_exactly_as_their_text() {
    let s = TestServer::start();
    s.create_db("fz");
    let mut c = s.client("fz");
    c.batch_execute(&format!(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3;
         CREATE TABLE src {TABLE}; CREATE TABLE dst {TABLE};"
    ))
    .unwrap();
    let zones = [
        "UTC",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Europe/Amsterdam",
        "Pacific/Chatham",
    ];
    let (loaded, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let c = std::cell::RefCell::new(c);
    let strategy = (
        prop::sample::select(zones.to_vec()),
        prop::collection::vec(row(), 1..5),
    );
    TestRunner::new(config(120))
        .run(&strategy, |(zone, rows)| {
            let c = &mut *c.borrow_mut();
            c.batch_execute(&format!("TRUNCATE src, dst; SET TimeZone = {}", lit(zone)))
                .unwrap();
            for r in &rows {
                c.batch_execute(&format!("INSERT INTO src VALUES ({})", r.join(", ")))
                    .unwrap();
            }
            let mut text = copy_out(c, "src");
            text.extend_from_slice(b"\\.\n");
            let mut binary = Vec::new();
            let converted =
                BinaryRows::new(&text[..], COLUMNS.to_vec(), Input::Text).read_to_end(&mut binary);
            match converted {
                Err(e) if is_unconvertible(&e) => {
                    refused.set(refused.get() + 1);
                    return Ok(());
                }
                Err(e) => prop_assert!(false, "{e} (text {:?})", String::from_utf8_lossy(&text)),
                Ok(_) => {}
            }
            let mut w = c.copy_in("COPY dst FROM STDIN (FORMAT binary)").unwrap();
            w.write_all(&binary).unwrap();
            if let Err(e) = w.finish() {
                prop_assert!(
                    false,
                    "the server refused our binary rows: {e}\ntext: {}",
                    String::from_utf8_lossy(&text)
                );
            }
            let back = copy_out(c, "dst");
            prop_assert!(
                back == text[..text.len() - 3],
                "TimeZone {zone}:\nsource: {}\nloaded: {}",
                String::from_utf8_lossy(&text),
                String::from_utf8_lossy(&back)
            );
            loaded.set(loaded.get() + 1);
            Ok(())
        })
        .unwrap();
    let (loaded, refused) = (loaded.get(), refused.get());
    eprintln!("{loaded} row sets loaded through binary COPY identically, {refused} refused (loaded as text by the caller)");
    assert!(
        loaded > refused,
        "the converter refused most row sets: {refused} of {}",
        loaded + refused
    );
}
