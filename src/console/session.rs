//! Signing in and out of the console, and the session every page reads as.
//!
//! The session cookie holds the bearer token itself and is checked on every request as
//! `Authorization: Bearer` would be (signature, expiry, lifetime cap), so signing in grants
//! nothing the token did not. The cookie is HttpOnly (page scripts cannot read it),
//! SameSite=Strict (no other site's page can make the browser send it), scoped to
//! `/console`, and its Max-Age ends no later than the token's `exp`.
//!
//! CSRF: the sign-in form carries a hidden `csrf` field that must equal the `folio_csrf`
//! cookie (random, 256 bits). Once signed in, every form carries the session's own CSRF
//! token, SHA-256 of the session's bearer token under a label, so a form posted from
//! elsewhere is refused even by a site that can plant cookies.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use axum::{
    Extension, Form,
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use platform::{
    Principal, RequestContext, TokenKeys,
    access_log::{Access, AccessLog},
    graphql::correlation_id,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::views;

/// The cookie holding the signed-in caller's bearer token.
pub const SESSION_COOKIE: &str = "folio_session";
/// The cookie the CSRF field of every state-changing form must equal.
pub const CSRF_COOKIE: &str = "folio_csrf";
/// Bytes of randomness in a CSRF token (hex-encoded in the cookie and the form).
const CSRF_BYTES: usize = 32;

/// The signed-in caller of a console page.
pub(crate) struct Session {
    pub request: RequestContext,
    /// The CSRF token forms on the page must carry.
    pub csrf: String,
}

impl Session {
    pub fn principal(&self) -> &Principal {
        &self.request.principal
    }
}

/// The value of cookie `name` in `headers`, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A page's answer to a caller who is not signed in (or whose token has expired): back to
/// the sign-in page, which says why.
fn to_sign_in(reason: &str) -> Response {
    let location = format!("/console/sign-in?reason={reason}");
    Redirect::to(&location).into_response()
}

fn keys(parts: &Parts) -> Option<Arc<TokenKeys>> {
    let keys = parts.extensions.get::<Arc<TokenKeys>>().cloned();
    if keys.is_none() {
        tracing::error!("TokenKeys extension missing from the console's router");
    }
    keys
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(keys) = keys(parts) else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in("signed-out"));
        };
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let principal = match keys.verify(token) {
            Ok(principal) => principal,
            Err(error) => {
                // A session cookie that is no longer (or never was) a valid token: an
                // expired session, or a forged cookie. Either is a refused attempt.
                if let Some(log) = parts.extensions.get::<AccessLog>() {
                    let reason = format!("the session cookie is refused: {error}");
                    log.record_refusal(platform::auth::unauthenticated_access(parts, &reason))
                        .await;
                }
                return Err(to_sign_in("expired"));
            }
        };
        Ok(Self {
            request: RequestContext {
                principal,
                correlation_id: correlation_id(&parts.headers),
                client_addr,
            },
            csrf: session_csrf(token),
        })
    }
}

/// A new random CSRF token.
fn new_csrf() -> String {
    let mut bytes = [0u8; CSRF_BYTES];
    // Without randomness no session can be protected; the page says so and nothing is set.
    match getrandom::fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(error) => {
            tracing::error!(%error, "no randomness for a CSRF token");
            String::new()
        }
    }
}

/// Whether the sign-in form's CSRF field equals the `folio_csrf` cookie (before there is a
/// session to bind it to).
pub(crate) fn csrf_matches(headers: &HeaderMap, submitted: &str) -> bool {
    cookie(headers, CSRF_COOKIE).is_some_and(|expected| same(expected, submitted))
}

/// The CSRF token of a session: SHA-256 of the session's bearer token under a label of its
/// own. Forms of a signed-in page carry it; a site that can plant a cookie cannot compute
/// it, because the token is in an HttpOnly cookie it cannot read.
fn session_csrf(token: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"folio console csrf\0");
    digest.update(token.as_bytes());
    hex::encode(digest.finalize())
}

/// `a == b` in time that depends only on their lengths; never true for empty strings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Session {
    /// Whether a form's CSRF field is this session's.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        same(&self.csrf, submitted)
    }
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age_secs: u64) {
    let cookie =
        format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// How long the CSRF cookie of a signed-out browser lives.
const CSRF_COOKIE_SECS: u64 = 3600;

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    reason: Option<String>,
}

