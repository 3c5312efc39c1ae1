//! The web pages' cookies: reading them from requests and writing `Set-Cookie` values.
//!
//! Two cookies exist: the session (`HttpOnly`, the only credential) and the login form's CSRF
//! token (a double-submit value set before anyone is signed in).

use axum::http::HeaderMap;

pub const SESSION: &str = "sb_session";
pub const LOGIN_CSRF: &str = "sb_login_csrf";

/// The value of cookie `name`, from any `Cookie` header of the request.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

pub fn session_secret(headers: &HeaderMap) -> Option<String> {
    get(headers, SESSION)
}

/// A cookie for the whole site that scripts cannot read. `Lax` keeps it off cross-site posts
/// while still sending it when someone follows a link to the inbox from elsewhere.
pub fn set(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

pub fn clear(name: &str, secure: bool) -> String {
    set(name, "", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1; sb_session=abc"));
        headers.append("cookie", HeaderValue::from_static("sb_login_csrf=xyz"));
        assert_eq!(get(&headers, SESSION).as_deref(), Some("abc"));
        assert_eq!(get(&headers, LOGIN_CSRF).as_deref(), Some("xyz"));
        assert_eq!(get(&headers, "missing"), None);
        headers.append("cookie", HeaderValue::from_static("empty="));
        assert_eq!(get(&headers, "empty"), None);
    }

    #[test]
    fn set_cookies_carry_the_safety_attributes() {
        let c = set(SESSION, "v", 60, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(set(SESSION, "v", 60, true).ends_with("; Secure"));
        assert!(clear(SESSION, false).contains("Max-Age=0"));
    }
}
