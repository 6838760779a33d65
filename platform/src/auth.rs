//! Bearer-token authentication (HS256 JWT) and the roles that decide what a caller may do.
//!
//! Claims: `sub` (the actor, recorded in every event's metadata), `exp`, optionally
//! `iat` and `nbf`, and `roles`, an array of role names. A request without a valid
//! token is refused with HTTP 401 before GraphQL runs; a valid token without the needed
//! role gets the GraphQL error FORBIDDEN from the field's guard.
//!
//! A token is valid only between `nbf` (or `iat`) and `exp`, give or take
//! [`TOKEN_CLOCK_LEEWAY`], for at most the configured lifetime (`FOLIO_TOKEN_TTL_MAX`,
//! default [`TOKEN_TTL_MAX_DEFAULT`]), and names a `sub` of 1 to [`SUBJECT_LEN_MAX`]
//! printable characters: anything else is 401, because `sub` is written into the
//! metadata (and the hash) of every event the token causes.

use std::{collections::BTreeSet, fmt, net::SocketAddr, str::FromStr, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::access_log::{Access, AccessLog};

/// The longest `sub` accepted; it is written into every event's metadata.
pub const SUBJECT_LEN_MAX: usize = 200;
/// How long a token minted by `folio token` lives unless told otherwise.
pub const TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(12 * 60 * 60);
/// The longest lifetime a token may have (`exp` minus `iat`, or minus now without
/// `iat`) unless `FOLIO_TOKEN_TTL_MAX` says otherwise.
pub const TOKEN_TTL_MAX_DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);
/// How far the issuer's clock may be from ours when checking `exp`, `nbf` and `iat`.
pub const TOKEN_CLOCK_LEEWAY: Duration = Duration::from_secs(30);
/// The longest bearer token accepted, in characters.
pub const TOKEN_LEN_MAX: usize = 4_096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Opens accounts and moves money.
    Teller,
    /// Freezes, unfreezes and closes accounts.
    Supervisor,
    /// Reads reports and the audit trail, and nothing else.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Teller, Role::Supervisor, Role::Auditor];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Teller => "teller",
            Self::Supervisor => "supervisor",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: use teller, supervisor or auditor"))
    }
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub actor: String,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_string()).collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing bearer token: send the header 'Authorization: Bearer <token>' (mint one with 'folio token')"
    )]
    Missing,
    #[error("the Authorization header must be 'Bearer <token>'")]
    Malformed,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is refused: {0}")]
    Invalid(String),
}

