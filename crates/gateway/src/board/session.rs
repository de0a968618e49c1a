//! The board's session: the token a user signs in with, kept in an `HttpOnly`,
//! `SameSite=Strict` cookie so that the page's script never holds it, and a CSRF token in a
//! second cookie that the script reads and echoes in [`CSRF_HEADER`] on every write (a request
//! authenticated by the cookie and missing the echo is refused). Pure: headers in, decisions
//! and header values out.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// The cookie that carries the signed-in user's token.
pub(crate) const SESSION_COOKIE: &str = "vnfm_session";
/// The cookie the board's script reads the CSRF token from.
pub(crate) const CSRF_COOKIE: &str = "vnfm_csrf";
/// The header the board's script echoes the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts in the browser: a working day. The token's own expiry (Keystone's)
/// ends it sooner; signing out ends it at once.
pub(crate) const SESSION_MAX_AGE_S: u64 = 12 * 3600;
/// The longest token kept in a cookie: Keystone's Fernet tokens are about 200 characters, and
/// browsers keep cookies of 4 KiB.
pub(crate) const TOKEN_CHARS_MAX: usize = 2048;

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether a write authenticated by the session cookie echoes the CSRF cookie in
/// [`CSRF_HEADER`] (a page of another site can neither read the cookie nor set the header).
pub(crate) fn csrf_echoed(headers: &HeaderMap) -> bool {
    let echoed = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (cookie(headers, CSRF_COOKIE), echoed) {
        (Some(cookie), Some(echoed)) => !cookie.is_empty() && cookie == echoed,
        _ => false,
    }
}

/// Whether `token` can be kept in a cookie as it is (no separator, no space, not too long).
pub(crate) fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= TOKEN_CHARS_MAX
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
}

/// The `Set-Cookie` values that open a session with `token` and CSRF token `csrf`.
pub(crate) fn open(token: &str, csrf: &str) -> [String; 2] {
    [
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_MAX_AGE_S}"
        ),
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={SESSION_MAX_AGE_S}"),
    ]
}

/// The `Set-Cookie` values that end the session.
pub(crate) fn close() -> [String; 2] {
    [
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        format!("{CSRF_COOKIE}=; Path=/; SameSite=Strict; Max-Age=0"),
    ]
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[
            ("cookie", "a=1; vnfm_session=tok"),
            ("cookie", "vnfm_csrf=c"),
        ]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("c"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn a_write_must_echo_the_csrf_cookie() {
        assert!(csrf_echoed(&headers(&[
            ("cookie", "vnfm_csrf=c1"),
            ("x-csrf-token", "c1")
        ])));
        assert!(!csrf_echoed(&headers(&[("cookie", "vnfm_csrf=c1")])));
        assert!(!csrf_echoed(&headers(&[
            ("cookie", "vnfm_csrf=c1"),
            ("x-csrf-token", "c2")
        ])));
        assert!(!csrf_echoed(&headers(&[("x-csrf-token", "")])));
    }

    #[test]
    fn the_session_cookie_is_http_only_and_strict() {
        let [session, csrf] = open("tok", "c");
        assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
        assert!(!csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"));
        assert!(close()[0].contains("Max-Age=0"));
        assert!(cookie_safe("gAAAAABn-x_y="));
        assert!(!cookie_safe("a;b") && !cookie_safe("") && !cookie_safe("a b"));
    }
}
