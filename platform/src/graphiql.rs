//! GraphiQL served entirely by Folio: the page at `/` and every file it loads, embedded in
//! the binary, so that it works inside a network that reaches no CDN.
//!
//! GraphiQL, React and React DOM come from the npm registry at build time, pinned by version
//! and checksum (`build.rs`); the page, its start-up script, style sheet and icon are ours,
//! in `assets/graphiql/`. Files are served under `/graphiql/<hash>/<name>`, the hash being
//! of the file's content, so that they can be cached for a year: a new build that changes a
//! file changes its address. The page itself is never cached and carries a
//! Content-Security-Policy that lets the browser load and connect to this origin only.
//!
//! The page opens with a header template for the bearer token and example tabs (open an
//! account and deposit, a balance as of an instant, the audit trail) that name one fresh
//! account, so they run in order without editing. `assets/graphiql/folio-graphiql.js`
//! explains how the token reaches every request, introspection included.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The path under which the page's files are served.
pub const ASSETS_PATH: &str = "/graphiql";
/// The GraphQL endpoint the page talks to.
pub const ENDPOINT: &str = "/graphql";
/// What the header template holds until a token is pasted over it.
pub const TOKEN_PLACEHOLDER: &str = "Bearer <paste a token from folio token>";
/// The example that opens an account and deposits into it (a teller's), with the
/// placeholders `{{account_id}}` and `{{key}}`.
pub const EXAMPLE_OPEN_AND_DEPOSIT: &str =
    include_str!("../assets/graphiql/examples/open-and-deposit.graphql");
/// The example that reads a balance as of an instant.
pub const EXAMPLE_BALANCE_AS_OF: &str =
    include_str!("../assets/graphiql/examples/balance-as-of.graphql");
/// The example that lists an account's audit trail.
pub const EXAMPLE_AUDIT_TRAIL: &str =
    include_str!("../assets/graphiql/examples/audit-trail.graphql");

/// How long a browser may keep a file whose address names its content: a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page names the files of this build and fresh example ids: always asked again.
const PAGE_CACHE: &str = "no-store";
/// This origin only. Styles allow `'unsafe-inline'` for the style elements and attributes
/// GraphiQL's editors set; fonts and images also come as `data:` URLs from GraphiQL's CSS.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";
/// Hex digits of a file's SHA-256 in its address.
const HASH_HEX_LEN: usize = 16;
/// What the page answers a request itself while no token has been typed.
const MISSING_TOKEN_MESSAGE: &str = "No bearer token yet: in the Headers pane, replace \
     <paste a token from folio token> with a token from `folio token --sub you --role teller` \
     (or auditor, supervisor). The docs load as soon as it is set.";

const PAGE_TEMPLATE: &str = include_str!("../assets/graphiql/index.html");

/// A file the page loads.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// A file GraphiQL's npm packages provide, extracted by `build.rs`.
macro_rules! from_npm {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/graphiql/", $name))
    };
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const FILES: &[Asset] = &[
    Asset {
        name: "react.production.min.js",
        content_type: JAVASCRIPT,
        bytes: from_npm!("react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JAVASCRIPT,
        bytes: from_npm!("react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JAVASCRIPT,
        bytes: from_npm!("graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: from_npm!("graphiql.min.css"),
    },
    Asset {
        name: "LICENSE.graphiql",
        content_type: TEXT,
        bytes: from_npm!("LICENSE.graphiql"),
    },
    Asset {
        name: "LICENSE.react",
        content_type: TEXT,
        bytes: from_npm!("LICENSE.react"),
    },
    Asset {
        name: "LICENSE.react-dom",
        content_type: TEXT,
        bytes: from_npm!("LICENSE.react-dom"),
    },
    Asset {
        name: "folio-graphiql.js",
        content_type: JAVASCRIPT,
        bytes: include_bytes!("../assets/graphiql/folio-graphiql.js"),
    },
    Asset {
        name: "folio-graphiql.css",
        content_type: CSS,
        bytes: include_bytes!("../assets/graphiql/folio-graphiql.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../assets/graphiql/favicon.svg"),
    },
];

/// Each file with the hash its address carries, computed once.
static HASHED: LazyLock<Vec<(&'static Asset, String)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|asset| {
            let mut hash = hex::encode(Sha256::digest(asset.bytes));
            hash.truncate(HASH_HEX_LEN);
            (asset, hash)
        })
        .collect()
});

/// The address of the file `name`, e.g. `/graphiql/0123456789abcdef/graphiql.min.js`.
pub fn asset_url(name: &str) -> Option<String> {
    HASHED
        .iter()
        .find(|(asset, _)| asset.name == name)
        .map(|(asset, hash)| format!("{ASSETS_PATH}/{hash}/{}", asset.name))
}

