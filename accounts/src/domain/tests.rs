//! The Account aggregate's rules, one test per rule and per error code, as given / when / then.

use ledger::{
    AccountEvent, Currency, ErrorCode, MoneyError,
    events::{AccountOpened, Movement, TransferCredited, TransferDebited},
};

use super::{AccountStatus, DomainError, fixture::*};

fn usd() -> Currency {
    Currency::parse("USD").expect("usd")
}

fn deposited(value: &str, after: &str) -> AccountEvent {
    AccountEvent::MoneyDeposited(Movement {
        amount: dec(value),
        currency: usd(),
        balance_after: dec(after),
        reference: None,
        value_date: at(),
    })
}

fn withdrawn(value: &str, after: &str) -> AccountEvent {
    AccountEvent::MoneyWithdrawn(Movement {
        amount: dec(value),
        currency: usd(),
        balance_after: dec(after),
        reference: None,
        value_date: at(),
    })
}

// --- opening -----------------------------------------------------------------

#[test]
fn opens_an_account_with_its_currency_and_overdraft_limit() {
    let new = History::never_opened();
    given(&new)
        .when(open(new.id, "EUR", "250"))
        .then(vec![AccountEvent::AccountOpened(AccountOpened {
            account_id: new.id,
            holder: "Ada Lovelace".into(),
            currency: Currency::parse("EUR").expect("eur"),
            overdraft_limit: dec("250.00"),
        })]);
}

#[test]
fn rejects_opening_an_account_that_exists() {
    let existing = History::opened("USD");
    given(&existing)
        .when(open(existing.id, "USD", "0"))
        .then_err(DomainError::AccountAlreadyExists(existing.id));
}

#[test]
fn a_new_account_is_open_at_zero_with_version_one() {
    let state = History::opened("JPY").state().expect("opened");
    assert_eq!(state.status, AccountStatus::Open);
    assert_eq!(state.balance.to_string(), "0");
    assert_eq!(state.version, 1);
}

// --- deposits ----------------------------------------------------------------

#[test]
fn a_deposit_credits_the_account_and_records_the_balance_after() {
    let account = History::opened("USD").deposited("100");
    given(&account)
        .when(deposit(account.id, "25.5"))
        .then(vec![deposited("25.50", "125.50")]);
}

#[test]
fn rejects_a_deposit_to_an_account_that_does_not_exist() {
    let ghost = History::never_opened();
    given(&ghost)
        .when(deposit(ghost.id, "10"))
        .then_err(DomainError::AccountNotFound(ghost.id));
}

#[test]
fn rejects_an_amount_with_more_decimal_places_than_the_currency() {
    let yen = History::opened("JPY");
    given(&yen)
        .when(deposit(yen.id, "10.5"))
        .then_err_matching(|e| {
            matches!(
                e,
                DomainError::InvalidAmount(MoneyError::TooManyDecimalPlaces { minor_units: 0, .. })
            ) && e.code() == ErrorCode::InvalidAmount
        });
    let dollars = History::opened("USD");
    given(&dollars)
        .when(deposit(dollars.id, "0.001"))
        .then_err_matching(|e| matches!(e, DomainError::InvalidAmount(_)));
}

#[test]
fn accepts_three_decimal_places_for_a_three_decimal_currency() {
    let dinar = History::opened("BHD");
    let result = decide_deposit_balance(&dinar, "1.005");
    assert_eq!(result, Some("1.005".to_string()));
}

fn decide_deposit_balance(history: &History, value: &str) -> Option<String> {
    let events = super::decide(
        history.state().as_ref(),
        &deposit(history.id, value),
        &booking(),
    )
    .ok()?;
    events
        .first()
        .and_then(AccountEvent::balance_after)
        .map(|b| b.to_string())
}

// --- withdrawals -------------------------------------------------------------

#[test]
fn a_withdrawal_debits_the_account() {
    let account = History::opened("USD").deposited("100");
    given(&account)
        .when(withdraw(account.id, "40"))
        .then(vec![withdrawn("40.00", "60.00")]);
}

#[test]
fn rejects_a_withdrawal_beyond_the_balance() {
    let account = History::opened("USD").deposited("100");
    given(&account)
        .when(withdraw(account.id, "150"))
        .then_err(DomainError::InsufficientFunds {
            account_id: account.id,
            requested: dec("150.00"),
            available: dec("100.00"),
            currency: usd(),
        });
}

#[test]
fn a_withdrawal_may_use_the_overdraft_down_to_its_limit() {
    let account = History::opened_with_overdraft("USD", "50").deposited("100");
    given(&account)
        .when(withdraw(account.id, "150"))
        .then(vec![withdrawn("150.00", "-50.00")]);
}

#[test]
fn rejects_a_withdrawal_beyond_the_overdraft_limit() {
    let account = History::opened_with_overdraft("USD", "50").deposited("100");
    given(&account)
        .when(withdraw(account.id, "150.01"))
        .then_err_matching(|e| e.code() == ErrorCode::InsufficientFunds);
}

