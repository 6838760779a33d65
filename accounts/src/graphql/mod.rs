//! The accounts service's GraphQL: the mutations that move money and the strongly
//! consistent `account(id)` query. Inputs are parsed into domain commands here, and
//! every refusal leaves with its error code and the field it concerns.

mod inputs;
mod integrity;
mod outputs;
mod periods;

use async_graphql::{Context, EmptySubscription, MergedObject, Object, Schema};
use ledger::AccountId;
use platform::{
    ApiError, Capability, RequestContext,
    access_log::{AccessLog, query_names},
    graphql::{RoleGuard, record_read, with_limits},
    scalars::Uuid,
};

use ledger::{AdjustmentId, TransferId};
use serde_json::json;

use crate::{
    commands::{
        AccountsService, ApproveAdjustmentCommand, BatchCommand, BatchOperation,
        CaptureHoldCommand, Command, CommandContext, CommandError, PlaceHoldCommand,
        RejectAdjustmentCommand, ReleaseHoldCommand, RequestAdjustmentCommand, ReverseCommand,
        find_adjustment, find_hold, find_movement,
    },
    domain::{CaptureHold, DecideAdjustment, ReleaseHold, RequestAdjustment, Reverse, Subject},
};

pub use inputs::{
    AccountStatusInput, AdjustmentDecisionInput, BATCH_OPERATIONS_MAX, BatchInput,
    BatchOperationInput, CaptureHoldInput, DepositInput, OpenAccountInput, PlaceHoldInput,
    ReleaseHoldInput, RequestAdjustmentInput, ReverseInput, TransferInput, WithdrawInput,
};
pub use integrity::{IntegrityData, IntegrityQuery, VERIFY_ONLINE_EVENTS_MAX};
pub use outputs::{
    ACCOUNT_HOLDS_LISTED_MAX, AccountPayload, AccountStatus, AccountView, AdjustmentPayload,
    BatchPayload, BatchResult, Hold, HoldPayload, MovementPayload, ReversalPayload,
    TransferPayload, adjustment_view,
};
pub use periods::{PeriodData, PeriodMutation, PeriodQuery};

pub type AccountsSchema = Schema<AccountsQueries, AccountsMutations, EmptySubscription>;

/// Every query of the accounts service.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct AccountsQueries(AccountsQuery, IntegrityQuery, PeriodQuery);

/// Every mutation of the accounts service.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct AccountsMutations(AccountsMutation, PeriodMutation);

