//! The console's pages for the two controls auditors ask for first: four-eyes adjustments
//! (a supervisor other than the requester approves or rejects them; SOX maker-checker) and
//! period closes with their signed reports.

use axum::{
    Extension, Form,
    extract::{Path, Query},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{
    Console, Refusal,
    pages::{answer, given, next_page, nodes, url, uuid},
    session::Session,
    views::{Section, link_button, short, text, when},
};
use chrono_tz::Tz;

const PAGE_ROWS: i32 = 100;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AdjustmentsForm {
    status: String,
    #[serde(rename = "accountId")]
    account_id: String,
    after: String,
    done: String,
}

const ADJUSTMENTS_QUERY: &str = "query ConsoleAdjustments($status: AdjustmentStatus, $accountId: UUID, $first: Int, $after: String) {
  adjustments(status: $status, accountId: $accountId, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id accountId amount reason valueDate evidence status requestedBy requestedAt expiresAt decidedBy decidedAt comment }
  }
}";

/// `GET /console/adjustments`: adjustments by status and account; a supervisor approves or
/// rejects the pending ones here (never their own: SELF_APPROVAL).
pub(crate) async fn adjustments(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<AdjustmentsForm>,
) -> Response {
    adjustments_page(&console, &session, &form, None).await
}

async fn adjustments_page(
    console: &Console,
    session: &Session,
    form: &AdjustmentsForm,
    refusal: Option<Refusal>,
) -> Response {
    let title = "Adjustments";
    if let Err(refusal) = Section::Adjustments.capability().check(session.principal()) {
        return console
            .refuse(
                session,
                "GET /console/adjustments",
                Section::Adjustments,
                title,
                refusal,
            )
            .await;
    }
    let statuses = ["PENDING", "APPROVED", "REJECTED", "EXPIRED", ""];
    let status = if form.status.is_empty() && form.after.is_empty() && form.account_id.is_empty() {
        "PENDING"
    } else {
        form.status.as_str()
    };
    let filters = html! {
        form.filters method="get" action="/console/adjustments" {
            div.field {
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for s in statuses {
                        option value=(s) selected[status == s] { @if s.is_empty() { "Any" } @else { (s) } }
                    }
                }
            }
            div.field {
                label for="accountId" { "Account id" }
                input id="accountId" name="accountId" type="text" value=(form.account_id);
            }
            button type="submit" { "Show" }
        }
        @if let Some(refusal) = &refusal {
            (super::views::refusal(refusal))
        }
        @if matches!(form.done.as_str(), "approved" | "rejected") {
            p.notice role="status" { "Adjustment " (form.done) "." }
        }
    };
    let decides =
        platform::Capability::DecideAdjustment.allows(session.principal()) && console.accounts;
    let result = async {
        let variables = json!({
            "status": given(status), "accountId": uuid("accountId", &form.account_id)?,
            "first": PAGE_ROWS, "after": given(&form.after),
        });
        console.query(&session.request, ADJUSTMENTS_QUERY, variables).await
    }
    .await
    .map(|data| {
        let connection = &data["adjustments"];
        let rows = nodes(connection);
        html! {
            @if rows.is_empty() {
                p { "No adjustment matches." }
            } @else {
                table {
                    caption { "Adjustments, most recent first" }
                    thead { tr {
                        th scope="col" { "Requested" }
                        th scope="col" { "By" }
                        th scope="col" { "Account" }
                        th scope="col" class="amount" { "Amount" }
                        th scope="col" { "Value date" }
                        th scope="col" { "Reason" }
                        th scope="col" { "Evidence" }
                        th scope="col" { "Status" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Decided" }
                        @if decides { th scope="col" { "Decision" } }
                    } }
                    tbody {
                        @for a in rows {
                            @let id = text(&a["id"]);
                            @let account = text(&a["accountId"]);
                            tr {
                                td { (when(&text(&a["requestedAt"]), Tz::UTC)) }
                                td { (text(&a["requestedBy"])) }
                                td { a href={ "/console/accounts/" (account) } { (short(&account)) } }
                                td.amount { (text(&a["amount"])) }
                                td {
                                    @if a["valueDate"].is_null() { "on approval" }
                                    @else { (when(&text(&a["valueDate"]), Tz::UTC)) }
                                }
                                td { (text(&a["reason"])) }
                                td { (text(&a["evidence"])) }
                                td { (text(&a["status"])) }
                                td { @if a["status"] == "PENDING" { (when(&text(&a["expiresAt"]), Tz::UTC)) } }
                                td {
                                    @if !a["decidedBy"].is_null() {
                                        (text(&a["decidedBy"])) ", " (when(&text(&a["decidedAt"]), Tz::UTC))
                                        @if let Some(c) = a["comment"].as_str() { br; (c) }
                                    }
                                }
                                @if decides {
                                    td {
                                        @if a["status"] == "PENDING" {
                                            @if accounts::domain::same_person(&text(&a["requestedBy"]), &session.principal().actor) {
                                                "Your request: another supervisor decides it."
                                            } @else {
                                                (decision_form(session, &id))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                (next_page(connection, "/console/adjustments", &[("status", status), ("accountId", &form.account_id)]))
            }
        }
    });
    answer(session, Section::Adjustments, title, filters, result)
}

/// Approve and reject, with a comment. The idempotency key is made when the form is shown,
/// so submitting the same form twice decides once.
fn decision_form(session: &Session, id: &str) -> Markup {
    let key = uuid::Uuid::new_v4().to_string();
    let comment_id = format!("comment-{id}");
    html! {
        form.decision method="post" action={ "/console/adjustments/" (id) "/decision" } {
            label for=(comment_id) { "Comment" }
            input id=(comment_id) name="comment" type="text";
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="idempotencyKey" value=(key);
            button type="submit" name="decision" value="approve" { "Approve" }
            " "
            button type="submit" name="decision" value="reject" { "Reject" }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct DecisionForm {
    decision: String,
    comment: String,
    csrf: String,
    #[serde(rename = "idempotencyKey")]
    idempotency_key: String,
}

/// `POST /console/adjustments/{id}/decision`: approves or rejects (CSRF-checked).
pub(crate) async fn decide(
    Extension(console): Extension<Console>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let listing = AdjustmentsForm {
        status: "PENDING".into(),
        ..AdjustmentsForm::default()
    };
    if !session.csrf_ok(&form.csrf) {
        let refusal = Refusal {
            code: ledger::ErrorCode::Forbidden,
            message: "the form was out of date: decide again from this page".into(),
            field: Some("csrf".into()),
        };
        let mut response = adjustments_page(&console, &session, &listing, Some(refusal)).await;
        *response.status_mut() = axum::http::StatusCode::FORBIDDEN;
        return response;
    }
    let (mutation, done) = match form.decision.as_str() {
        "approve" => ("approveAdjustment", "approved"),
        "reject" => ("rejectAdjustment", "rejected"),
        _ => {
            let refusal = Refusal::validation("decision", "is approve or reject");
            let mut response = adjustments_page(&console, &session, &listing, Some(refusal)).await;
            *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            return response;
        }
    };
    let query = format!(
        "mutation ConsoleDecision($input: AdjustmentDecisionInput!) {{ {mutation}(input: $input) {{ adjustment {{ status }} position }} }}"
    );
    let input = json!({
        "adjustmentId": id, "comment": given(&form.comment), "idempotencyKey": form.idempotency_key,
    });
    match console
        .query(&session.request, &query, json!({ "input": input }))
        .await
    {
        Ok(_) => Redirect::to(&url(
            "/console/adjustments",
            &[("status", "PENDING"), ("done", done)],
        ))
        .into_response(),
        Err(refusal) => {
            let status = refusal.status();
            let mut response = adjustments_page(&console, &session, &listing, Some(refusal)).await;
            *response.status_mut() = status;
            response
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PeriodsForm {
    after: String,
}

const PERIODS_QUERY: &str = "query ConsolePeriods($first: Int, $after: String) {
  periodCloses(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { periodEnd closedAt closedBy accounts eventCount digest keyId totals { currency total accounts } }
  }
}";

/// `GET /console/periods`: closed periods, newest first, each with its signed report.
pub(crate) async fn periods(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<PeriodsForm>,
) -> Response {
    let title = "Period closes";
    let result = console
        .query(
            &session.request,
            PERIODS_QUERY,
            json!({ "first": PAGE_ROWS, "after": given(&form.after) }),
        )
        .await
        .map(|data| {
            let connection = &data["periodCloses"];
            let rows = nodes(connection);
            html! {
                p { "Each report is signed with the checkpoint key; check a downloaded file offline with "
                    code { "folio verify-report FILE --public-key KEY" } "." }
                @if rows.is_empty() {
                    p { "No period has been closed yet." }
                } @else {
                    table {
                        caption { "Closed periods" }
                        thead { tr {
                            th scope="col" { "Period end" }
                            th scope="col" { "Closed" }
                            th scope="col" { "By" }
                            th scope="col" class="amount" { "Accounts" }
                            th scope="col" class="amount" { "Events" }
                            th scope="col" { "Totals" }
                            th scope="col" { "Digest" }
                            th scope="col" { "Signed report" }
                        } }
                        tbody {
                            @for p in rows {
                                @let end = text(&p["periodEnd"]);
                                tr {
                                    td { (when(&end, Tz::UTC)) }
                                    td { (when(&text(&p["closedAt"]), Tz::UTC)) }
                                    td { (text(&p["closedBy"])) }
                                    td.amount { (text(&p["accounts"])) }
                                    td.amount { (text(&p["eventCount"])) }
                                    td.amount {
                                        @for t in p["totals"].as_array().map_or(&[][..], Vec::as_slice) {
                                            (super::views::money(&text(&t["total"]), &text(&t["currency"]))) br;
                                        }
                                    }
                                    td { (short(&text(&p["digest"]))) }
                                    td { (link_button(&url("/console/periods/report", &[("periodEnd", &end)]), "Download")) }
                                }
                            }
                        }
                    }
                    (next_page(connection, "/console/periods", &[]))
                }
            }
        });
    answer(&session, Section::Periods, title, html! {}, result)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PeriodReportForm {
    #[serde(rename = "periodEnd")]
    period_end: String,
}

/// `GET /console/periods/report?periodEnd=…`: the signed report of a closed period, byte for
/// byte as `GET /reports/period.json` serves it, as a file to check with `folio verify-report`.
pub(crate) async fn period_report(
    Extension(console): Extension<Console>,
    session: Session,
    Query(form): Query<PeriodReportForm>,
) -> Response {
    let result = console
        .query(
            &session.request,
            "query ConsolePeriodReport($periodEnd: DateTime!) { periodClose(periodEnd: $periodEnd) { report } }",
            json!({ "periodEnd": form.period_end }),
        )
        .await;
    match result {
        Ok(data) if data["periodClose"]["report"].is_string() => {
            let day = form.period_end.get(..10).unwrap_or("period");
            super::pages::attachment(
                text(&data["periodClose"]["report"]),
                "application/json",
                &format!("period-{day}.json"),
            )
        }
        Ok(_) => super::views::refused(
            &session,
            Section::Periods,
            "Period report",
            &Refusal::validation("periodEnd", "no period was closed at this instant"),
        ),
        Err(refusal) => {
            super::views::refused(&session, Section::Periods, "Period report", &refusal)
        }
    }
}