#[test]
fn rejects_a_withdrawal_from_an_account_that_does_not_exist() {
    let ghost = History::never_opened();
    given(&ghost)
        .when(withdraw(ghost.id, "1"))
        .then_err(DomainError::AccountNotFound(ghost.id));
}

// --- frozen accounts ---------------------------------------------------------

#[test]
fn a_frozen_account_takes_no_deposits() {
    let account = History::opened("USD").deposited("10").frozen();
    given(&account)
        .when(deposit(account.id, "1"))
        .then_err(DomainError::AccountFrozen(account.id));
}

#[test]
fn a_frozen_account_takes_no_withdrawals() {
    let account = History::opened("USD").deposited("10").frozen();
    given(&account)
        .when(withdraw(account.id, "1"))
        .then_err(DomainError::AccountFrozen(account.id));
}

#[test]
fn freezing_a_frozen_account_is_refused() {
    let account = History::opened("USD").frozen();
    given(&account)
        .when(freeze(account.id))
        .then_err_matching(|e| {
            *e == DomainError::AlreadyFrozen(account.id) && e.code() == ErrorCode::AccountFrozen
        });
}

#[test]
fn an_open_account_can_be_frozen_and_unfrozen() {
    let account = History::opened("USD");
    given(&account)
        .when(freeze(account.id))
        .then(vec![AccountEvent::AccountFrozen(reason("review"))]);
    let frozen = account.frozen();
    given(&frozen)
        .when(unfreeze(frozen.id))
        .then(vec![AccountEvent::AccountUnfrozen(reason("cleared"))]);
    let thawed = super::evolve(
        frozen.state(),
        &AccountEvent::AccountUnfrozen(reason("cleared")),
        at(),
    );
    assert_eq!(thawed.map(|a| a.status), Some(AccountStatus::Open));
}

#[test]
fn unfreezing_an_account_that_is_not_frozen_is_a_validation_error() {
    let account = History::opened("USD");
    given(&account)
        .when(unfreeze(account.id))
        .then_err_matching(|e| {
            *e == DomainError::NotFrozen(account.id) && e.code() == ErrorCode::Validation
        });
}

// --- closing -----------------------------------------------------------------

#[test]
fn an_account_closes_only_at_zero_balance() {
    let account = History::opened("USD").deposited("10");
    given(&account)
        .when(close(account.id))
        .then_err(DomainError::NonzeroBalance {
            account_id: account.id,
            balance: dec("10.00"),
            currency: usd(),
        });
    let emptied = account.withdrew("10");
    given(&emptied)
        .when(close(emptied.id))
        .then(vec![AccountEvent::AccountClosed(reason(
            "customer request",
        ))]);
}

#[test]
fn an_overdrawn_account_cannot_be_closed() {
    let account = History::opened_with_overdraft("USD", "20").withdrew("5");
    given(&account)
        .when(close(account.id))
        .then_err_matching(|e| e.code() == ErrorCode::NonzeroBalance);
}

#[test]
fn a_frozen_account_at_zero_can_be_closed() {
    let account = History::opened("USD").frozen();
    given(&account)
        .when(close(account.id))
        .then(vec![AccountEvent::AccountClosed(reason(
            "customer request",
        ))]);
}

#[test]
fn a_closed_account_takes_nothing() {
    let account = History::opened("USD").closed();
    for command in [
        deposit(account.id, "1"),
        withdraw(account.id, "1"),
        freeze(account.id),
        unfreeze(account.id),
        close(account.id),
    ] {
        given(&account)
            .when(command)
            .then_err(DomainError::AccountClosed(account.id));
    }
}

// --- transfers ---------------------------------------------------------------

#[test]
fn a_transfer_debits_the_source_and_credits_the_destination() {
    let from = History::opened("USD").deposited("100");
    let to = History::opened("USD").deposited("5");
    let command = transfer(&from, &to, "30");
    given_transfer(&from, &to).when(&command).then(
        AccountEvent::TransferDebited(TransferDebited {
            transfer_id: command.transfer_id,
            to_account_id: to.id,
            amount: dec("30.00"),
            currency: usd(),
            balance_after: dec("70.00"),
            reference: None,
            value_date: at(),
        }),
        AccountEvent::TransferCredited(TransferCredited {
            transfer_id: command.transfer_id,
            from_account_id: from.id,
            amount: dec("30.00"),
            currency: usd(),
            balance_after: dec("35.00"),
            reference: None,
            value_date: at(),
        }),
    );
}

