//! Credentials written into a camera URL: taken out of the location (GStreamer's own debug log prints
//! locations) and handed to the RTSP client separately.

/// `url` without its user and password, and those (percent-decoded) when it had them.
pub(super) fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_string(), None, None);
    };
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = Some(parsed.username())
        .filter(|u| !u.is_empty())
        .map(decode);
    let password = parsed.password().map(decode);
    if user.is_none() && password.is_none() {
        return (url.to_string(), None, None);
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    (parsed.to_string(), user, password)
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_leave_the_location() {
        let (loc, user, pw) =
            split_credentials("rtsp://admin:p%40ss+w0rd@10.0.0.7:554/Streaming/101");
        assert_eq!(loc, "rtsp://10.0.0.7:554/Streaming/101");
        assert_eq!(user.as_deref(), Some("admin"));
        assert_eq!(pw.as_deref(), Some("p@ss+w0rd"));
        let (loc, user, pw) = split_credentials("rtsp://10.0.0.7/live");
        assert_eq!(
            (loc.as_str(), user, pw),
            ("rtsp://10.0.0.7/live", None, None)
        );
    }
}
