//! The console's pages. Each parses its form (refusals name the field), asks the schema
//! through [`Console::query`] as the signed-in caller, and renders the answer; CSV
//! downloads call the report functions of `/reports/*.csv` with the same caller.

use axum::{
    Extension,
    extract::{Path, Query},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use reporting::reports::{self, REPORT_ROWS_MAX};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Console, Refusal,
    session::Session,
    views::{
        self, Section, field, link_button, money, page, refused, short, text, when, zone_field,
    },
};

/// Rows per page of the console's tables.
const PAGE_ROWS: i32 = 100;

/// A form's time zone: an IANA name, UTC when left empty.
fn zone(text: &str) -> Result<Tz, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Tz::UTC);
    }
    text.parse::<Tz>().map_err(|_| {
        Refusal::validation(
            "tz",
            format!("{text:?} is not an IANA time zone such as Europe/Madrid"),
        )
    })
}

/// A form's date or date and time, read in `zone`: a date is its first instant (`end`:
/// false) or its last microsecond (`end`: true); a date and time (`2026-03-03T17:00`, as a
/// date-time input sends it) is that wall-clock time. `None` when left empty.
fn moment(name: &str, text: &str, zone: Tz, end: bool) -> Result<Option<DateTime<Utc>>, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Refusal::validation(
            name,
            "must be a date such as 2026-03-31, or a date and time such as 2026-03-31T17:00",
        )
    };
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return reports::day_bound(date, zone, end)
            .map(Some)
            .ok_or_else(invalid);
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| invalid())?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| Refusal::validation(name, format!("{text} does not exist in {zone}")))
}

/// A form's UUID, `None` when left empty.
pub(crate) fn uuid(name: &str, text: &str) -> Result<Option<uuid::Uuid>, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| Refusal::validation(name, "must be a UUID such as 0192…-…"))
}

/// An RFC 3339 text for GraphQL.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Non-empty trimmed text, for optional GraphQL arguments.
pub(crate) fn given(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// `path?name=value&…` with the non-empty pairs, percent-encoded.
pub(crate) fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v.trim())))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A page with its form always shown, and under it the answer or the refusal (with the
/// refusal's status). FORBIDDEN hides the form too.
pub(crate) fn answer(
    session: &Session,
    section: Section,
    title: &str,
    form: Markup,
    result: Result<Markup, Refusal>,
) -> Response {
    match result {
        Ok(body) => page(session, section, title, html! { (form) (body) }),
        Err(refusal) if refusal.code == ledger::ErrorCode::Forbidden => {
            refused(session, section, title, &refusal)
        }
        Err(refusal) => {
            let status = refusal.status();
            let mut response = page(
                session,
                section,
                title,
                html! { (form) (views::refusal(&refusal)) },
            );
            *response.status_mut() = status;
            response
        }
    }
}

/// The "next page" link of a connection, keeping the form's other fields.
pub(crate) fn next_page(connection: &Value, path: &str, pairs: &[(&str, &str)]) -> Markup {
    let info = &connection["pageInfo"];
    let Some(cursor) = info["endCursor"]
        .as_str()
        .filter(|_| info["hasNextPage"] == true)
    else {
        return html! {};
    };
    let mut pairs = pairs.to_vec();
    pairs.retain(|(k, _)| *k != "after");
    pairs.push(("after", cursor));
    html! { p.pager { (link_button(&url(path, &pairs), "Next page")) } }
}

/// The two downloads of a report: plain CSV, and CSV with a byte-order mark for Excel.
fn csv_links(report: &str, pairs: &[(&str, &str)]) -> Markup {
    let link = |bom: &'static str| {
        let mut all = pairs.to_vec();
        all.push(("bom", bom));
        url(&format!("/console/reports/{report}"), &all)
    };
    html! {
        p {
            (link_button(&link(""), "Download CSV"))
            " "
            (link_button(&link("true"), "CSV for Excel"))
        }
    }
}

pub(crate) fn nodes(connection: &Value) -> &[Value] {
    connection["nodes"].as_array().map_or(&[], Vec::as_slice)
}

// ---------------------------------------------------------------------------------------
// Accounts

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AccountsForm {
    holder: String,
    currency: String,
    status: String,
    after: String,
}

const ACCOUNTS_QUERY: &str =
    "query ConsoleAccounts($filter: AccountFilter, $first: Int, $after: String) {
  accounts(filter: $filter, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id holder currency balance availableBalance status openedAt }
  }
}";