#[test]
fn a_transfer_neither_creates_nor_destroys_money() {
    for value in ["0.01", "1", "33.33", "99.99", "100"] {
        let from = History::opened("USD").deposited("100");
        let to = History::opened("USD").deposited("12.34");
        let before = dec("112.34");
        let outcome = given_transfer(&from, &to)
            .when(&transfer(&from, &to, value))
            .result;
        let (debit, credit) = outcome.expect("transfer within balance");
        let after = debit.balance_after().expect("debit balance")
            + credit.balance_after().expect("credit balance");
        assert_eq!(after, before, "transfer of {value}");
        assert_eq!(
            debit.balance_change().map(|d| -d),
            credit.balance_change(),
            "legs of {value} mirror each other"
        );
    }
}

#[test]
fn rejects_a_transfer_to_the_same_account() {
    let account = History::opened("USD").deposited("100");
    given_transfer(&account, &account)
        .when(&transfer(&account, &account, "1"))
        .then_err(DomainError::SameAccount);
}

#[test]
fn rejects_a_transfer_between_currencies() {
    let dollars = History::opened("USD").deposited("100");
    let euros = History::opened("EUR");
    given_transfer(&dollars, &euros)
        .when(&transfer(&dollars, &euros, "10"))
        .then_err(DomainError::CurrencyMismatch {
            from: usd(),
            to: Currency::parse("EUR").expect("eur"),
            to_account: euros.id,
        });
}

#[test]
fn rejects_a_transfer_beyond_the_source_balance() {
    let from = History::opened("USD").deposited("10");
    let to = History::opened("USD");
    given_transfer(&from, &to)
        .when(&transfer(&from, &to, "10.01"))
        .then_err_matching_code(ErrorCode::InsufficientFunds);
}

#[test]
fn rejects_a_transfer_from_or_to_an_account_that_does_not_exist() {
    let real = History::opened("USD").deposited("10");
    let ghost = History::never_opened();
    given_transfer(&ghost, &real)
        .when(&transfer(&ghost, &real, "1"))
        .then_err(DomainError::AccountNotFound(ghost.id));
    given_transfer(&real, &ghost)
        .when(&transfer(&real, &ghost, "1"))
        .then_err(DomainError::AccountNotFound(ghost.id));
}

#[test]
fn rejects_a_transfer_touching_a_frozen_or_closed_account() {
    let open = History::opened("USD").deposited("10");
    let frozen = History::opened("USD").deposited("10").frozen();
    let closed = History::opened("USD").closed();
    given_transfer(&frozen, &open)
        .when(&transfer(&frozen, &open, "1"))
        .then_err(DomainError::AccountFrozen(frozen.id));
    given_transfer(&open, &frozen)
        .when(&transfer(&open, &frozen, "1"))
        .then_err(DomainError::AccountFrozen(frozen.id));
    given_transfer(&open, &closed)
        .when(&transfer(&open, &closed, "1"))
        .then_err(DomainError::AccountClosed(closed.id));
}

#[test]
fn a_transfer_may_use_the_source_overdraft() {
    let from = History::opened_with_overdraft("USD", "100");
    let to = History::opened("USD");
    let outcome = given_transfer(&from, &to)
        .when(&transfer(&from, &to, "100"))
        .result;
    let (debit, _) = outcome.expect("within overdraft");
    assert_eq!(debit.balance_after(), Some(dec("-100.00")));
}

#[test]
fn a_transfer_amount_must_fit_the_currency() {
    let from = History::opened("JPY").deposited("1000");
    let to = History::opened("JPY");
    given_transfer(&from, &to)
        .when(&transfer(&from, &to, "0.5"))
        .then_err_matching_code(ErrorCode::InvalidAmount);
}

// --- evolve ------------------------------------------------------------------

#[test]
fn evolve_counts_versions_and_keeps_the_latest_balance() {
    let history = History::opened("USD")
        .deposited("100")
        .withdrew("30")
        .deposited("0.5");
    let state = history.state().expect("opened");
    assert_eq!(state.version, 4);
    assert_eq!(state.balance, dec("70.50"));
    assert_eq!(state.opened_at, opened_at());
}

#[test]
fn every_domain_error_has_one_stable_code() {
    let id = ledger::AccountId::generate();
    let codes = [
        (DomainError::AccountNotFound(id), ErrorCode::AccountNotFound),
        (DomainError::AccountAlreadyExists(id), ErrorCode::Validation),
        (DomainError::AccountFrozen(id), ErrorCode::AccountFrozen),
        (DomainError::AccountClosed(id), ErrorCode::AccountClosed),
        (DomainError::SameAccount, ErrorCode::SameAccount),
    ];
    for (error, code) in codes {
        assert_eq!(error.code(), code, "{error}");
    }
}

trait ThenTransferExt {
    fn then_err_matching_code(self, code: ErrorCode);
}

impl ThenTransferExt for ThenTransfer {
    fn then_err_matching_code(self, code: ErrorCode) {
        match self.result {
            Err(e) => assert_eq!(e.code(), code, "{e}"),
            Ok(legs) => panic!("expected {code}, got {legs:?}"),
        }
    }
}
