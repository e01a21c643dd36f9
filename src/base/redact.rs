//! Secrets never reach a log line: RTSP URLs are printed with their credentials replaced.

/// `rtsp://admin:secret@10.0.0.5/stream?token=x` → `rtsp://***@10.0.0.5/stream?***`. Text that is not a URL is returned
/// with everything between `://` and the last `@` of the authority masked, so a malformed URL still does not
/// leak a password.
pub fn redact_url(raw: &str) -> String {
    if let Ok(mut u) = url::Url::parse(raw) {
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_password(None);
            let _ = u.set_username("***");
        }
        // Some cameras take their credentials in the query (`?user=…&password=…`).
        if u.query().is_some() {
            u.set_query(Some("***"));
        }
        return u.to_string();
    }
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let authority_end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
    match raw[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_in_a_query_are_masked_too() {
        assert_eq!(
            redact_url("rtsp://10.0.0.5:554/live?user=admin&password=s3cret"),
            "rtsp://10.0.0.5:554/live?***"
        );
    }

    #[test]
    fn credentials_are_masked_in_valid_urls() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@10.0.0.5:554/live"),
            "rtsp://***@10.0.0.5:554/live"
        );
        assert_eq!(redact_url("rtsp://10.0.0.5/live"), "rtsp://10.0.0.5/live");
    }

    #[test]
    fn credentials_are_masked_in_malformed_urls() {
        let out = redact_url("rtsp://admin:s3 cret@[bad/live");
        assert!(!out.contains("s3 cret"), "{out}");
    }
}