/// The page's HTML: every file by its address, and the configuration `folio-graphiql.js`
/// starts GraphiQL with. `account_id` and `now` go into the examples' variables.
pub fn page(account_id: Uuid, now: chrono::DateTime<Utc>) -> String {
    let mut html = PAGE_TEMPLATE
        .replace("{{endpoint}}", ENDPOINT)
        .replace("{{config}}", &script_json(&config(account_id, now)));
    for (asset, _) in HASHED.iter() {
        let placeholder = format!("{{{{{}}}}}", asset.name);
        if let Some(url) = asset_url(asset.name) {
            html = html.replace(&placeholder, &url);
        }
    }
    assert!(
        !html.contains("{{"),
        "the GraphiQL template names a file that is not embedded"
    );
    html
}

/// What `folio-graphiql.js` reads from the page.
fn config(account_id: Uuid, now: chrono::DateTime<Utc>) -> serde_json::Value {
    let key = account_id.simple().to_string();
    let key = &key[..12];
    let end_of_day = format!("{}T23:59:59Z", now.date_naive());
    let pretty = |value: serde_json::Value| {
        serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
    };
    let headers = pretty(json!({ "Authorization": TOKEN_PLACEHOLDER }));
    json!({
        "endpoint": ENDPOINT,
        "tokenPlaceholder": TOKEN_PLACEHOLDER,
        "missingTokenMessage": MISSING_TOKEN_MESSAGE,
        "headers": headers,
        "tabs": [
            {
                // Arguments written inline: GraphiQL 4.1.2 drops the first tab's variables
                // when it opens without stored tabs.
                "query": EXAMPLE_OPEN_AND_DEPOSIT
                    .replace("{{account_id}}", &account_id.to_string())
                    .replace("{{key}}", key),
                "headers": headers,
            },
            {
                "query": EXAMPLE_BALANCE_AS_OF,
                "variables": pretty(json!({ "accountId": account_id, "asOf": end_of_day })),
                "headers": headers,
            },
            {
                "query": EXAMPLE_AUDIT_TRAIL,
                "variables": pretty(json!({ "filter": { "accountId": account_id } })),
                "headers": headers,
            },
        ],
    })
}

/// JSON safe inside a `<script>` element: `<`, `>` and `&` escaped, which JSON allows in
/// strings (the only place they can occur).
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `GET /`: the page, with fresh example ids.
pub async fn page_handler() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page(Uuid::new_v4(), Utc::now()),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /graphiql/{hash}/{name}`: an embedded file, when the hash is this build's.
pub async fn asset(Path((hash, name)): Path<(String, String)>) -> Response {
    let Some((asset, _)) = HASHED
        .iter()
        .find(|(asset, current)| asset.name == name && *current == hash)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, IMMUTABLE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The routes of the page's files; the page itself is routed by the caller.
pub fn routes() -> Router {
    Router::new().route(&format!("{ASSETS_PATH}/{{hash}}/{{name}}"), get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> String {
        page(Uuid::nil(), Utc::now())
    }

    #[test]
    fn the_page_names_every_file_by_its_address_and_nothing_outside() {
        let html = rendered();
        for name in [
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "graphiql.min.css",
            "folio-graphiql.js",
            "folio-graphiql.css",
            "favicon.svg",
        ] {
            let url = asset_url(name).expect("an embedded file");
            assert!(html.contains(&format!("\"{url}\"")), "{name} in {html}");
        }
        assert!(!html.contains("://"), "{html}");
    }

    #[test]
    fn the_configuration_cannot_close_its_script_element() {
        let json = script_json(&json!({ "query": "</script><script>alert(1)</script>" }));
        assert!(!json.contains('<'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["query"], "</script><script>alert(1)</script>");
    }

    #[test]
    fn examples_share_one_account_and_keys_differ_per_page() {
        let id = Uuid::new_v4();
        let config = config(id, Utc::now());
        let tabs = config["tabs"].as_array().expect("tabs");
        assert_eq!(tabs.len(), 3);
        for tab in tabs {
            let query = tab["query"].as_str().expect("query text");
            let variables = tab["variables"].as_str().unwrap_or_default();
            assert!(!query.contains("{{"), "{query}");
            assert!(
                query.contains(&id.to_string()) || variables.contains(&id.to_string()),
                "{query}{variables}"
            );
            let headers = tab["headers"].as_str().expect("headers");
            assert!(headers.contains(TOKEN_PLACEHOLDER), "{headers}");
        }
        let other = super::config(Uuid::new_v4(), Utc::now());
        assert_ne!(config["tabs"][0]["query"], other["tabs"][0]["query"]);
    }
}
