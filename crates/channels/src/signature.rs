//! Webhook signatures.
//!
//! Meta signs the raw body it sends with the app secret (`X-Hub-Signature-256: sha256=<hex>`);
//! the bytes must be verified exactly as received, because Meta escapes non-ASCII characters
//! and any re-serialisation changes them. Twilio signs the requested URL followed by the sorted
//! form parameters with the auth token (`X-Twilio-Signature`, base64 HMAC-SHA1).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// Checks `X-Hub-Signature-256` against the raw request body. Comparison is constant-time.
pub fn verify_meta(app_secret: &str, raw_body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(raw_body);
    mac.verify_slice(&expected).is_ok()
}

/// The `X-Hub-Signature-256` value Meta would send for this body; used by test fakes.
pub fn sign_meta(app_secret: &str, raw_body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(raw_body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The `X-Twilio-Signature` for a request to `url` with these form parameters: the URL, then
/// each parameter name and value in code-point order (duplicates removed), HMAC-SHA1, base64.
pub fn sign_twilio(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (name, value) in pairs {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `X-Twilio-Signature`. Twilio is inconsistent about the default port, so the URL is
/// tried as given, with the default port removed and with it added.
pub fn verify_twilio(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    url_port_variants(url).iter().any(|candidate| {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(sign_twilio(auth_token, candidate, params))
            .unwrap_or_default();
        constant_time_eq(&expected, &given)
    })
}

fn url_port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let (scheme, default_port) = if url.starts_with("https://") {
        ("https://", ":443")
    } else if url.starts_with("http://") {
        ("http://", ":80")
    } else {
        return out;
    };
    let rest = &url[scheme.len()..];
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(host_end);
    if let Some(host) = authority.strip_suffix(default_port) {
        out.push(format!("{scheme}{host}{tail}"));
    } else if !authority.contains(':') {
        out.push(format!("{scheme}{authority}{default_port}{tail}"));
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn basic_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    /// twilio-python's published vectors (tests/unit/test_request_validator.py).
    #[test]
    fn twilio_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            sign_twilio("12345", url, &basic_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            sign_twilio(
                "12345",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &basic_params()
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            sign_twilio(
                "12345",
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &basic_params()
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        let multi = params(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            sign_twilio("12345", url, &multi),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn twilio_accepts_either_port_form_and_refuses_tampering() {
        let plain = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        // Signed with the port, verified against the URL without it, and the reverse.
        assert!(verify_twilio(
            "12345",
            plain,
            &basic_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(verify_twilio(
            "12345",
            with_port,
            &basic_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(verify_twilio(
            "12345",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &basic_params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        let mut tampered = basic_params();
        tampered[1].1 = "9999".into();
        assert!(!verify_twilio(
            "12345",
            plain,
            &tampered,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_twilio(
            "wrong",
            plain,
            &basic_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_twilio(
            "12345",
            plain,
            &basic_params(),
            "not base64!"
        ));
    }

    /// whatsapp-api-js's published vector: Meta signs the ASCII-escaped body.
    #[test]
    fn meta_vector() {
        let escaped = r"Let's pretend this body is equal to the message object and can handle unicode characters like \u307f\u3069\u308a\u3044\u308d and J'ai mang\u00e9 des p\u00e2tes";
        let header = "sha256=0363007aabdf1ab579f35936651a460fb5fa1aaf40df98b1264446b72cc96688";
        assert_eq!(sign_meta("YOUR_APP_SECRET", escaped.as_bytes()), header);
        assert!(verify_meta("YOUR_APP_SECRET", escaped.as_bytes(), header));
        let unescaped = "Let's pretend this body is equal to the message object and can handle unicode characters like みどりいろ and J'ai mangé des pâtes";
        assert!(!verify_meta(
            "YOUR_APP_SECRET",
            unescaped.as_bytes(),
            header
        ));
    }

    #[test]
    fn meta_signatures_cover_the_exact_bytes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"text":"caf\u00e9"}}]}]}"#;
        let header = sign_meta("app-secret", body);
        assert!(header.starts_with("sha256="));
        assert!(verify_meta("app-secret", body, &header));
        // The same JSON with the escape decoded is different bytes, and fails.
        let reencoded = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"text":"café"}}]}]}"#;
        assert!(!verify_meta("app-secret", reencoded.as_bytes(), &header));
        assert!(!verify_meta("other-secret", body, &header));
        assert!(!verify_meta("app-secret", body, "sha1=abc"));
        assert!(!verify_meta("app-secret", body, "sha256=zz"));
    }
}