/// `GET /console/accounts`: find accounts by part of the holder's name, currency, status.
pub(crate) async fn accounts(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<AccountsForm>,
) -> Response {
    let title = "Accounts";
    let statuses = ["", "OPEN", "FROZEN", "CLOSED"];
    let search = html! {
        form.filters method="get" action="/console/accounts" role="search" {
            (field("Holder name contains", "holder", "search", &form.holder))
            (field("Currency", "currency", "text", &form.currency))
            div.field {
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for status in statuses {
                        option value=(status) selected[form.status == status] {
                            @if status.is_empty() { "Any" } @else { (status) }
                        }
                    }
                }
            }
            button type="submit" { "Search" }
        }
    };
    let mut filter = serde_json::Map::new();
    if let Some(holder) = given(&form.holder) {
        filter.insert("holder".into(), json!(holder));
    }
    if let Some(currency) = given(&form.currency) {
        filter.insert("currency".into(), json!(currency.to_uppercase()));
    }
    if let Some(status) = given(&form.status) {
        filter.insert("status".into(), json!(status));
    }
    let variables = json!({
        "filter": filter, "first": PAGE_ROWS, "after": given(&form.after),
    });
    let result = console
        .query(&session.request, ACCOUNTS_QUERY, variables)
        .await
        .map(|data| {
            let connection = &data["accounts"];
            let rows = nodes(connection);
            html! {
                @if rows.is_empty() {
                    p { "No account matches." }
                } @else {
                    table {
                        caption { "Accounts matching the search, by account id" }
                        thead { tr {
                            th scope="col" { "Holder" }
                            th scope="col" { "Account" }
                            th scope="col" { "Status" }
                            th scope="col" class="amount" { "Balance" }
                            th scope="col" class="amount" { "Available" }
                            th scope="col" { "Opened" }
                        } }
                        tbody {
                            @for a in rows {
                                @let id = text(&a["id"]);
                                @let currency = text(&a["currency"]);
                                tr {
                                    td { a href={ "/console/accounts/" (id) } { (text(&a["holder"])) } }
                                    td { (short(&id)) }
                                    td { (text(&a["status"])) }
                                    td.amount { (money(&text(&a["balance"]), &currency)) }
                                    td.amount { (money(&text(&a["availableBalance"]), &currency)) }
                                    td { (when(&text(&a["openedAt"]), Tz::UTC)) }
                                }
                            }
                        }
                    }
                    (next_page(connection, "/console/accounts", &[
                        ("holder", &form.holder), ("currency", &form.currency), ("status", &form.status),
                    ]))
                }
            }
        });
    answer(&session, Section::Accounts, title, search, result)
}

// ---------------------------------------------------------------------------------------
// One account

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AccountForm {
    #[serde(rename = "asOf")]
    as_of: String,
    tz: String,
    from: String,
    to: String,
    after: String,
}

const ACCOUNT_QUERY: &str = "query ConsoleAccount($id: UUID!, $now: DateTime!, $asOf: DateTime!, $historical: Boolean!, $from: DateTime!, $to: DateTime!, $first: Int, $after: String) {
  current: balanceAsOf(accountId: $id, asOf: $now) { holder currency balance version lastChangeAt }
  historical: balanceAsOf(accountId: $id, asOf: $asOf) @include(if: $historical) { balance version lastChangeAt }
  statement(accountId: $id, from: $from, to: $to, first: $first, after: $after) {
    openingBalance closingBalance totalCredits totalDebits entryCount
    entries {
      pageInfo { hasNextPage endCursor }
      nodes { eventId recordedAt valueDate kind amount balanceAfter reference counterpartyAccountId reversesEventId reversedByEventId }
    }
  }
  ACCOUNT_FIELD
}";

/// The accounts service's view of the account: available balance and holds.
const ACCOUNT_FIELD: &str = "account(id: $id) {
    status availableBalance heldAmount overdraftLimit
    holds { id amount capturedAmount toAccountId status expiresAt reference placedAt }
  }";

/// `GET /console/accounts/{id}`: balances (current, available, at a chosen instant), the
/// statement for a period with its CSV, and the account's holds.
pub(crate) async fn account(
    Extension(console): Extension<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(form): Query<AccountForm>,
) -> Response {
    let title = "Account";
    let result = account_body(&console, &session, &id, &form).await;
    match result {
        Ok((title, body)) => page(&session, Section::Accounts, &title, body),
        Err(refusal) => {
            // The form again with what was typed, so a mistyped date is fixed in place.
            let retry = matches!(
                refusal.field.as_deref(),
                Some("from" | "to" | "asOf" | "tz")
            );
            let back = html! {
                (views::refusal(&refusal))
                @if retry {
                    form.filters method="get" action={ "/console/accounts/" (id) } {
                        (field("From (value date)", "from", "date", &form.from))
                        (field("To (value date)", "to", "date", &form.to))
                        div.field {
                            label for="asOf" { "Balance at (value date and time)" }
                            input id="asOf" name="asOf" type="datetime-local" step="1" value=(form.as_of);
                        }
                        (zone_field(&form.tz))
                        button type="submit" { "Show" }
                    }
                }
                p { a href="/console/accounts" { "Back to the accounts" } }
            };
            let mut response = page(&session, Section::Accounts, title, back);
            *response.status_mut() = refusal.status();
            response
        }
    }
}