/// `GET /console/sign-in`: the form to paste a token into.
pub(crate) async fn sign_in_page(
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<SignInQuery>,
) -> Response {
    let notice = match query.reason.as_deref() {
        Some("expired") => Some("Your session has ended: sign in again with a current token."),
        Some("signed-out") => Some("Sign in to use the console."),
        Some("bye") => Some("You are signed out."),
        _ => None,
    };
    let csrf = cookie(&headers, CSRF_COOKIE)
        .map(str::to_string)
        .unwrap_or_else(new_csrf);
    let mut response = views::sign_in(&csrf, notice, None).into_response();
    set_cookie(&mut response, CSRF_COOKIE, &csrf, CSRF_COOKIE_SECS);
    response
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/sign-in`: checks the CSRF field and the token, then sets the session
/// cookie to end when the token does. A refused token is written to the access log as an
/// unauthenticated attempt at `POST /console/sign-in`, with the reason.
pub(crate) async fn sign_in(
    Extension(keys): Extension<Arc<TokenKeys>>,
    Extension(log): Extension<AccessLog>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let csrf = cookie(&headers, CSRF_COOKIE)
        .map(str::to_string)
        .unwrap_or_else(new_csrf);
    if !csrf_matches(&headers, &form.csrf) {
        let mut response = (
            StatusCode::FORBIDDEN,
            views::sign_in(
                &csrf,
                None,
                Some("The form was out of date: sign in again from this page."),
            ),
        )
            .into_response();
        set_cookie(&mut response, CSRF_COOKIE, &csrf, CSRF_COOKIE_SECS);
        return response;
    }
    let token = form.token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    let refused = async |message: String| {
        log.record_refusal(Access::unauthenticated(
            "POST /console/sign-in".to_string(),
            Some(correlation_id(&headers)),
            connection
                .as_ref()
                .map(|Extension(ConnectInfo(addr))| addr.ip().to_string()),
            &message,
        ))
        .await;
        let mut response = (
            StatusCode::UNAUTHORIZED,
            views::sign_in(&csrf, None, Some(&message)),
        )
            .into_response();
        set_cookie(&mut response, CSRF_COOKIE, &csrf, CSRF_COOKIE_SECS);
        response
    };
    if token.is_empty() {
        return refused("Paste a bearer token (mint one with `folio token`).".into()).await;
    }
    let (principal, expires_at) = match keys.verify_with_expiry(token) {
        Ok(verified) => verified,
        Err(error) => return refused(format!("That token is refused: {error}.")).await,
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    let max_age = expires_at.saturating_sub(now);
    if max_age == 0 {
        return refused("That token has expired.".into()).await;
    }
    tracing::info!(actor = %principal.actor, "signed in to the console");
    let mut response = Redirect::to("/console/accounts").into_response();
    set_cookie(&mut response, SESSION_COOKIE, token, max_age);
    // A fresh CSRF token for the session, so one seen before sign-in is worth nothing after.
    set_cookie(&mut response, CSRF_COOKIE, &new_csrf(), max_age);
    response
}

#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/sign-out`: clears the session (with a valid CSRF field).
pub(crate) async fn sign_out(headers: HeaderMap, Form(form): Form<SignOutForm>) -> Response {
    let expected = cookie(&headers, SESSION_COOKIE).map(session_csrf);
    if !expected.is_some_and(|expected| same(&expected, &form.csrf)) {
        return (
            StatusCode::FORBIDDEN,
            "the sign-out form was out of date: reload the page and sign out again",
        )
            .into_response();
    }
    let mut response = Redirect::to("/console/sign-in?reason=bye").into_response();
    set_cookie(&mut response, SESSION_COOKIE, "", 0);
    set_cookie(&mut response, CSRF_COOKIE, "", 0);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookies).expect("a header value"),
        );
        headers
    }

    #[test]
    fn a_cookie_is_found_among_others() {
        let headers = headers("a=1; folio_session=tok.en.x; folio_csrf=abc");
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok.en.x"));
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn the_csrf_field_must_equal_the_cookie() {
        let headers = headers("folio_csrf=0123abcd");
        assert!(csrf_matches(&headers, "0123abcd"));
        assert!(!csrf_matches(&headers, "0123abce"));
        assert!(!csrf_matches(&headers, "0123abc"));
        assert!(!csrf_matches(&headers, ""));
        assert!(!csrf_matches(&HeaderMap::new(), ""));
    }

    #[test]
    fn a_session_csrf_token_is_bound_to_its_token() {
        assert_eq!(session_csrf("a.b.c"), session_csrf("a.b.c"));
        assert_ne!(session_csrf("a.b.c"), session_csrf("a.b.d"));
        assert_eq!(session_csrf("a.b.c").len(), 64);
    }

    #[test]
    fn csrf_tokens_are_random_and_256_bits() {
        let (a, b) = (new_csrf(), new_csrf());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
