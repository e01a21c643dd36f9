//! The command parser's checks, one refusal at a time.

use super::*;

const NOW: i64 = 1_795_000_000_000;

fn payload(extra: &str) -> Vec<u8> {
    let ts = chrono::DateTime::from_timestamp_millis(NOW)
        .unwrap()
        .to_rfc3339();
    format!(r#"{{"request_id":"r-1","timestamp":"{ts}","nonce":"n-0000001"{extra}}}"#).into_bytes()
}

#[test]
fn a_suppress_command_with_every_field_parses() {
    let c = parse(
        "suppress",
        &payload(r#","category":"street_vending","zone":"z1","duration_s":3600"#),
    )
    .unwrap();
    assert_eq!(c.request_id, "r-1");
    assert_eq!(c.issued_ms, NOW);
    assert_eq!(
        c.request,
        Request::Suppress {
            camera: None,
            category: "street_vending".into(),
            zone: "z1".into(),
            duration_s: 3600
        }
    );
}

#[test]
fn unsuppress_suppressions_and_incidents_parse_and_refuse_strangers() {
    let c = parse(
        "unsuppress",
        &payload(r#","camera":"north","category":"crowd_density","zone":"plaza""#),
    )
    .unwrap();
    assert_eq!(
        c.request,
        Request::Unsuppress {
            camera: Some("north".into()),
            category: "crowd_density".into(),
            zone: "plaza".into(),
        }
    );
    let c = parse("suppressions", &payload("")).unwrap();
    assert_eq!(c.request, Request::Suppressions);
    let c = parse("incidents", &payload(r#","camera":"north""#)).unwrap();
    assert_eq!(
        c.request,
        Request::Incidents {
            camera: Some("north".into())
        }
    );
    let (_, e) = parse("unsuppress", &payload(r#","zone":"plaza""#)).unwrap_err();
    assert_eq!(e.code, "missing_field");
    let (_, e) = parse("incidents", &payload(r#","zone":"plaza""#)).unwrap_err();
    assert_eq!(e.code, "malformed");
}

#[test]
fn a_huge_payload_is_refused_unread_and_nothing_of_it_is_echoed() {
    let field = "x".repeat(5 * 1024 * 1024);
    let big = payload(&format!(r#","camera":"{field}""#));
    let (id, e) = parse("snapshot", &big).unwrap_err();
    assert_eq!((id.as_str(), e.code), (UNNAMED_REQUEST, "too_large"));
    assert!(e.message.len() < 200, "{}", e.message);
    assert_eq!(request_id_of(&big), None);
    // Just under the cap, an overlong id is refused with a short message, to its request.
    let long = payload(&format!(r#","camera":"{}""#, "c".repeat(1000)));
    let (id, e) = parse("snapshot", &long).unwrap_err();
    assert_eq!((id.as_str(), e.code), ("r-1", "malformed"));
    assert!(!e.message.contains("ccc"), "{}", e.message);
    assert_eq!(request_id_of(&long).as_deref(), Some("r-1"));
}

#[test]
fn echoed_names_are_capped_and_printable() {
    assert_eq!(echo("reload"), "reload");
    let e = echo(&format!("a\nb{}", "z".repeat(100)));
    assert!(
        e.starts_with("a?b") && e.ends_with('…') && e.chars().count() == 65,
        "{e}"
    );
    let (_, err) = parse(&"q".repeat(10_000), &payload("")).unwrap_err();
    // The name is echoed capped; the rest is the list of known commands.
    let known = COMMANDS.join(", ").len();
    assert!(err.message.len() < known + 150, "{}", err.message);
}

#[test]
fn broken_json_is_answered_on_the_unnamed_topic() {
    let (id, e) = parse("reload", b"{not json").unwrap_err();
    assert_eq!(id, UNNAMED_REQUEST);
    assert_eq!(e.code, "malformed");
}

#[test]
fn a_missing_command_field_is_named() {
    let (id, e) = parse("verify", &payload("")).unwrap_err();
    assert_eq!(id, "r-1");
    assert_eq!(e.code, "missing_field");
    assert!(e.message.contains("incident_id"), "{}", e.message);
}

#[test]
fn an_unknown_command_lists_the_known_ones() {
    let (_, e) = parse("reboot", &payload("")).unwrap_err();
    assert_eq!(e.code, "unknown_command");
    assert!(e.message.contains("snapshot, verify"), "{}", e.message);
}

#[test]
fn unknown_fields_and_bad_durations_are_refused() {
    let (_, e) = parse("snapshot", &payload(r#","camera":"c","zoom":2"#)).unwrap_err();
    assert_eq!(e.code, "malformed");
    let (_, e) = parse(
        "suppress",
        &payload(r#","category":"c","zone":"z","duration_s":0"#),
    )
    .unwrap_err();
    assert!(e.message.contains("between 1 and"), "{}", e.message);
}

#[test]
fn a_request_id_that_would_break_the_topic_is_refused() {
    let p = br#"{"request_id":"a/#","timestamp":"2026-11-23T08:00:00Z","nonce":"n-0000001"}"#;
    let (id, e) = parse("reload", p).unwrap_err();
    assert_eq!((id.as_str(), e.code), (UNNAMED_REQUEST, "malformed"));
}
