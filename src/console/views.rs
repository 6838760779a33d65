//! The console's markup: one layout, the sign-in page and the small pieces every page uses
//! (maud escapes every value it is given).

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};
use platform::{Capability, Principal};

use super::{Refusal, session::Session};

/// The console's sections, in the order of its navigation, with what it takes to see each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    Accounts,
    Balances,
    Audit,
    Access,
    Adjustments,
    Periods,
    Integrity,
}

impl Section {
    pub const ALL: [Self; 7] = [
        Self::Accounts,
        Self::Balances,
        Self::Audit,
        Self::Access,
        Self::Adjustments,
        Self::Periods,
        Self::Integrity,
    ];

    fn title(self) -> &'static str {
        match self {
            Self::Accounts => "Accounts",
            Self::Balances => "Balances",
            Self::Audit => "Audit trail",
            Self::Access => "Access log",
            Self::Adjustments => "Adjustments",
            Self::Periods => "Period closes",
            Self::Integrity => "Integrity",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Self::Accounts => "/console/accounts",
            Self::Balances => "/console/balances",
            Self::Audit => "/console/audit",
            Self::Access => "/console/access",
            Self::Adjustments => "/console/adjustments",
            Self::Periods => "/console/periods",
            Self::Integrity => "/console/integrity",
        }
    }

    /// What a caller must hold to see the section (`platform::policy`).
    pub fn capability(self) -> Capability {
        match self {
            Self::Accounts | Self::Balances => Capability::ReadReports,
            Self::Audit => Capability::ReviewAuditTrail,
            Self::Access => Capability::ReadAccessLog,
            Self::Adjustments => Capability::ReadAdjustments,
            Self::Periods => Capability::ReadPeriodReports,
            Self::Integrity => Capability::VerifyIntegrity,
        }
    }

    pub fn visible_to(self, principal: &Principal) -> bool {
        self.capability().allows(principal)
    }
}

/// A whole page: header with who is signed in and sign-out, navigation limited to what the
/// caller's roles may see, then `body` under the heading `title`.
pub(crate) fn page(session: &Session, section: Section, title: &str, body: Markup) -> Response {
    let principal = session.principal();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Folio console" }
                    nav aria-label="Console" {
                        ul {
                            @for item in Section::ALL {
                                @if item.visible_to(principal) {
                                    li {
                                        @if item == section {
                                            a href=(item.href()) aria-current="page" { (item.title()) }
                                        } @else {
                                            a href=(item.href()) { (item.title()) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/console/sign-out" {
                        span.who {
                            "Signed in as " strong { (principal.actor) }
                            " (" (principal.role_names().join(", ")) ")"
                        }
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    markup.into_response()
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Folio" }
            // No favicon request: the console fetches nothing it does not serve.
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/console/console.css";
        }
    }
}

/// The sign-in page: a token field, the CSRF field, and a notice or an error.
pub(crate) fn sign_in(csrf: &str, notice: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.signin id="main" {
                    h1 { "Folio console" }
                    @if let Some(notice) = notice {
                        p.notice role="status" { (notice) }
                    }
                    @if let Some(error) = error {
                        p.error role="alert" { (error) }
                    }
                    form method="post" action="/console/sign-in" {
                        label for="token" { "Bearer token" }
                        p.hint id="token-hint" {
                            "Paste the token you were given (" code { "folio token --sub NAME --role auditor" } ")."
                            " It stays in this browser's session cookie, which ends when the token does."
                        }
                        textarea id="token" name="token" rows="4" required
                            autocomplete="off" spellcheck="false" aria-describedby="token-hint" {}
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// An error panel for a refusal of the API, naming the field when there is one.
pub(crate) fn refusal(refusal: &Refusal) -> Markup {
    html! {
        div.error role="alert" {
            strong { (refusal.code.as_str()) }
            ": " (refusal.message)
            @if let Some(field) = &refusal.field {
                " (" code { (field) } ")"
            }
        }
    }
}

/// A page that could not be shown, with its HTTP status.
pub(crate) fn refused(session: &Session, section: Section, title: &str, why: &Refusal) -> Response {
    let body = html! {
        (refusal(why))
        @if why.code == ledger::ErrorCode::Forbidden {
            p { "Your roles do not allow this page. Use the navigation above for the pages you may see." }
        }
    };
    let mut response = page(session, section, title, body);
    *response.status_mut() = why.status();
    response
}

/// `amount` (a decimal string in major units) with its digits grouped by thousands, and the
/// currency code after it: `-1,234,567.89 USD`.
pub(crate) fn money(amount: &str, currency: &str) -> String {
    let (sign, digits) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    format!("{sign}{grouped}{fraction} {currency}")
}

/// An RFC 3339 instant as a reader in `zone` writes it: `2026-03-03 17:00:00 CET`.
pub(crate) fn when(text: &str, zone: Tz) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&Utc)
                .with_timezone(&zone)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|_| text.to_string())
}

/// A labelled text input.
pub(crate) fn field(label: &str, name: &str, kind: &str, value: &str) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value);
        }
    }
}

/// The time-zone input, offering common IANA names.
pub(crate) fn zone_field(value: &str) -> Markup {
    const COMMON: [&str; 10] = [
        "UTC",
        "Europe/London",
        "Europe/Madrid",
        "Europe/Berlin",
        "America/New_York",
        "America/Chicago",
        "America/Los_Angeles",
        "Asia/Tokyo",
        "Asia/Singapore",
        "Australia/Sydney",
    ];
    html! {
        div.field {
            label for="tz" { "Time zone" }
            input id="tz" name="tz" type="text" list="zones" value=(value);
            datalist id="zones" {
                @for zone in COMMON { option value=(zone) {} }
            }
        }
    }
}

/// A link styled as a button (downloads, next pages).
pub(crate) fn link_button(href: &str, text: &str) -> Markup {
    html! { a.button href=(href) { (text) } }
}

/// Text for a JSON value in a cell: strings bare, others as JSON.
pub(crate) fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A code-like value (ids, hashes) shortened to its first characters, whole in the title.
pub(crate) fn short(value: &str) -> Markup {
    let shown: String = value.chars().take(8).collect();
    html! { code title=(value) { (shown) @if value.chars().count() > 8 { "…" } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_group_thousands_and_keep_their_sign_and_minor_units() {
        assert_eq!(money("1234567.89", "USD"), "1,234,567.89 USD");
        assert_eq!(money("-1000.00", "EUR"), "-1,000.00 EUR");
        assert_eq!(money("999", "JPY"), "999 JPY");
        assert_eq!(money("0.50", "GBP"), "0.50 GBP");
    }

    #[test]
    fn instants_are_shown_in_the_reader_zone() {
        let zone: Tz = "Europe/Madrid".parse().expect("a zone");
        assert_eq!(
            when("2026-03-03T16:00:00Z", zone),
            "2026-03-03 17:00:00 CET"
        );
        assert_eq!(when("not a date", zone), "not a date");
    }
}