async fn account_body(
    console: &Console,
    session: &Session,
    id: &str,
    form: &AccountForm,
) -> Result<(String, Markup), Refusal> {
    let id =
        uuid("accountId", id)?.ok_or_else(|| Refusal::validation("accountId", "is required"))?;
    let zone = zone(&form.tz)?;
    let now = Utc::now();
    let today = now.with_timezone(&zone).date_naive();
    let month_start = today.with_day(1).unwrap_or(today);
    let from_text = given(&form.from).map_or_else(|| month_start.to_string(), str::to_string);
    let to_text = given(&form.to).map_or_else(|| today.to_string(), str::to_string);
    let from = moment("from", &from_text, zone, false)?.unwrap_or(now);
    let to = moment("to", &to_text, zone, true)?.unwrap_or(now);
    let as_of = moment("asOf", &form.as_of, zone, false)?;
    let query = ACCOUNT_QUERY.replace(
        "ACCOUNT_FIELD",
        if console.accounts { ACCOUNT_FIELD } else { "" },
    );
    let variables = json!({
        "id": id, "now": rfc3339(now), "asOf": rfc3339(as_of.unwrap_or(now)),
        "historical": as_of.is_some(), "from": rfc3339(from), "to": rfc3339(to),
        "first": PAGE_ROWS, "after": given(&form.after),
    });
    let data = console.query(&session.request, &query, variables).await?;
    let current = &data["current"];
    if current.is_null() {
        return Err(Refusal {
            code: ledger::ErrorCode::AccountNotFound,
            message: format!("no account {id} is known to reporting"),
            field: Some("accountId".into()),
        });
    }
    let currency = text(&current["currency"]);
    let holder = text(&current["holder"]);
    let account = &data["account"];
    let statement = &data["statement"];
    let id_text = id.to_string();
    let tz_name = zone.name();
    let csv = csv_links(
        "statement.csv",
        &[
            ("accountId", &id_text),
            ("from", &from_text),
            ("to", &to_text),
            ("tz", tz_name),
        ],
    );
    let path = format!("/console/accounts/{id}");
    let body = html! {
        p.subtitle { "Account " code { (id) } " in " (currency) }
        section aria-labelledby="balances" {
            h2 id="balances" { "Balances" }
            dl.figures {
                div { dt { "Balance (as projected now)" } dd.amount { (money(&text(&current["balance"]), &currency)) } }
                @if !account.is_null() {
                    div { dt { "Available" } dd.amount { (money(&text(&account["availableBalance"]), &currency)) } }
                    div { dt { "Held" } dd.amount { (money(&text(&account["heldAmount"]), &currency)) } }
                    div { dt { "Overdraft limit" } dd.amount { (money(&text(&account["overdraftLimit"]), &currency)) } }
                    div { dt { "Status" } dd { (text(&account["status"])) } }
                }
                div { dt { "Last change" } dd { (when(&text(&current["lastChangeAt"]), zone)) } }
            }
            form.filters method="get" action=(path) {
                div.field {
                    label for="asOf" { "Balance at (value date and time)" }
                    input id="asOf" name="asOf" type="datetime-local" step="1" value=(form.as_of);
                }
                (zone_field(tz_name))
                input type="hidden" name="from" value=(from_text);
                input type="hidden" name="to" value=(to_text);
                button type="submit" { "Show balance" }
            }
            @if let Some(as_of) = as_of {
                @let historical = &data["historical"];
                p.answer role="status" {
                    "Balance at " (when(&rfc3339(as_of), zone)) ": "
                    @if historical.is_null() {
                        "the account did not exist yet."
                    } @else {
                        strong.amount { (money(&text(&historical["balance"]), &currency)) }
                    }
                }
            }
        }
        section aria-labelledby="statement" {
            h2 id="statement" { "Statement" }
            form.filters method="get" action=(path) {
                (field("From (value date)", "from", "date", &from_text))
                (field("To (value date)", "to", "date", &to_text))
                (zone_field(tz_name))
                button type="submit" { "Show statement" }
            }
            (csv)
            table {
                caption { "Movements valued from " (from_text) " to " (to_text) " (" (tz_name) "), "
                    (text(&statement["entryCount"])) " in all" }
                thead { tr {
                    th scope="col" { "Value date" }
                    th scope="col" { "Booked" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Reference" }
                    th scope="col" class="amount" { "Amount" }
                    th scope="col" class="amount" { "Balance after" }
                } }
                tbody {
                    tr.opening {
                        td colspan="5" { "Opening balance" }
                        td.amount { (money(&text(&statement["openingBalance"]), &currency)) }
                    }
                    @for e in nodes(&statement["entries"]) {
                        tr {
                            td { (when(&text(&e["valueDate"]), zone)) }
                            td { (when(&text(&e["recordedAt"]), zone)) }
                            td {
                                (text(&e["kind"]))
                                @if !e["reversedByEventId"].is_null() { " (reversed)" }
                            }
                            td {
                                (text(&e["reference"]))
                                @if let Some(other) = e["counterpartyAccountId"].as_str() {
                                    " " a href={ "/console/accounts/" (other) } { "counterparty " (short(other)) }
                                }
                            }
                            td.amount { (money(&text(&e["amount"]), &currency)) }
                            td.amount { (money(&text(&e["balanceAfter"]), &currency)) }
                        }
                    }
                }
                tfoot {
                    tr {
                        th scope="row" colspan="4" { "Credits / debits" }
                        td.amount { (money(&text(&statement["totalCredits"]), &currency)) " / " (money(&text(&statement["totalDebits"]), &currency)) }
                        td {}
                    }
                    tr {
                        th scope="row" colspan="5" { "Closing balance" }
                        td.amount { (money(&text(&statement["closingBalance"]), &currency)) }
                    }
                }
            }
            (next_page(&statement["entries"], &path, &[("from", &from_text), ("to", &to_text), ("tz", tz_name)]))
        }
        @if let Some(holds) = account["holds"].as_array().filter(|h| !h.is_empty()) {
            section aria-labelledby="holds" {
                h2 id="holds" { "Holds" }
                table {
                    caption { "Holds on the account, most recently placed first" }
                    thead { tr {
                        th scope="col" { "Placed" }
                        th scope="col" { "Status" }
                        th scope="col" { "Reference" }
                        th scope="col" { "Expires" }
                        th scope="col" class="amount" { "Amount" }
                        th scope="col" class="amount" { "Captured" }
                    } }
                    tbody {
                        @for h in holds {
                            tr {
                                td { (when(&text(&h["placedAt"]), zone)) }
                                td { (text(&h["status"])) }
                                td { (text(&h["reference"])) }
                                td { @if let Some(t) = h["expiresAt"].as_str() { (when(t, zone)) } }
                                td.amount { (money(&text(&h["amount"]), &currency)) }
                                td.amount { @if let Some(c) = h["capturedAmount"].as_str() { (money(c, &currency)) } }
                            }
                        }
                    }
                }
            }
        }
        @if session_sees_audit(session) {
            p { a href=(url("/console/audit", &[("accountId", &id_text)])) { "This account's audit trail" } }
        }
    };
    Ok((holder, body))
}

fn session_sees_audit(session: &Session) -> bool {
    Section::Audit.visible_to(session.principal())
}

// ---------------------------------------------------------------------------------------
// Balances at a date

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct BalancesForm {
    #[serde(rename = "asOf")]
    as_of: String,
    tz: String,
    currency: String,
    after: String,
}

const BALANCES_QUERY: &str =
    "query ConsoleBalances($asOf: DateTime!, $currency: String, $first: Int, $after: String) {
  balancesAsOf(asOf: $asOf, currency: $currency, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { accountId holder currency balance }
    totals { currency total accounts }
  }
}";

