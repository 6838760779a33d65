//! The accounts service's GraphQL: the mutations that move money and the strongly
//! consistent `account(id)` query. Inputs are parsed into domain commands here, and
//! every refusal leaves with its error code and the field it concerns.

mod inputs;
mod integrity;
mod outputs;

use async_graphql::{Context, EmptySubscription, MergedObject, Object, Schema};
use ledger::AccountId;
use platform::{
    ApiError, RequestContext, Role,
    graphql::{RoleGuard, with_limits},
    scalars::Uuid,
};

use crate::{
    commands::{AccountsService, CommandContext, CommandError, Outcome},
    domain::Command,
};

pub use inputs::{
    AccountStatusInput, DepositInput, OpenAccountInput, TransferInput, WithdrawInput,
};
pub use integrity::{IntegrityData, IntegrityQuery, VERIFY_ONLINE_EVENTS_MAX};
pub use outputs::{AccountPayload, AccountStatus, AccountView, MovementPayload, TransferPayload};

pub type AccountsSchema = Schema<AccountsQueries, AccountsMutation, EmptySubscription>;

/// Every query of the accounts service.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct AccountsQueries(AccountsQuery, IntegrityQuery);

const TELLER: &[Role] = &[Role::Teller];
const SUPERVISOR: &[Role] = &[Role::Supervisor];
const ANY_ROLE: &[Role] = &[Role::Teller, Role::Supervisor, Role::Auditor];

/// The accounts service on its own (as `folio accounts` serves it).
pub fn schema(service: AccountsService, integrity: IntegrityData) -> AccountsSchema {
    with_limits(Schema::build(
        AccountsQueries::default(),
        AccountsMutation,
        EmptySubscription,
    ))
    .data(service)
    .data(integrity)
    .finish()
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The account as the event store knows it right now (strongly consistent; null if there is none).
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn account(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<AccountView>, ApiError> {
        let account = service(ctx)?
            .account(AccountId::from_uuid(id.0))
            .await
            .map_err(command_error)?;
        account.map(AccountView::try_from).transpose()
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object(name = "Mutation")]
impl AccountsMutation {
    /// Opens an account in one currency, optionally with an overdraft limit (teller).
    #[graphql(guard = "RoleGuard::new(TELLER)")]
    async fn open_account(
        &self,
        ctx: &Context<'_>,
        input: OpenAccountInput,
    ) -> Result<AccountPayload, ApiError> {
        execute(ctx, "openAccount", input.parse(), &input).await
    }

    /// Credits an account (teller).
    #[graphql(guard = "RoleGuard::new(TELLER)")]
    async fn deposit(
        &self,
        ctx: &Context<'_>,
        input: DepositInput,
    ) -> Result<MovementPayload, ApiError> {
        execute(ctx, "deposit", input.parse(), &input).await
    }

    /// Debits an account, never below minus its overdraft limit (teller).
    #[graphql(guard = "RoleGuard::new(TELLER)")]
    async fn withdraw(
        &self,
        ctx: &Context<'_>,
        input: WithdrawInput,
    ) -> Result<MovementPayload, ApiError> {
        execute(ctx, "withdraw", input.parse(), &input).await
    }

    /// Moves money between two open accounts of one currency: both legs or neither (teller).
    #[graphql(guard = "RoleGuard::new(TELLER)")]
    async fn transfer(
        &self,
        ctx: &Context<'_>,
        input: TransferInput,
    ) -> Result<TransferPayload, ApiError> {
        let (transfer, key) = input.parse()?;
        let from = transfer.from;
        let context = command_context(ctx, "transfer", key, &input)?;
        let outcome = service(ctx)?
            .transfer(&context, transfer)
            .await
            .map_err(|e| transfer_error(e, from))?;
        TransferPayload::try_from(outcome)
    }

    /// Stops all debits and credits until unfrozen (supervisor).
    #[graphql(guard = "RoleGuard::new(SUPERVISOR)")]
    async fn freeze_account(
        &self,
        ctx: &Context<'_>,
        input: AccountStatusInput,
    ) -> Result<AccountPayload, ApiError> {
        execute(ctx, "freezeAccount", input.freeze(), &input).await
    }

    /// Lets a frozen account take debits and credits again (supervisor).
    #[graphql(guard = "RoleGuard::new(SUPERVISOR)")]
    async fn unfreeze_account(
        &self,
        ctx: &Context<'_>,
        input: AccountStatusInput,
    ) -> Result<AccountPayload, ApiError> {
        execute(ctx, "unfreezeAccount", input.unfreeze(), &input).await
    }

    /// Closes an account whose balance is zero; it then takes nothing (supervisor).
    #[graphql(guard = "RoleGuard::new(SUPERVISOR)")]
    async fn close_account(
        &self,
        ctx: &Context<'_>,
        input: AccountStatusInput,
    ) -> Result<AccountPayload, ApiError> {
        execute(ctx, "closeAccount", input.close(), &input).await
    }
}

/// Runs a parsed single-account command under the request's context and shapes its answer.
async fn execute<P>(
    ctx: &Context<'_>,
    command_type: &'static str,
    parsed: Result<(Command, String), ApiError>,
    input: &impl serde::Serialize,
) -> Result<P, ApiError>
where
    P: TryFrom<Outcome, Error = ApiError>,
{
    let (command, key) = parsed?;
    let context = command_context(ctx, command_type, key, input)?;
    let outcome = service(ctx)?
        .execute(&context, command)
        .await
        .map_err(command_error)?;
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
    input: &impl serde::Serialize,
) -> Result<CommandContext, ApiError> {
    let request = RequestContext::of(ctx)?;
    Ok(CommandContext {
        actor: request.principal.actor.clone(),
        roles: request.principal.role_names(),
        correlation_id: request.correlation_id.clone(),
        client_addr: request.client_addr.clone(),
        command_type,
        idempotency_key,
        request_hash: inputs::fingerprint(command_type, input),
    })
}

fn command_error(error: CommandError) -> ApiError {
    use crate::domain::DomainError as D;
    match &error {
        CommandError::Unavailable(source) => {
            tracing::warn!(error = %source, "event store unavailable");
            ApiError::unavailable("the event store")
        }
        CommandError::Internal(source) => ApiError::internal(source),
        // Refusals about the one account a command names.
        CommandError::Domain(
            D::AccountFrozen(_)
            | D::AlreadyFrozen(_)
            | D::NotFrozen(_)
            | D::AccountClosed(_)
            | D::NonzeroBalance { .. },
        ) => ApiError::new(error.code(), format!("accountId: {error}")),
        _ => ApiError::new(error.code(), error.to_string()),
    }
}

/// Like [`command_error`], but names which side of the transfer a refusal concerns.
fn transfer_error(error: CommandError, from: AccountId) -> ApiError {
    use crate::domain::DomainError as D;
    let field = |id: AccountId| {
        if id == from {
            "fromAccountId"
        } else {
            "toAccountId"
        }
    };
    match &error {
        CommandError::Domain(D::AccountNotFound(id)) => {
            ApiError::new(error.code(), format!("{}: no account {id}", field(*id)))
        }
        CommandError::Domain(D::AccountFrozen(id) | D::AccountClosed(id)) => {
            ApiError::new(error.code(), format!("{}: {error}", field(*id)))
        }
        _ => command_error(error),
    }
}

/// The outcome of a command did not have the expected shape: a programming error.
fn unexpected(outcome: &Outcome) -> ApiError {
    ApiError::internal(format!("unexpected command outcome {outcome:?}"))
}