/// The keys tokens are signed and checked with, and the longest lifetime accepted.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_max: Duration,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys for `secret`, accepting lifetimes up to [`TOKEN_TTL_MAX_DEFAULT`].
    pub fn new(secret: &SecretString) -> Self {
        Self::with_ttl_max(secret, TOKEN_TTL_MAX_DEFAULT)
    }

    /// Keys for `secret`, accepting lifetimes up to `ttl_max`.
    pub fn with_ttl_max(secret: &SecretString, ttl_max: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = TOKEN_CLOCK_LEEWAY.as_secs();
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl_max,
        }
    }

    /// The longest lifetime a token may have.
    pub fn ttl_max(&self) -> Duration {
        self.ttl_max
    }

    /// A signed token for `sub` with `roles`, valid for `ttl` (at most the lifetime cap).
    pub fn mint(&self, sub: &str, roles: &[Role], ttl: Duration) -> Result<String, AuthError> {
        if ttl > self.ttl_max {
            return Err(AuthError::Invalid(format!(
                "a token may live at most {} hours (FOLIO_TOKEN_TTL_MAX)",
                self.ttl_max.as_secs() / 3600
            )));
        }
        check_subject(sub)?;
        let now = now_secs();
        let claims = Claims {
            sub: sub.to_string(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: None,
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// The caller a token names, if it is signed with our key and unexpired.
    /// Role names this platform does not know are ignored.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_with_expiry(token)
            .map(|(principal, _)| principal)
    }

    /// Like [`Self::verify`], with the token's expiry (`exp`, seconds since the Unix epoch),
    /// for a session that must end no later than its token (the console's cookie).
    pub fn verify_with_expiry(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        if token.len() > TOKEN_LEN_MAX {
            return Err(AuthError::Invalid(format!(
                "a bearer token is at most {TOKEN_LEN_MAX} characters"
            )));
        }
        refuse_critical_headers(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| refusal(e.kind()))?;
        let claims = data.claims;
        let now = now_secs();
        let leeway = TOKEN_CLOCK_LEEWAY.as_secs();
        if let Some(iat) = claims.iat
            && iat > now + leeway
        {
            return Err(AuthError::Invalid(
                "iat (issued at) is in the future".into(),
            ));
        }
        let lifetime = claims.exp.saturating_sub(claims.iat.unwrap_or(now));
        if lifetime > self.ttl_max.as_secs().saturating_add(leeway) {
            return Err(AuthError::Invalid(format!(
                "the token lives longer than the {} hours this platform accepts (FOLIO_TOKEN_TTL_MAX)",
                self.ttl_max.as_secs() / 3600
            )));
        }
        check_subject(&claims.sub)?;
        let actor = claims.sub.trim().to_string();
        let roles = claims
            .roles
            .iter()
            .filter_map(|r| r.parse::<Role>().ok())
            .collect();
        Ok((Principal { actor, roles }, claims.exp))
    }

    /// The caller named by an `Authorization` header value.
    pub fn verify_header(&self, header: Option<&HeaderValue>) -> Result<Principal, AuthError> {
        let raw = header.ok_or(AuthError::Missing)?;
        let text = raw.to_str().map_err(|_| AuthError::Malformed)?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        self.verify(token)
    }
}

/// `sub` is 1 to [`SUBJECT_LEN_MAX`] printable characters (after trimming).
fn check_subject(raw: &str) -> Result<(), AuthError> {
    if raw.chars().any(ledger::text::is_unprintable) {
        return Err(AuthError::Invalid(
            "sub must not contain control, invisible or direction-changing characters".into(),
        ));
    }
    let sub = raw.trim();
    if sub.is_empty() || sub.chars().count() > SUBJECT_LEN_MAX {
        return Err(AuthError::Invalid(format!(
            "sub must be 1 to {SUBJECT_LEN_MAX} characters"
        )));
    }
    if sub == crate::access_log::UNAUTHENTICATED_ACTOR {
        return Err(AuthError::Invalid(format!(
            "sub must not be {sub}: the access log records refused callers under that name"
        )));
    }
    Ok(())
}

/// Why a token is refused, in our words (the library's are for its developers).
fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    AuthError::Invalid(
        match kind {
            K::ExpiredSignature => return AuthError::Expired,
            K::ImmatureSignature => "it is not valid yet (nbf is in the future)",
            K::InvalidSignature => "its signature does not match this platform's secret",
            K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
                "it must be signed with HS256"
            }
            K::MissingRequiredClaim(_) => "it must carry the claims sub and exp",
            K::InvalidAudience | K::InvalidIssuer | K::InvalidSubject => {
                "it carries a claim this platform does not accept"
            }
            K::Json(_) | K::Utf8(_) | K::Base64(_) | K::InvalidToken => {
                "it is not a well-formed JWT (header.payload.signature, base64url JSON: sub a string, exp a whole number of seconds, roles an array)"
            }
            _ => "it cannot be accepted",
        }
        .to_string(),
    )
}

/// RFC 7515 §4.1.11: a token whose header lists critical extensions this platform does not
/// understand (it understands none) must be refused.
fn refuse_critical_headers(token: &str) -> Result<(), AuthError> {
    // A header that does not decode is refused by the decoder with its own reason.
    let critical = token
        .split('.')
        .next()
        .and_then(base64url)
        .and_then(|header| serde_json::from_slice::<serde_json::Value>(&header).ok())
        .is_some_and(|header| header.get("crit").is_some());
    if critical {
        return Err(AuthError::Invalid(
            "its header lists critical extensions (crit), which this platform does not understand"
                .into(),
        ));
    }
    Ok(())
}

/// URL-safe base64 without padding, as JWT segments are written.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let produced = chunk.len().saturating_sub(1);
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..produced]);
    }
    Some(out)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Extracts the authenticated caller, or answers 401. Needs an `Extension<Arc<TokenKeys>>` layer.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(keys) = parts.extensions.get::<Arc<TokenKeys>>() else {
            tracing::error!("TokenKeys extension missing from the router");
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        match keys.verify_header(parts.headers.get(header::AUTHORIZATION)) {
            Ok(principal) => Ok(Authenticated(principal)),
            Err(error) => {
                if let Some(log) = parts.extensions.get::<AccessLog>() {
                    log.record_refusal(unauthenticated_access(parts, &error.to_string()))
                        .await;
                }
                Err(unauthorized(error))
            }
        }
    }
}

/// The longest route recorded for a refused request, in bytes.
const ROUTE_LEN_MAX: usize = 200;

/// The access-log row of a request to `parts` whose credentials were refused for `reason`
/// (HTTP 401, or a console session cookie): the method and path (cut at
/// [`ROUTE_LEN_MAX`]), where it came from, and why.
pub fn unauthenticated_access(parts: &Parts, reason: &str) -> Access {
    let mut route = format!("{} {}", parts.method, parts.uri.path());
    if route.len() > ROUTE_LEN_MAX {
        let mut end = ROUTE_LEN_MAX;
        while !route.is_char_boundary(end) {
            end -= 1;
        }
        route.truncate(end);
    }
    let client_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    Access::unauthenticated(
        route,
        Some(crate::graphql::correlation_id(&parts.headers)),
        client_addr,
        reason,
    )
}