/// `GET /console/balances`: every account's balance at the end of a chosen day in a chosen
/// time zone (default: the last day of the previous month), with totals per currency.
pub(crate) async fn balances(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<BalancesForm>,
) -> Response {
    let title = "Balances at a date";
    let result = async {
        let zone = zone(&form.tz)?;
        let today = Utc::now().with_timezone(&zone).date_naive();
        let month_end = today
            .with_day(1)
            .and_then(|d| d.checked_sub_days(Days::new(1)));
        let as_of_text = given(&form.as_of)
            .map(str::to_string)
            .or_else(|| month_end.map(|d| d.to_string()))
            .unwrap_or_default();
        let as_of = moment("asOf", &as_of_text, zone, true)?
            .ok_or_else(|| Refusal::validation("asOf", "is required"))?;
        let variables = json!({
            "asOf": rfc3339(as_of), "currency": given(&form.currency).map(str::to_uppercase),
            "first": PAGE_ROWS, "after": given(&form.after),
        });
        let data = console
            .query(&session.request, BALANCES_QUERY, variables)
            .await?;
        Ok::<_, Refusal>((as_of_text, zone, data))
    }
    .await;
    let (as_of_text, tz_name) = match &result {
        Ok((as_of, zone, _)) => (as_of.clone(), zone.name().to_string()),
        Err(_) => (form.as_of.clone(), form.tz.clone()),
    };
    let search = html! {
        form.filters method="get" action="/console/balances" {
            (field("End of day", "asOf", "date", &as_of_text))
            (zone_field(&tz_name))
            (field("Currency", "currency", "text", &form.currency))
            button type="submit" { "Show balances" }
        }
    };
    let result = result.map(|(as_of_text, _, data)| {
        let connection = &data["balancesAsOf"];
        let csv = csv_links(
            "balances.csv",
            &[("asOf", &as_of_text), ("tz", &tz_name), ("currency", &form.currency)],
        );
        html! {
            (csv)
            table {
                caption { "Totals per currency at the end of " (as_of_text) " (" (tz_name) ")" }
                thead { tr {
                    th scope="col" { "Currency" }
                    th scope="col" class="amount" { "Accounts" }
                    th scope="col" class="amount" { "Total" }
                } }
                tbody {
                    @for t in connection["totals"].as_array().map_or(&[][..], Vec::as_slice) {
                        tr {
                            th scope="row" { (text(&t["currency"])) }
                            td.amount { (text(&t["accounts"])) }
                            td.amount { (money(&text(&t["total"]), &text(&t["currency"]))) }
                        }
                    }
                }
            }
            table {
                caption { "Every account's balance at the end of " (as_of_text) ", by account id" }
                thead { tr {
                    th scope="col" { "Holder" }
                    th scope="col" { "Account" }
                    th scope="col" class="amount" { "Balance" }
                } }
                tbody {
                    @for b in nodes(connection) {
                        @let id = text(&b["accountId"]);
                        tr {
                            td { a href={ "/console/accounts/" (id) } { (text(&b["holder"])) } }
                            td { (short(&id)) }
                            td.amount { (money(&text(&b["balance"]), &text(&b["currency"]))) }
                        }
                    }
                }
            }
            (next_page(connection, "/console/balances", &[("asOf", &as_of_text), ("tz", &tz_name), ("currency", &form.currency)]))
        }
    });
    answer(&session, Section::Balances, title, search, result)
}