/// The accounts service on its own (as `folio accounts` serves it).
pub fn schema(
    service: AccountsService,
    integrity: IntegrityData,
    periods: PeriodData,
    access_log: AccessLog,
) -> AccountsSchema {
    with_limits(Schema::build(
        AccountsQueries::default(),
        AccountsMutations::default(),
        EmptySubscription,
    ))
    .data(service)
    .data(integrity)
    .data(periods)
    .data(access_log)
    .finish()
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The account as the event store knows it right now (strongly consistent; null if there is none).
    #[graphql(guard = "RoleGuard::new(Capability::ReadAccount)")]
    async fn account(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<AccountView>, ApiError> {
        let fields = InputFields::of("").account(Some(id), "id");
        record_read(ctx, query_names::ACCOUNT, json!({ "accountId": id.0 })).await?;
        let account = service(ctx)?
            .account(AccountId::from_uuid(id.0))
            .await
            .map_err(|e| command_error(e, &fields))?;
        account.map(AccountView::try_from).transpose()
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Opens an account in one currency, optionally with an overdraft limit (teller).
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn open_account(
        &self,
        ctx: &Context<'_>,
        input: OpenAccountInput,
    ) -> Result<AccountPayload, ApiError> {
        let fields = InputFields::of(INPUT).account(input.account_id, "accountId");
        execute(ctx, input.parse(INPUT), &fields).await
    }

    /// Credits an account (teller).
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn deposit(
        &self,
        ctx: &Context<'_>,
        input: DepositInput,
    ) -> Result<MovementPayload, ApiError> {
        let fields = InputFields::movement(input.account_id);
        execute(ctx, input.parse(INPUT), &fields).await
    }

    /// Debits an account, never below minus its overdraft limit (teller).
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn withdraw(
        &self,
        ctx: &Context<'_>,
        input: WithdrawInput,
    ) -> Result<MovementPayload, ApiError> {
        let fields = InputFields::movement(input.account_id);
        execute(ctx, input.parse(INPUT), &fields).await
    }

    /// Moves money between two open accounts of one currency: both legs or neither (teller).
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn transfer(
        &self,
        ctx: &Context<'_>,
        input: TransferInput,
    ) -> Result<TransferPayload, ApiError> {
        let fields = InputFields::of(INPUT)
            .account(Some(input.from_account_id), "fromAccountId")
            .account(Some(input.to_account_id), "toAccountId")
            .amount()
            .counterparty("toAccountId")
            .named(Subject::ValueDate, "valueDate");
        execute(ctx, input.parse(INPUT), &fields).await
    }

    /// Reserves funds on an account until captured, released or expired (teller). The
    /// hold takes from the available balance like a withdrawal; the balance is unchanged.
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn place_hold(
        &self,
        ctx: &Context<'_>,
        input: PlaceHoldInput,
    ) -> Result<HoldPayload, ApiError> {
        let fields = InputFields::of(INPUT)
            .account(Some(input.account_id), "accountId")
            .amount()
            .named(Subject::Hold, "holdId")
            .named(Subject::ExpiresAt, "expiresAt");
        let parsed = input.parse(INPUT).map(|p| p.map(PlaceHoldCommand));
        execute(ctx, parsed, &fields).await
    }

    /// Takes a hold, once: `amount` (default: all of it) at most the held amount, the rest
    /// released. A withdrawal, or a transfer when `toAccountId` is given (teller).
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn capture_hold(
        &self,
        ctx: &Context<'_>,
        input: CaptureHoldInput,
    ) -> Result<HoldPayload, ApiError> {
        let fields = InputFields::of(INPUT)
            .account(input.to_account_id, "toAccountId")
            .amount()
            .named(Subject::Hold, "holdId")
            .named(Subject::ValueDate, "valueDate")
            .counterparty("toAccountId");
        let parsed = input.parse(INPUT)?;
        let hold = find_hold(service(ctx)?.store(), parsed.command.hold_id)
            .await
            .map_err(|e| command_error(e, &fields))?;
        let fields = fields.account(Some(Uuid(hold.account_id.as_uuid())), "holdId");
        let parsed = parsed.map(|request| {
            CaptureHoldCommand(CaptureHold {
                account_id: hold.account_id,
                hold_id: request.hold_id,
                amount: request.amount,
                to: request.to,
                transfer_id: TransferId::generate(),
                value_date: request.value_date,
                reference: request.reference,
            })
        });
        execute(ctx, Ok(parsed), &fields).await
    }

    /// Frees a hold without taking anything; allowed on a frozen account (teller).
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn release_hold(
        &self,
        ctx: &Context<'_>,
        input: ReleaseHoldInput,
    ) -> Result<HoldPayload, ApiError> {
        let fields = InputFields::of(INPUT).named(Subject::Hold, "holdId");
        let parsed = input.parse(INPUT)?;
        let hold_id = parsed.command.0;
        let hold = find_hold(service(ctx)?.store(), hold_id)
            .await
            .map_err(|e| command_error(e, &fields))?;
        let fields = fields.account(Some(Uuid(hold.account_id.as_uuid())), "holdId");
        let parsed = parsed.map(|(hold_id, reason)| {
            ReleaseHoldCommand(ReleaseHold {
                account_id: hold.account_id,
                hold_id,
                reason,
            })
        });
        execute(ctx, Ok(parsed), &fields).await
    }

    /// Undoes a movement by compensating events linked to it, never by an edit
    /// (supervisor): one leg for a deposit, withdrawal or hold capture, both legs in one
    /// transaction for a transfer. At most once per movement, within the accounts' limits.
    #[graphql(guard = "RoleGuard::new(Capability::Reverse)")]
    async fn reverse(
        &self,
        ctx: &Context<'_>,
        input: ReverseInput,
    ) -> Result<ReversalPayload, ApiError> {
        let movement_field = if input.transfer_id.is_some() {
            "transferId"
        } else {
            "eventId"
        };
        let fields = InputFields::of(INPUT)
            .named(Subject::Movement, movement_field)
            .named(Subject::Amount, movement_field);
        let parsed = input.parse(INPUT)?;
        let movement = find_movement(service(ctx)?.store(), parsed.command.target)
            .await
            .map_err(|e| command_error(e, &fields))?;
        // A refusal about one of the accounts (frozen, funds gone) is about the movement named.
        let fields = Reverse::accounts_of(&movement)
            .into_iter()
            .fold(fields, |f, id| {
                f.account(Some(Uuid(id.as_uuid())), movement_field)
            });
        let parsed = parsed.map(|request| {
            ReverseCommand(Reverse {
                reversal_id: request.reversal_id,
                movement,
                reason: request.reason,
            })
        });
        execute(ctx, Ok(parsed), &fields).await
    }

    /// Asks for a signed correction of an account (teller or supervisor): nothing moves
    /// until a supervisor other than the requester approves it (SOX maker-checker).
    #[graphql(guard = "RoleGuard::new(Capability::RequestAdjustment)")]
    async fn request_adjustment(
        &self,
        ctx: &Context<'_>,
        input: RequestAdjustmentInput,
    ) -> Result<AdjustmentPayload, ApiError> {
        let fields = InputFields::of(INPUT)
            .account(Some(input.account_id), "accountId")
            .amount()
            .named(Subject::ValueDate, "valueDate")
            .named(Subject::Adjustment, "accountId");
        let parsed = input.parse(INPUT)?;
        let maker = RequestContext::of(ctx)?.principal.actor.clone();
        let expires_after = service(ctx)?.adjustment_expiry();
        let parsed = parsed.map(|request| {
            RequestAdjustmentCommand(RequestAdjustment {
                account_id: request.account_id,
                adjustment_id: AdjustmentId::generate(),
                amount: request.amount,
                reason: request.reason,
                value_date: request.value_date,
                evidence: request.evidence,
                requested_by: maker,
                expires_after,
            })
        });
        execute(ctx, Ok(parsed), &fields).await
    }

    /// Approves a pending adjustment and posts it to its account in the same event, which
    /// names both the requester and the approver (supervisor, never the requester:
    /// SELF_APPROVAL). A debit stays within the account's limits.
    #[graphql(guard = "RoleGuard::new(Capability::DecideAdjustment)")]
    async fn approve_adjustment(
        &self,
        ctx: &Context<'_>,
        input: AdjustmentDecisionInput,
    ) -> Result<AdjustmentPayload, ApiError> {
        decide_adjustment(ctx, input, true).await
    }

    /// Rejects a pending adjustment; nothing moves (supervisor).
    #[graphql(guard = "RoleGuard::new(Capability::DecideAdjustment)")]
    async fn reject_adjustment(
        &self,
        ctx: &Context<'_>,
        input: AdjustmentDecisionInput,
    ) -> Result<AdjustmentPayload, ApiError> {
        decide_adjustment(ctx, input, false).await
    }

    /// Up to 1,000 deposits, withdrawals and transfers in one request (teller). With
    /// `atomic: true` all are written or none: when one is refused nothing is written, it
    /// carries its own code and the others LINKED_OPERATION_FAILED. With `atomic: false`
    /// each stands alone. Results are in input order; every operation keeps its own
    /// idempotency key.
    #[graphql(guard = "RoleGuard::new(Capability::MoveMoney)")]
    async fn execute_batch(
        &self,
        ctx: &Context<'_>,
        input: BatchInput,
    ) -> Result<BatchPayload, ApiError> {
        execute_batch(ctx, input).await
    }

    /// Stops all debits and credits until unfrozen (supervisor).
    #[graphql(guard = "RoleGuard::new(Capability::ChangeStatus)")]
    async fn freeze_account(
        &self,
        ctx: &Context<'_>,
        input: AccountStatusInput,
    ) -> Result<AccountPayload, ApiError> {
        let fields = InputFields::of(INPUT).account(Some(input.account_id), "accountId");
        execute(ctx, input.freeze(INPUT), &fields).await
    }

    /// Lets a frozen account take debits and credits again (supervisor).
    #[graphql(guard = "RoleGuard::new(Capability::ChangeStatus)")]
    async fn unfreeze_account(
        &self,
        ctx: &Context<'_>,
        input: AccountStatusInput,
    ) -> Result<AccountPayload, ApiError> {
        let fields = InputFields::of(INPUT).account(Some(input.account_id), "accountId");
        execute(ctx, input.unfreeze(INPUT), &fields).await
    }

    /// Closes an account whose balance is zero; it then takes nothing (supervisor).
    #[graphql(guard = "RoleGuard::new(Capability::ChangeStatus)")]
    async fn close_account(
        &self,
        ctx: &Context<'_>,
        input: AccountStatusInput,
    ) -> Result<AccountPayload, ApiError> {
        let fields = InputFields::of(INPUT).account(Some(input.account_id), "accountId");
        execute(ctx, input.close(INPUT), &fields).await
    }
}

/// Approves (`approve`) or rejects an adjustment the client names by id: the edge finds its
/// account in the adjustment index, the aggregate decides.
async fn decide_adjustment(
    ctx: &Context<'_>,
    input: AdjustmentDecisionInput,
    approve: bool,
) -> Result<AdjustmentPayload, ApiError> {
    let fields = InputFields::of(INPUT)
        .named(Subject::Adjustment, "adjustmentId")
        .named(Subject::Amount, "adjustmentId")
        .named(Subject::ValueDate, "adjustmentId");
    let parsed = input.parse(INPUT)?;
    let found = find_adjustment(service(ctx)?.store(), parsed.command.0)
        .await
        .map_err(|e| command_error(e, &fields))?;
    let fields = fields.account(Some(Uuid(found.account_id.as_uuid())), "adjustmentId");
    let checker = RequestContext::of(ctx)?.principal.actor.clone();
    let parsed = parsed.map(|(adjustment_id, comment)| DecideAdjustment {
        account_id: found.account_id,
        adjustment_id,
        decided_by: checker,
        comment,
    });
    if approve {
        execute(ctx, Ok(parsed.map(ApproveAdjustmentCommand)), &fields).await
    } else {
        execute(ctx, Ok(parsed.map(RejectAdjustmentCommand)), &fields).await
    }
}

/// The argument every mutation takes its input in.
const INPUT: &str = "input";

/// Where a mutation's inputs are, so a refusal names the one it is about
/// (`extensions.field`, `../shared/API.md`).
pub(crate) struct InputFields {
    base: String,
    accounts: Vec<(AccountId, &'static str)>,
    /// The input carrying each other subject a refusal may be about.
    named: Vec<(Subject, &'static str)>,
}

impl InputFields {
    pub(crate) fn of(base: &str) -> Self {
        Self {
            base: base.to_string(),
            accounts: Vec::new(),
            named: Vec::new(),
        }
    }

    /// A deposit's or withdrawal's: one account, an amount and a value date.
    fn movement(account_id: Uuid) -> Self {
        Self::of(INPUT)
            .account(Some(account_id), "accountId")
            .amount()
            .named(Subject::ValueDate, "valueDate")
    }

    /// The input field `name` carries the account `id` (if the client gave one).
    pub(crate) fn account(mut self, id: Option<Uuid>, name: &'static str) -> Self {
        if let Some(id) = id {
            self.accounts.push((AccountId::from_uuid(id.0), name));
        }
        self
    }

    /// The input field `name` carries what a refusal about `subject` concerns.
    pub(crate) fn named(mut self, subject: Subject, name: &'static str) -> Self {
        self.named.push((subject, name));
        self
    }

    pub(crate) fn amount(self) -> Self {
        self.named(Subject::Amount, "amount")
    }

    pub(crate) fn counterparty(self, name: &'static str) -> Self {
        self.named(Subject::Counterparty, name)
    }

    fn path(&self, name: &str) -> String {
        inputs::path(&self.base, name)
    }

    /// The path of the input a refusal about `subject` concerns.
    fn of_subject(&self, subject: Subject) -> Option<String> {
        let name = match subject {
            Subject::Account(id) => self
                .accounts
                .iter()
                .find(|(a, _)| *a == id)
                .map(|(_, n)| *n),
            other => self
                .named
                .iter()
                .find(|(s, _)| *s == other)
                .map(|(_, n)| *n),
        };
        name.map(|n| self.path(n))
    }
}

/// Runs a parsed command under the request's context and shapes its answer.
async fn execute<C, P>(
    ctx: &Context<'_>,
    parsed: Result<inputs::Parsed<C>, ApiError>,
    fields: &InputFields,
) -> Result<P, ApiError>
where
    C: Command,
    P: TryFrom<C::Output, Error = ApiError>,
{
    let inputs::Parsed {
        command,
        key,
        canonical,
    } = parsed?;
    let context = command_context(ctx, command.name(), key, &canonical)?;
    let outcome = service(ctx)?
        .execute(&context, command)
        .await
        .map_err(|e| command_error(e, fields))?;
    P::try_from(outcome)
}

fn service<'a>(ctx: &Context<'a>) -> Result<&'a AccountsService, ApiError> {
    ctx.data::<AccountsService>()
        .map_err(|_| ApiError::internal("accounts service missing from the schema data"))
}

fn command_context(
    ctx: &Context<'_>,
    command_type: &'static str,
    idempotency_key: String,
    canonical: &serde_json::Value,
) -> Result<CommandContext, ApiError> {
    let request = RequestContext::of(ctx)?;
    Ok(CommandContext {
        actor: request.principal.actor.clone(),
        roles: request.principal.role_names(),
        correlation_id: request.correlation_id.clone(),
        client_addr: request.client_addr.clone(),
        idempotency_key,
        request_hash: inputs::fingerprint(command_type, canonical),
    })
}

/// Parses every operation (a refusal names its path, `input.operations.3.transfer.amount`),
/// runs the valid ones as one unit, and answers in input order.
async fn execute_batch(ctx: &Context<'_>, input: BatchInput) -> Result<BatchPayload, ApiError> {
    let count = input.operations.len();
    if count == 0 || count > BATCH_OPERATIONS_MAX {
        return Err(ApiError::validation(
            "input.operations",
            format!("must hold 1 to {BATCH_OPERATIONS_MAX} operations (got {count})"),
        ));
    }
    let mut results: Vec<Option<BatchResult>> = vec![None; count];
    let mut fields = Vec::with_capacity(count);
    let mut operations = Vec::with_capacity(count);
    let mut indexes = Vec::with_capacity(count);
    for (index, operation) in input.operations.iter().enumerate() {
        let parsed = parse_operation(ctx, index, operation);
        match parsed {
            Ok((operation, operation_fields)) => {
                operations.push(operation);
                fields.push(operation_fields);
                indexes.push(index);
            }
            Err(error) => results[index] = Some(BatchResult::refused(index, &error)),
        }
    }
    let first_refused = results.iter().position(Option::is_some);
    if let (true, Some(first)) = (input.atomic, first_refused) {
        let linked = command_error(
            CommandError::LinkedOperationFailed { index: first },
            &InputFields::of(INPUT),
        );
        for index in indexes {
            results[index] = Some(BatchResult::refused(index, &linked));
        }
        return Ok(batch_payload(results));
    }
    let answers = service(ctx)?.execute_batch(operations, input.atomic).await;
    for ((index, operation_fields), answer) in indexes.into_iter().zip(&fields).zip(answers) {
        results[index] = Some(match answer {
            Ok(answer) => BatchResult::written(index, answer),
            Err(error) => BatchResult::refused(index, &command_error(error, operation_fields)),
        });
    }
    Ok(batch_payload(results))
}

/// One operation of a batch as a command with its context and the paths of its inputs.
fn parse_operation(
    ctx: &Context<'_>,
    index: usize,
    operation: &BatchOperationInput,
) -> Result<(BatchOperation, InputFields), ApiError> {
    let at = |kind: &str| format!("{INPUT}.operations.{index}.{kind}");
    let (command, key, fields, fingerprint) = match operation {
        BatchOperationInput::Deposit(input) => {
            let base = at("deposit");
            let parsed = input.parse(&base)?;
            let fields = InputFields::of(&base)
                .account(Some(input.account_id), "accountId")
                .amount()
                .named(Subject::ValueDate, "valueDate");
            let fingerprint = inputs::fingerprint(parsed.command.name(), &parsed.canonical);
            (
                BatchCommand::Deposit(parsed.command),
                parsed.key,
                fields,
                fingerprint,
            )
        }
        BatchOperationInput::Withdraw(input) => {
            let base = at("withdraw");
            let parsed = input.parse(&base)?;
            let fields = InputFields::of(&base)
                .account(Some(input.account_id), "accountId")
                .amount()
                .named(Subject::ValueDate, "valueDate");
            let fingerprint = inputs::fingerprint(parsed.command.name(), &parsed.canonical);
            (
                BatchCommand::Withdraw(parsed.command),
                parsed.key,
                fields,
                fingerprint,
            )
        }
        BatchOperationInput::Transfer(input) => {
            let base = at("transfer");
            let parsed = input.parse(&base)?;
            let fields = InputFields::of(&base)
                .account(Some(input.from_account_id), "fromAccountId")
                .account(Some(input.to_account_id), "toAccountId")
                .amount()
                .counterparty("toAccountId")
                .named(Subject::ValueDate, "valueDate");
            let fingerprint = inputs::fingerprint(parsed.command.name(), &parsed.canonical);
            (
                BatchCommand::Transfer(parsed.command),
                parsed.key,
                fields,
                fingerprint,
            )
        }
    };
    let request = RequestContext::of(ctx)?;
    let context = CommandContext {
        actor: request.principal.actor.clone(),
        roles: request.principal.role_names(),
        correlation_id: request.correlation_id.clone(),
        client_addr: request.client_addr.clone(),
        idempotency_key: key,
        request_hash: fingerprint,
    };
    Ok((BatchOperation { context, command }, fields))
}

fn batch_payload(results: Vec<Option<BatchResult>>) -> BatchPayload {
    let results: Vec<BatchResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| {
            result.unwrap_or_else(|| {
                BatchResult::refused(
                    index,
                    &ApiError::internal("a batch operation was not answered"),
                )
            })
        })
        .collect();
    let committed = results.iter().filter(|r| r.ok).count() as i32;
    let position = results
        .iter()
        .filter_map(|r| r.position.as_deref())
        .filter_map(|p| p.parse::<i64>().ok())
        .max()
        .map(|p| p.to_string());
    BatchPayload {
        results,
        committed,
        position,
    }
}

/// A command's refusal as the client sees it: its code, its message, and the input it is about.
fn command_error(error: CommandError, fields: &InputFields) -> ApiError {
    match &error {
        CommandError::Unavailable(source) => {
            tracing::warn!(error = %source, "event store unavailable");
            ApiError::unavailable("the event store")
        }
        CommandError::Internal(source) => ApiError::internal(source),
        CommandError::Domain(refusal) => {
            let api = ApiError::new(error.code(), refusal.to_string());
            match fields.of_subject(refusal.subject()) {
                Some(field) => api.at(&field),
                None => api,
            }
        }
        CommandError::IdempotencyKeyReused { .. } => {
            ApiError::new(error.code(), error.to_string()).at(&fields.path("idempotencyKey"))
        }
        CommandError::ConcurrencyConflict { .. } | CommandError::LinkedOperationFailed { .. } => {
            ApiError::new(error.code(), error.to_string())
        }
    }
}