/// HTTP 401 with a GraphQL-shaped body, so GraphQL clients show the reason.
pub fn unauthorized(error: AuthError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": error.to_string(), "extensions": { "code": "UNAUTHENTICATED" } }]
    });
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"folio\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&SecretString::from(secret.to_string()))
    }

    #[test]
    fn a_minted_token_verifies_with_its_subject_and_roles() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let token = keys
            .mint(
                "alice",
                &[Role::Teller, Role::Auditor],
                Duration::from_secs(60),
            )
            .expect("mint");
        let principal = keys.verify(&token).expect("verify");
        assert_eq!(principal.actor, "alice");
        assert_eq!(
            principal.roles,
            BTreeSet::from([Role::Teller, Role::Auditor])
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = keys("0123456789abcdef0123456789abcdef")
            .mint("mallory", &[Role::Supervisor], Duration::from_secs(60))
            .expect("mint");
        let other = keys("ffffffffffffffffffffffffffffffff");
        assert!(matches!(other.verify(&token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let claims = Claims {
            sub: "bob".into(),
            exp: now_secs() - 3600,
            iat: None,
            nbf: None,
            roles: vec!["teller".into()],
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("encode");
        assert_eq!(keys.verify(&token), Err(AuthError::Expired));
    }

    #[test]
    fn the_header_must_be_a_bearer_token() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        assert_eq!(keys.verify_header(None), Err(AuthError::Missing));
        let basic = HeaderValue::from_static("Basic YWxhZGRpbjpvcGVuc2VzYW1l");
        assert_eq!(keys.verify_header(Some(&basic)), Err(AuthError::Malformed));
    }

    fn signed(keys: &TokenKeys, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &keys.encoding)
            .expect("encode")
    }

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            exp: now_secs() + 600,
            iat: Some(now_secs()),
            nbf: None,
            roles: vec!["teller".into()],
        }
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let mut early = claims("alice");
        early.nbf = Some(now_secs() + 3600);
        assert!(matches!(
            keys.verify(&signed(&keys, &early)),
            Err(AuthError::Invalid(_))
        ));
        let mut future = claims("alice");
        future.iat = Some(now_secs() + 3600);
        future.exp = now_secs() + 7200;
        let Err(AuthError::Invalid(reason)) = keys.verify(&signed(&keys, &future)) else {
            panic!("a token issued in the future was accepted");
        };
        assert!(reason.contains("iat"), "{reason}");
        // Within the leeway, a slightly fast issuer clock is fine.
        let mut skewed = claims("alice");
        skewed.nbf = Some(now_secs() + 5);
        skewed.iat = Some(now_secs() + 5);
        assert!(keys.verify(&signed(&keys, &skewed)).is_ok());
    }

    #[test]
    fn a_token_living_longer_than_the_cap_is_refused() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let mut forever = claims("alice");
        forever.exp = 7_258_118_400; // 2200-01-01
        forever.iat = None;
        let Err(AuthError::Invalid(reason)) = keys.verify(&signed(&keys, &forever)) else {
            panic!("a token valid until 2200 was accepted");
        };
        assert!(reason.contains("FOLIO_TOKEN_TTL_MAX"), "{reason}");
        assert!(
            keys.mint("alice", &[Role::Teller], TOKEN_TTL_MAX_DEFAULT * 2)
                .is_err()
        );
        assert!(
            keys.mint("alice", &[Role::Teller], TOKEN_TTL_MAX_DEFAULT)
                .is_ok()
        );
    }

    #[test]
    fn a_subject_with_control_characters_too_long_or_posing_as_the_unauthenticated_is_refused() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        for sub in [
            "ali\u{0}ce",
            "bob\n",
            "\u{1b}[31mred",
            &"x".repeat(SUBJECT_LEN_MAX + 1),
            "  ",
            crate::access_log::UNAUTHENTICATED_ACTOR,
        ] {
            assert!(
                matches!(
                    keys.verify(&signed(&keys, &claims(sub))),
                    Err(AuthError::Invalid(_))
                ),
                "{sub:?}"
            );
        }
        assert!(keys.verify(&signed(&keys, &claims("José Müller"))).is_ok());
    }

    #[test]
    fn unknown_role_names_grant_nothing() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let claims = Claims {
            sub: "carol".into(),
            exp: now_secs() + 60,
            iat: None,
            nbf: None,
            roles: vec!["admin".into(), "auditor".into()],
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("encode");
        assert_eq!(
            keys.verify(&token).map(|p| p.roles),
            Ok(BTreeSet::from([Role::Auditor]))
        );
    }
}