// ---------------------------------------------------------------------------------------
// Audit trail

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AuditForm {
    #[serde(rename = "accountId")]
    account_id: String,
    actor: String,
    #[serde(rename = "eventType")]
    event_type: String,
    #[serde(rename = "correlationId")]
    correlation_id: String,
    from: String,
    to: String,
    tz: String,
    after: String,
}

const AUDIT_QUERY: &str = "query ConsoleAudit($filter: AuditFilter!, $first: Int, $after: String) {
  auditTrail(filter: $filter, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { position eventId eventType accountId streamVersion recordedAt actor roles correlationId commandType amount currency hash previousHash }
  }
}";

/// `GET /console/audit`: the audit trail by account, actor, event type, correlation id and
/// time range, with its CSV (auditors and supervisors: compliance work, not a teller's).
pub(crate) async fn audit(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<AuditForm>,
) -> Response {
    let title = "Audit trail";
    if let Err(refusal) = Section::Audit.capability().check(session.principal()) {
        return console
            .refuse(
                &session,
                "GET /console/audit",
                Section::Audit,
                title,
                refusal,
            )
            .await;
    }
    let search = html! {
        form.filters method="get" action="/console/audit" {
            (field("Account id", "accountId", "text", &form.account_id))
            (field("Actor", "actor", "text", &form.actor))
            (field("Event type", "eventType", "text", &form.event_type))
            (field("Correlation id", "correlationId", "text", &form.correlation_id))
            (field("Recorded from", "from", "date", &form.from))
            (field("Recorded to", "to", "date", &form.to))
            (zone_field(&form.tz))
            button type="submit" { "Filter" }
        }
    };
    let result = async {
        let zone = zone(&form.tz)?;
        let account_id = uuid("accountId", &form.account_id)?;
        let filter = json!({
            "accountId": account_id,
            "actor": given(&form.actor),
            "eventTypes": given(&form.event_type).map(|t| vec![t]),
            "correlationId": given(&form.correlation_id),
            "from": moment("from", &form.from, zone, false)?.map(rfc3339),
            "to": moment("to", &form.to, zone, true)?.map(rfc3339),
        });
        let variables =
            json!({ "filter": filter, "first": PAGE_ROWS, "after": given(&form.after) });
        let data = console
            .query(&session.request, AUDIT_QUERY, variables)
            .await?;
        Ok::<_, Refusal>((zone, data))
    }
    .await;
    let pairs = [
        ("accountId", form.account_id.as_str()),
        ("actor", &form.actor),
        ("eventType", &form.event_type),
        ("correlationId", &form.correlation_id),
        ("from", &form.from),
        ("to", &form.to),
        ("tz", &form.tz),
    ];
    let result = result.map(|(zone, data)| {
        let connection = &data["auditTrail"];
        let rows = nodes(connection);
        html! {
            (csv_links("audit.csv", &pairs))
            @if rows.is_empty() {
                p { "No event matches." }
            } @else {
                table {
                    caption { "Events by position; every criterion given holds" }
                    thead { tr {
                        th scope="col" class="amount" { "Position" }
                        th scope="col" { "Recorded" }
                        th scope="col" { "Event" }
                        th scope="col" { "Account" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Correlation id" }
                        th scope="col" class="amount" { "Amount" }
                        th scope="col" { "Hash" }
                        th scope="col" { "Previous hash" }
                    } }
                    tbody {
                        @for e in rows {
                            @let account = text(&e["accountId"]);
                            tr {
                                td.amount { (text(&e["position"])) }
                                td { (when(&text(&e["recordedAt"]), zone)) }
                                td { (text(&e["eventType"])) " v" (text(&e["streamVersion"])) }
                                td { a href={ "/console/accounts/" (account) } { (short(&account)) } }
                                td { (text(&e["actor"])) }
                                td { (short(&text(&e["correlationId"]))) }
                                td.amount { @if let Some(amount) = e["amount"].as_str() { (money(amount, &text(&e["currency"]))) } }
                                td { (short(&text(&e["hash"]))) }
                                td { (short(&text(&e["previousHash"]))) }
                            }
                        }
                    }
                }
                (next_page(connection, "/console/audit", &pairs))
            }
        }
    });
    answer(&session, Section::Audit, title, search, result)
}

// ---------------------------------------------------------------------------------------
// Access log

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AccessForm {
    actor: String,
    query: String,
    #[serde(rename = "accountId")]
    account_id: String,
    #[serde(rename = "correlationId")]
    correlation_id: String,
    outcome: String,
    from: String,
    to: String,
    tz: String,
    after: String,
}

const ACCESS_QUERY: &str =
    "query ConsoleAccess($filter: AccessLogFilter, $first: Int, $after: String) {
  accessLog(filter: $filter, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id accessedAt actor roles query arguments correlationId clientAddr
            outcome refusalCode refusalReason }
  }
}";

/// `GET /console/access`: who looked at what, newest first, by actor, query, account,
/// correlation id and time range, with its CSV (auditors).
pub(crate) async fn access(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<AccessForm>,
) -> Response {
    let title = "Access log";
    if let Err(refusal) = Section::Access.capability().check(session.principal()) {
        return console
            .refuse(
                &session,
                "GET /console/access",
                Section::Access,
                title,
                refusal,
            )
            .await;
    }
    let search = html! {
        form.filters method="get" action="/console/access" {
            (field("Actor", "actor", "text", &form.actor))
            (field("Query or report", "query", "text", &form.query))
            (field("Account id", "accountId", "text", &form.account_id))
            (field("Correlation id", "correlationId", "text", &form.correlation_id))
            div.field {
                label for="outcome" { "Outcome" }
                select id="outcome" name="outcome" {
                    @for (value, label) in [("", "Any"), ("GRANTED", "Granted"), ("REFUSED", "Refused")] {
                        option value=(value) selected[form.outcome == value] { (label) }
                    }
                }
            }
            (field("From", "from", "date", &form.from))
            (field("To", "to", "date", &form.to))
            (zone_field(&form.tz))
            button type="submit" { "Filter" }
        }
    };
    let result = async {
        let zone = zone(&form.tz)?;
        let filter = json!({
            "actor": given(&form.actor),
            "query": given(&form.query),
            "accountId": uuid("accountId", &form.account_id)?,
            "correlationId": given(&form.correlation_id),
            "outcome": given(&form.outcome),
            "from": moment("from", &form.from, zone, false)?.map(rfc3339),
            "to": moment("to", &form.to, zone, true)?.map(rfc3339),
        });
        let variables =
            json!({ "filter": filter, "first": PAGE_ROWS, "after": given(&form.after) });
        let data = console
            .query(&session.request, ACCESS_QUERY, variables)
            .await?;
        Ok::<_, Refusal>((zone, data))
    }
    .await;
    let pairs = [
        ("actor", form.actor.as_str()),
        ("query", &form.query),
        ("accountId", &form.account_id),
        ("correlationId", &form.correlation_id),
        ("outcome", &form.outcome),
        ("from", &form.from),
        ("to", &form.to),
        ("tz", &form.tz),
    ];
    let result = result.map(|(zone, data)| {
        let connection = &data["accessLog"];
        let rows = nodes(connection);
        html! {
            (csv_links("access.csv", &pairs))
            @if rows.is_empty() {
                p { "No access matches." }
            } @else {
                table {
                    caption { "Accesses, newest first" }
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Roles" }
                        th scope="col" { "Query" }
                        th scope="col" { "Arguments" }
                        th scope="col" { "Correlation id" }
                        th scope="col" { "From" }
                        th scope="col" { "Outcome" }
                    } }
                    tbody {
                        @for a in rows {
                            tr {
                                td { (when(&text(&a["accessedAt"]), zone)) }
                                td { (text(&a["actor"])) }
                                td { (a["roles"].as_array().map(|r| r.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                                td { (text(&a["query"])) }
                                td.arguments { code { (text(&a["arguments"])) } }
                                td { (short(&text(&a["correlationId"]))) }
                                td { (text(&a["clientAddr"])) }
                                @if a["outcome"] == "REFUSED" {
                                    td.refused { "Refused (" (text(&a["refusalCode"])) "): " (text(&a["refusalReason"])) }
                                } @else {
                                    td { "Granted" }
                                }
                            }
                        }
                    }
                }
                (next_page(connection, "/console/access", &pairs))
            }
        }
    });
    answer(&session, Section::Access, title, search, result)
}

// ---------------------------------------------------------------------------------------
// Integrity

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct IntegrityForm {
    #[serde(rename = "accountId")]
    account_id: String,
}

const STATUS_QUERY: &str = "query ConsoleStatus {
  projectionStatus { position lagEvents lagSeconds updatedAt appliedEvents watermarkSequence streamSequence parkedEvents integrityAlerts }
}";

const INTEGRITY_QUERY: &str = "query ConsoleIntegrity($accountId: UUID, $verify: Boolean!) {
  projectionStatus { position lagEvents lagSeconds updatedAt appliedEvents watermarkSequence streamSequence parkedEvents integrityAlerts }
  latestCheckpoint { sequence position eventCount digest signedAt keyId }
  verifyIntegrity(accountId: $accountId) @include(if: $verify) {
    ok streamsChecked eventsChecked checkpointsChecked truncated problemsNotListed
    problems { kind accountId streamVersion position detail }
  }
}";

/// `GET /console/integrity`: projection lag and watermark, the latest signed checkpoint,
/// one account's verification, and a form to download an event's audit proof.
pub(crate) async fn integrity(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<IntegrityForm>,
) -> Response {
    let title = "Integrity";
    if let Err(refusal) = Section::Integrity.capability().check(session.principal()) {
        return console
            .refuse(
                &session,
                "GET /console/integrity",
                Section::Integrity,
                title,
                refusal,
            )
            .await;
    }
    let result = async {
        let account_id = uuid("accountId", &form.account_id)?;
        let (query, variables) = if console.accounts {
            (
                INTEGRITY_QUERY,
                json!({ "accountId": account_id, "verify": account_id.is_some() }),
            )
        } else {
            (STATUS_QUERY, json!({}))
        };
        console.query(&session.request, query, variables).await
    }
    .await;
    let forms = html! {
        @if console.accounts {
            section aria-labelledby="verify" {
                h2 id="verify" { "Verify one account" }
                form.filters method="get" action="/console/integrity" {
                    (field("Account id", "accountId", "text", &form.account_id))
                    button type="submit" { "Verify" }
                }
            }
            section aria-labelledby="proof" {
                h2 id="proof" { "Audit proof of one event" }
                p { "A file that proves the event is part of the signed history; check it offline with "
                    code { "folio verify-proof FILE --public-key KEY" } "." }
                form.filters method="get" action="/console/integrity/proof" {
                    (field("Event id", "eventId", "text", ""))
                    button type="submit" { "Download proof" }
                }
            }
        } @else {
            p.notice { "Checkpoints, verification and audit proofs are served by the accounts service (" code { "folio accounts" } " or " code { "folio up" } ")." }
        }
    };
    let result = result.map(|data| {
        let status = &data["projectionStatus"];
        let checkpoint = &data["latestCheckpoint"];
        let report = &data["verifyIntegrity"];
        html! {
            section aria-labelledby="projection" {
                h2 id="projection" { "Projection" }
                dl.figures {
                    div { dt { "Watermark (position)" } dd { (text(&status["position"])) } }
                    div { dt { "Watermark (stream sequence)" } dd { (text(&status["watermarkSequence"])) } }
                    div { dt { "Stream sequence processed" } dd { (text(&status["streamSequence"])) } }
                    div { dt { "Lag (events)" } dd { @if status["lagEvents"].is_null() { "unknown" } @else { (text(&status["lagEvents"])) } } }
                    div { dt { "Lag (seconds)" } dd { @if status["lagSeconds"].is_null() { "unknown" } @else { (text(&status["lagSeconds"])) } } }
                    div { dt { "Events applied" } dd { (text(&status["appliedEvents"])) } }
                    div { dt { "Parked events" } dd { (text(&status["parkedEvents"])) } }
                    div { dt { "Integrity alerts" } dd { (text(&status["integrityAlerts"])) } }
                }
            }
            @if console.accounts {
                section aria-labelledby="checkpoint" {
                    h2 id="checkpoint" { "Latest signed checkpoint" }
                    @if checkpoint.is_null() {
                        p { "No checkpoint has been signed yet." }
                    } @else {
                        dl.figures {
                            div { dt { "Sequence" } dd { (text(&checkpoint["sequence"])) } }
                            div { dt { "Up to position" } dd { (text(&checkpoint["position"])) } }
                            div { dt { "Events covered" } dd { (text(&checkpoint["eventCount"])) } }
                            div { dt { "Signed at" } dd { (when(&text(&checkpoint["signedAt"]), Tz::UTC)) } }
                            div { dt { "Key id" } dd { code { (text(&checkpoint["keyId"])) } } }
                            div { dt { "Global digest" } dd { code.digest { (text(&checkpoint["digest"])) } } }
                        }
                    }
                }
            }
            @if !report.is_null() {
                section aria-labelledby="report" {
                    h2 id="report" { "Verification of account " (form.account_id.trim()) }
                    p role="status" class=(if report["ok"] == true { "ok" } else { "error" }) {
                        @if report["ok"] == true { "Intact: " } @else { "Problems found: " }
                        (text(&report["eventsChecked"])) " events and "
                        (text(&report["checkpointsChecked"])) " checkpoints checked."
                    }
                    @if let Some(problems) = report["problems"].as_array().filter(|p| !p.is_empty()) {
                        table {
                            caption { "Problems" }
                            thead { tr { th scope="col" { "Kind" } th scope="col" { "Version" } th scope="col" { "Position" } th scope="col" { "Detail" } } }
                            tbody {
                                @for p in problems {
                                    tr { td { (text(&p["kind"])) } td { (text(&p["streamVersion"])) } td { (text(&p["position"])) } td { (text(&p["detail"])) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    answer(&session, Section::Integrity, title, forms, result)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct ProofForm {
    #[serde(rename = "eventId")]
    event_id: String,
}

/// `GET /console/integrity/proof?eventId=…`: the event's audit proof as a JSON file.
pub(crate) async fn proof(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<ProofForm>,
) -> Response {
    let result = async {
        let event_id = uuid("eventId", &form.event_id)?
            .ok_or_else(|| Refusal::validation("eventId", "is required"))?;
        let data = console
            .query(
                &session.request,
                "query ConsoleProof($eventId: UUID!) { auditProof(eventId: $eventId) { document } }",
                json!({ "eventId": event_id }),
            )
            .await?;
        Ok::<_, Refusal>((event_id, data))
    }
    .await;
    match result {
        Ok((event_id, data)) => {
            let body =
                serde_json::to_string_pretty(&data["auditProof"]["document"]).unwrap_or_default();
            attachment(
                body,
                "application/json",
                &format!("audit-proof-{event_id}.json"),
            )
        }
        Err(refusal) => {
            let body = html! {
                (views::refusal(&refusal))
                p { a href="/console/integrity" { "Back to integrity" } }
            };
            let mut response = page(&session, Section::Integrity, "Audit proof", body);
            *response.status_mut() = refusal.status();
            response
        }
    }
}

pub(crate) fn attachment(body: String, content_type: &'static str, filename: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

// ---------------------------------------------------------------------------------------
// CSV

/// `GET /console/reports/{name}`: the CSV reports of `/reports/*.csv`, for the signed-in
/// caller, with the same parameters, roles and access-log rows.
pub(crate) async fn report(
    Extension(console): Extension<Console>,
    session: Session,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let state = &console.reporting;
    let request = &session.request;
    let (section, result) = match name.as_str() {
        "balances.csv" => (
            Section::Balances,
            reports::balances_report(state, request, &params, REPORT_ROWS_MAX).await,
        ),
        "statement.csv" => (
            Section::Accounts,
            reports::statement_report(state, request, &params, REPORT_ROWS_MAX).await,
        ),
        "audit.csv" => match Section::Audit.capability().check(session.principal()) {
            Ok(()) => (
                Section::Audit,
                reports::audit_report(state, request, &params, REPORT_ROWS_MAX).await,
            ),
            Err(refusal) => {
                return console
                    .refuse(
                        &session,
                        "GET /console/reports/audit.csv",
                        Section::Audit,
                        "Report",
                        refusal,
                    )
                    .await;
            }
        },
        "access.csv" => (
            Section::Access,
            reports::access_report(state, request, &params, REPORT_ROWS_MAX).await,
        ),
        _ => (
            Section::Accounts,
            Err(platform::ApiError::validation(
                "report",
                "is one of balances.csv, statement.csv, audit.csv, access.csv",
            )),
        ),
    };
    match result {
        Ok(response) => response,
        Err(error) => {
            let refusal = Refusal::from(error);
            refused(&session, section, "Report", &refusal)
        }
    }
}
