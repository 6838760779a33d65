//! The demo's three months, day by day: accounts opened over the first days; salaries on
//! the 25th (a payroll batch, or a transfer from an employer that banks here); rent on the
//! 1st; interest on the 1st, valued on the last day of the month before; card spending,
//! money to friends, card settlements and supplier invoices on ordinary days; and a few
//! scenes a bank lives through ([`Scene`]): a stolen card (freeze, a refused transfer,
//! unfreeze), holds captured, released and still active, a customer who leaves (balance
//! paid out, account closed, a refused deposit), a transfer to the wrong person reversed,
//! an identity review that freezes an account for good, and two refusals for want of funds.
//!
//! Every amount is drawn from the seeded generator and kept within what the account can
//! pay, so the only refusals are the ones the scenes mean.

// Amounts in cents are written units_cents, so 350_00 reads as 350.00.
#![allow(clippy::inconsistent_digit_grouping)]

use anyhow::{Context as _, bail};
use chrono::{DateTime, Datelike, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    cast::{CAST, Member, Part, index_of},
    seeder::{ALICE, Actor, BOB, PAYROLL, Refused, SAM, Seeder},
};

/// How many days the story covers, up to today.
pub const STORY_DAYS: i64 = 91;
/// Accounts opened on each of the first days.
const OPENED_PER_DAY: usize = 10;
/// No step is booked closer to the clock than this (the store refuses the future).
const MARGIN_BEFORE_NOW: Duration = Duration::minutes(5);

const OPEN: &str = "mutation($i: OpenAccountInput!) { openAccount(input: $i) { account { id } } }";
const DEPOSIT: &str = "mutation($i: DepositInput!) { deposit(input: $i) { eventId } }";
const WITHDRAW: &str = "mutation($i: WithdrawInput!) { withdraw(input: $i) { eventId } }";
const TRANSFER: &str = "mutation($i: TransferInput!) { transfer(input: $i) { transferId } }";
const BATCH: &str =
    "mutation($i: BatchInput!) { executeBatch(input: $i) { results { ok code message } } }";
const FREEZE: &str = "mutation($i: AccountStatusInput!) { freezeAccount(input: $i) { position } }";
const UNFREEZE: &str =
    "mutation($i: AccountStatusInput!) { unfreezeAccount(input: $i) { position } }";
const CLOSE: &str = "mutation($i: AccountStatusInput!) { closeAccount(input: $i) { position } }";
const PLACE_HOLD: &str = "mutation($i: PlaceHoldInput!) { placeHold(input: $i) { hold { id } } }";
const CAPTURE_HOLD: &str =
    "mutation($i: CaptureHoldInput!) { captureHold(input: $i) { hold { status } } }";
const RELEASE_HOLD: &str =
    "mutation($i: ReleaseHoldInput!) { releaseHold(input: $i) { hold { status } } }";
const REVERSE: &str = "mutation($i: ReverseInput!) { reverse(input: $i) { reversalId } }";

const SPENDING: [&str; 9] = [
    "ATM withdrawal",
    "card: grocery store",
    "card: pharmacy",
    "card: fuel station",
    "card: online order",
    "card: restaurant",
    "electricity bill",
    "mobile phone bill",
    "card: Blue Ridge Coffee Co.",
];
const BETWEEN_FRIENDS: [&str; 6] = [
    "dinner",
    "concert tickets",
    "birthday present",
    "shared taxi",
    "holiday flat, my share",
    "football tickets",
];

/// Whether an account takes movements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Open,
    Frozen,
    Closed,
}

/// An account as the story keeps track of it (checked against the store at the end).
#[derive(Clone, Debug)]
pub struct Seat {
    pub member: Member,
    pub id: Uuid,
    /// In the account's currency (major units, two decimals), as the story expects it.
    pub balance: Decimal,
    /// What the story's active holds reserve.
    pub held: Decimal,
    pub overdraft: Decimal,
    pub status: Status,
    /// Monthly salary and rent (zero for businesses, or a person who owns their home).
    salary: Decimal,
    rent: Decimal,
    opened: bool,
}

impl Seat {
    fn available(&self) -> Decimal {
        self.balance - self.held
    }

    fn takes_movements(&self) -> bool {
        self.opened && self.status == Status::Open
    }
}

/// A request the story made and the platform refused, as it should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What was attempted, in words.
    pub attempt: String,
    /// `extensions.code`, e.g. INSUFFICIENT_FUNDS.
    pub code: String,
}

/// One thing that happens on a day, at a second of it.
#[derive(Clone, Debug)]
enum Step {
    Open(usize),
    OpeningDeposit(usize),
    Payroll,
    Rent(usize),
    Interest(usize),
    Spend(usize),
    Gift(usize),
    Settlement(usize),
    Invoice(usize),
    Scene(Scene),
}

/// The story being told: the generator, the clock's range and every seat.
pub struct Story {
    seeder: Seeder,
    rng: fastrand::Rng,
    /// Midnight (UTC) of the story's first day.
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    pub seats: Vec<Seat>,
    pub refusals: Vec<Refusal>,
    hold_ids: Vec<Uuid>,
    /// The transfer of the wrong-recipient scene, until it is put right.
    wrong_transfer: Option<String>,
}

impl Story {
    /// A story of [`STORY_DAYS`] days ending at `now`, drawn from `seed`.
    pub fn new(seeder: Seeder, seed: u64, now: DateTime<Utc>) -> Self {
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        let mut rng = fastrand::Rng::with_seed(seed);
        let seats = CAST.iter().map(|member| seat(&mut rng, *member)).collect();
        Self {
            seeder,
            rng,
            start: today - Duration::days(STORY_DAYS),
            now,
            seats,
            refusals: Vec::new(),
            hold_ids: Vec::new(),
            wrong_transfer: None,
        }
    }

    pub fn seeder(&self) -> &Seeder {
        &self.seeder
    }

    /// Tells every day of the story, in order, each step at its instant.
    pub async fn tell(&mut self) -> anyhow::Result<()> {
        for day in 0..=STORY_DAYS {
            let mut steps = self.plan(day);
            steps.sort_by_key(|(second, _)| *second);
            for (second, step) in steps {
                let at = self.start + Duration::days(day) + Duration::seconds(second);
                if at > self.now - MARGIN_BEFORE_NOW {
                    break;
                }
                self.run(at, step)
                    .await
                    .with_context(|| format!("the demo's day {day}"))?;
            }
        }
        Ok(())
    }

    /// What happens on `day`, each at a second of the day.
    fn plan(&mut self, day: i64) -> Vec<(i64, Step)> {
        let date = (self.start + Duration::days(day)).date_naive();
        let mut steps = Vec::new();
        let first = day as usize * OPENED_PER_DAY;
        for index in first..(first + OPENED_PER_DAY).min(CAST.len()) {
            let second = self.office_second();
            steps.push((second, Step::Open(index)));
            let later = second + self.rng.i64(120..1200);
            steps.push((later, Step::OpeningDeposit(index)));
        }
        if date.day() == 25 {
            steps.push((6 * 3600, Step::Payroll));
        }
        for index in 0..self.seats.len() {
            let part = self.seats[index].member.part;
            if date.day() == 1 && !self.seats[index].rent.is_zero() {
                steps.push((8 * 3600 + self.rng.i64(0..3600), Step::Rent(index)));
            }
            if date.day() == 1 && part == Part::Person && index.is_multiple_of(5) {
                steps.push((7 * 3600 + index as i64, Step::Interest(index)));
            }
            self.plan_ordinary(index, date.weekday().num_days_from_monday(), &mut steps);
        }
        for scene in scenes_on(day) {
            steps.push((self.office_second(), Step::Scene(scene)));
        }
        steps
    }

    /// An ordinary day's spending, gifts, settlements and invoices of one account.
    fn plan_ordinary(&mut self, index: usize, weekday: u32, steps: &mut Vec<(i64, Step)>) {
        match self.seats[index].member.part {
            Part::Person => {
                if self.rng.f64() < 0.2 {
                    steps.push((self.office_second(), Step::Spend(index)));
                }
                if self.rng.f64() < 0.04 {
                    steps.push((self.office_second(), Step::Gift(index)));
                }
            }
            Part::Shop | Part::Employer | Part::Landlord => {
                let settles = match self.seats[index].member.part {
                    Part::Shop => weekday == 0 || weekday == 3,
                    Part::Employer => weekday == 1,
                    _ => false,
                };
                if settles {
                    steps.push((self.office_second(), Step::Settlement(index)));
                }
                if weekday == 2 {
                    steps.push((self.office_second(), Step::Invoice(index)));
                }
            }
        }
    }

    /// A second between 07:30 and 19:00.
    fn office_second(&mut self) -> i64 {
        self.rng.i64(7 * 3600 + 1800..19 * 3600)
    }

    async fn run(&mut self, at: DateTime<Utc>, step: Step) -> anyhow::Result<()> {
        match step {
            Step::Open(index) => self.open(at, index).await,
            Step::OpeningDeposit(index) => self.opening_deposit(at, index).await,
            Step::Payroll => self.payroll(at).await,
            Step::Rent(index) => {
                let (rent, landlord) = (self.seats[index].rent, self.landlord_of(index));
                let reference = format!("rent {}", at.format("%B %Y"));
                self.transfer_if_funded(at, BOB, index, landlord, rent, &reference)
                    .await
            }
            Step::Interest(index) => self.interest(at, index).await,
            Step::Spend(index) => self.spend(at, index).await,
            Step::Gift(index) => self.gift(at, index).await,
            Step::Settlement(index) => self.settlement(at, index).await,
            Step::Invoice(index) => self.invoice(at, index).await,
            Step::Scene(scene) => self.scene(at, scene).await,
        }
    }

    async fn open(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        let seat = &self.seats[index];
        let input = json!({ "accountId": seat.id, "holder": seat.member.holder,
            "currency": seat.member.currency, "overdraftLimit": seat.overdraft.to_string(),
            "idempotencyKey": self.seeder.key() });
        let correlation = format!("onboarding-{}", slug(seat.member.holder));
        self.seeder
            .ok(
                at,
                opened_by(index),
                &correlation,
                OPEN,
                json!({ "i": input }),
            )
            .await?;
        self.seats[index].opened = true;
        Ok(())
    }

    async fn opening_deposit(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        let opening = match self.seats[index].member.part {
            Part::Person => self.amount(500_00, 4_000_00),
            _ => self.amount(15_000_00, 60_000_00),
        };
        let correlation = format!("onboarding-{}", slug(self.seats[index].member.holder));
        let actor = opened_by(index);
        self.deposit(
            at,
            actor,
            &correlation,
            index,
            opening,
            "opening deposit",
            None,
        )
        .await
    }

    /// Salaries on the 25th: by transfer from an employer that banks here and can pay,
    /// otherwise in the payroll batch (deposits from employers elsewhere).
    async fn payroll(&mut self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let month = at.format("%B %Y").to_string();
        let correlation = format!("payroll-{}", at.format("%Y-%m"));
        let mut operations = Vec::new();
        let mut paid = Vec::new();
        for index in 0..self.seats.len() {
            let seat = &self.seats[index];
            if seat.salary.is_zero() || !seat.takes_movements() {
                continue;
            }
            let employer = self.employer_of(index);
            let salary = seat.salary;
            if index.is_multiple_of(3) && self.seats[employer].takes_movements() {
                let reference = format!("salary {month}");
                let at = at + Duration::seconds(index as i64);
                self.transfer_if_funded(at, PAYROLL, employer, index, salary, &reference)
                    .await?;
                continue;
            }
            let key = self.seeder.key();
            operations.push(json!({ "deposit": { "accountId": seat.id,
                "amount": salary.to_string(), "reference": format!("salary {month}"),
                "idempotencyKey": key } }));
            paid.push((index, salary));
        }
        if operations.is_empty() {
            return Ok(());
        }
        let at = at + Duration::minutes(5);
        let input = json!({ "operations": operations, "atomic": false });
        let data = self
            .seeder
            .ok(at, PAYROLL, &correlation, BATCH, json!({ "i": input }))
            .await?;
        let results = data["executeBatch"]["results"].as_array().cloned();
        for ((index, salary), result) in paid.into_iter().zip(results.unwrap_or_default()) {
            if result["ok"] != json!(true) {
                bail!("the payroll batch refused a salary: {result}");
            }
            self.seats[index].balance += salary;
        }
        Ok(())
    }

    async fn interest(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        if !self.seats[index].takes_movements() {
            return Ok(());
        }
        let value_date = at
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc() - Duration::seconds(1));
        let Some(value_date) = value_date else {
            return Ok(());
        };
        let reference = format!("interest {}", value_date.format("%B %Y"));
        let amount = self.amount(40, 12_80);
        let correlation = format!("interest-{}", value_date.format("%Y-%m"));
        self.deposit(
            at,
            BOB,
            &correlation,
            index,
            amount,
            &reference,
            Some(value_date),
        )
        .await
    }

    async fn spend(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        let seat = &self.seats[index];
        let ceiling = (seat.available() * Decimal::new(3, 1)).min(Decimal::new(18_000, 2));
        if !seat.takes_movements() || ceiling < Decimal::new(10_00, 2) {
            return Ok(());
        }
        let amount = self.amount(8_00, cents(ceiling));
        let reference = SPENDING[self.rng.usize(..SPENDING.len())];
        let actor = if self.rng.bool() { ALICE } else { BOB };
        let correlation = format!("req-{}", self.rng.u32(..));
        self.withdraw(at, actor, &correlation, index, amount, reference)
            .await
    }

    async fn gift(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        let currency = self.seats[index].member.currency;
        let friends: Vec<usize> = (0..self.seats.len())
            .filter(|&i| i != index && self.seats[i].member.part == Part::Person)
            .filter(|&i| self.seats[i].member.currency == currency)
            .collect();
        if friends.is_empty() {
            return Ok(());
        }
        let friend = friends[self.rng.usize(..friends.len())];
        let amount = self.amount(15_00, 120_00);
        let reference = BETWEEN_FRIENDS[self.rng.usize(..BETWEEN_FRIENDS.len())];
        self.transfer_if_funded(at, ALICE, index, friend, amount, reference)
            .await
    }

    async fn settlement(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        if !self.seats[index].takes_movements() {
            return Ok(());
        }
        let (amount, reference) = match self.seats[index].member.part {
            Part::Employer => (self.amount(9_000_00, 24_000_00), "customer invoice paid"),
            _ => (self.amount(400_00, 3_500_00), "card settlement"),
        };
        let correlation = format!("req-{}", self.rng.u32(..));
        self.deposit(at, BOB, &correlation, index, amount, reference, None)
            .await
    }

    async fn invoice(&mut self, at: DateTime<Utc>, index: usize) -> anyhow::Result<()> {
        let seat = &self.seats[index];
        let ceiling = (seat.available() * Decimal::new(2, 1)).min(Decimal::new(1_800_00, 2));
        if !seat.takes_movements() || ceiling < Decimal::new(250_00, 2) {
            return Ok(());
        }
        let reference = match seat.member.part {
            Part::Landlord => "maintenance contractor",
            _ => "supplier invoice",
        };
        let amount = self.amount(200_00, cents(ceiling));
        let correlation = format!("req-{}", self.rng.u32(..));
        self.withdraw(at, BOB, &correlation, index, amount, reference)
            .await
    }

    /// A deposit the story expects to succeed.
    #[allow(clippy::too_many_arguments)]
    async fn deposit(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        correlation: &str,
        index: usize,
        amount: Decimal,
        reference: &str,
        value_date: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        let key = self.seeder.key();
        let mut input = json!({ "accountId": self.seats[index].id, "amount": amount.to_string(),
            "reference": reference, "idempotencyKey": key });
        if let Some(value_date) = value_date {
            input["valueDate"] = json!(value_date.to_rfc3339());
        }
        self.seeder
            .ok(at, actor, correlation, DEPOSIT, json!({ "i": input }))
            .await?;
        self.seats[index].balance += amount;
        Ok(())
    }

    /// A withdrawal the story expects to succeed.
    async fn withdraw(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        correlation: &str,
        index: usize,
        amount: Decimal,
        reference: &str,
    ) -> anyhow::Result<()> {
        let key = self.seeder.key();
        let input = json!({ "accountId": self.seats[index].id, "amount": amount.to_string(),
            "reference": reference, "idempotencyKey": key });
        self.seeder
            .ok(at, actor, correlation, WITHDRAW, json!({ "i": input }))
            .await?;
        self.seats[index].balance -= amount;
        Ok(())
    }

    /// A transfer, made only when both accounts take it and the payer can afford it.
    async fn transfer_if_funded(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        from: usize,
        to: usize,
        amount: Decimal,
        reference: &str,
    ) -> anyhow::Result<()> {
        let payable = self.seats[from].takes_movements() && self.seats[to].takes_movements();
        if !payable || self.seats[from].available() < amount {
            return Ok(());
        }
        let correlation = format!("req-{}", self.rng.u32(..));
        self.transfer(at, actor, &correlation, from, to, amount, reference)
            .await
            .map(|_| ())
    }

    /// A transfer the story expects to succeed; its `transferId`.
    #[allow(clippy::too_many_arguments)]
    async fn transfer(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        correlation: &str,
        from: usize,
        to: usize,
        amount: Decimal,
        reference: &str,
    ) -> anyhow::Result<String> {
        let input = self.transfer_input(from, to, amount, reference);
        let data = self
            .seeder
            .ok(at, actor, correlation, TRANSFER, json!({ "i": input }))
            .await?;
        self.seats[from].balance -= amount;
        self.seats[to].balance += amount;
        Ok(data["transfer"]["transferId"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    fn transfer_input(
        &mut self,
        from: usize,
        to: usize,
        amount: Decimal,
        reference: &str,
    ) -> Value {
        let key = self.seeder.key();
        json!({ "fromAccountId": self.seats[from].id, "toAccountId": self.seats[to].id,
            "amount": amount.to_string(), "reference": reference, "idempotencyKey": key })
    }

    /// A request the story expects the platform to refuse with `code`; recorded.
    async fn refused(
        &mut self,
        at: DateTime<Utc>,
        actor: Actor,
        correlation: &str,
        (query, input): (&str, Value),
        (attempt, code): (String, &str),
    ) -> anyhow::Result<()> {
        match self
            .seeder
            .call(at, actor, correlation, query, json!({ "i": input }))
            .await?
        {
            Err(Refused { code: got, .. }) if got == code => {
                self.refusals.push(Refusal { attempt, code: got });
                Ok(())
            }
            Err(other) => bail!("{attempt}: expected {code}, got {other:?}"),
            Ok(_) => bail!("{attempt}: expected {code}, but it was written"),
        }
    }

    fn landlord_of(&self, index: usize) -> usize {
        let currency = self.seats[index].member.currency;
        self.business_of(currency, Part::Landlord)
    }

    fn employer_of(&self, index: usize) -> usize {
        let currency = self.seats[index].member.currency;
        self.business_of(currency, Part::Employer)
    }

    fn business_of(&self, currency: &str, part: Part) -> usize {
        CAST.iter()
            .position(|m| m.currency == currency && m.part == part)
            .unwrap_or_default()
    }

    /// A whole number of cents from `low` to `high` (inclusive), as an amount.
    fn amount(&mut self, low: i64, high: i64) -> Decimal {
        Decimal::new(self.rng.i64(low..=high.max(low)), 2)
    }

    /// A version-4 id drawn from the story's generator (so the seed decides it).
    fn uuid(&mut self) -> Uuid {
        drawn_uuid(&mut self.rng)
    }
}

/// The teller who opens the `index`-th account.
fn opened_by(index: usize) -> Actor {
    if index.is_multiple_of(2) { ALICE } else { BOB }
}

/// A seat for `member`, with its salary and rent drawn from `rng`.
fn seat(rng: &mut fastrand::Rng, member: Member) -> Seat {
    let id = drawn_uuid(rng);
    let person = member.part == Part::Person;
    let (salary, rent) = match member.currency {
        "USD" => (rng.i64(3_200..=7_800), rng.i64(1_100..=2_400)),
        "EUR" => (rng.i64(2_400..=5_600), rng.i64(750..=1_600)),
        _ => (rng.i64(2_100..=4_900), rng.i64(850..=1_900)),
    };
    let renting = person && rng.u8(..4) != 0;
    let overdraft = if person && rng.u8(..3) == 0 { 500 } else { 0 };
    Seat {
        member,
        id,
        balance: Decimal::ZERO,
        held: Decimal::ZERO,
        overdraft: Decimal::new(overdraft, 0),
        status: Status::Open,
        salary: Decimal::new(if person { salary } else { 0 }, 0),
        rent: Decimal::new(if renting { rent } else { 0 }, 0),
        opened: false,
    }
}

fn drawn_uuid(rng: &mut fastrand::Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes()).into_uuid()
}

/// `amount` in whole cents.
fn cents(amount: Decimal) -> i64 {
    (amount * Decimal::ONE_HUNDRED)
        .trunc()
        .try_into()
        .unwrap_or_default()
}

/// The scenes of `day` (see the module documentation).
fn scenes_on(day: i64) -> Vec<Scene> {
    SCENES
        .iter()
        .filter(|(on, _)| *on == day)
        .map(|(_, scene)| *scene)
        .collect()
}

/// The correlation id of every request about the rent share sent to the wrong person.
const WRONG_RECIPIENT_CASE: &str = "case-priya-raman-rent-share";

/// What a bank lives through besides the ordinary days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scene {
    /// DeShawn asks the ATM for more than he has: INSUFFICIENT_FUNDS.
    ShortOfCash,
    /// Tyler's card is stolen: his account is frozen...
    StolenCard,
    /// ... a friend's transfer to him is refused: ACCOUNT_FROZEN ...
    TransferToStolenCard,
    /// ... and a week later, with a new card, it is unfrozen.
    NewCard,
    /// A hotel pre-authorises Sofia's card...
    HotelHold,
    /// ... and takes less than it held at checkout.
    HotelCheckout,
    /// A car rental holds a deposit on Anaïs's card...
    CarRentalHold,
    /// ... and releases it when the car comes back.
    CarReturned,
    /// A café tab: held, then captured to the café's account.
    CafeTab,
    /// Joaquín moves abroad: his balance is paid out and the account closed...
    MovesAbroad,
    /// ... and a refund sent afterwards is refused: ACCOUNT_CLOSED.
    RefundToClosed,
    /// A teller sends Priya's rent share to the wrong person...
    WrongRecipient,
    /// ... a supervisor reverses it and it goes to the right one.
    WrongRecipientPutRight,
    /// Björn's identity documents expire: frozen for good...
    IdentityReview,
    /// ... and Zoë's transfer to him is refused: ACCOUNT_FROZEN.
    TransferToReview,
    /// Ethan tries to send more than his overdraft allows: INSUFFICIENT_FUNDS.
    BeyondOverdraft,
    /// Yesterday a fuel pump pre-authorised Chloé's card; the hold is still active.
    FuelPumpHold,
}

/// The day of the story each scene happens on.
const SCENES: [(i64, Scene); 17] = [
    (12, Scene::ShortOfCash),
    (20, Scene::StolenCard),
    (21, Scene::TransferToStolenCard),
    (27, Scene::NewCard),
    (30, Scene::HotelHold),
    (33, Scene::HotelCheckout),
    (45, Scene::CarRentalHold),
    (49, Scene::CarReturned),
    (52, Scene::CafeTab),
    (58, Scene::MovesAbroad),
    (60, Scene::RefundToClosed),
    (63, Scene::WrongRecipient),
    (64, Scene::WrongRecipientPutRight),
    (72, Scene::IdentityReview),
    (76, Scene::TransferToReview),
    (84, Scene::BeyondOverdraft),
    (STORY_DAYS - 1, Scene::FuelPumpHold),
];

impl Story {
    /// One scene of the story; see [`SCENES`] for when.
    async fn scene(&mut self, at: DateTime<Utc>, scene: Scene) -> anyhow::Result<()> {
        match scene {
            Scene::ShortOfCash => self.short_of_cash(at, "DeShawn Williams").await,
            Scene::StolenCard => {
                let reason =
                    "card reported stolen; two ATM withdrawals the customer does not recognise";
                self.status(at, "Tyler Nguyen", FREEZE, reason, Status::Frozen)
                    .await
            }
            Scene::TransferToStolenCard => {
                self.send_to_frozen(at, "Marcus Johnson", "Tyler Nguyen")
                    .await
            }
            Scene::NewCard => {
                let reason = "new card issued; customer identity confirmed in branch";
                self.status(at, "Tyler Nguyen", UNFREEZE, reason, Status::Open)
                    .await
            }
            Scene::HotelHold => {
                self.place_hold(
                    at,
                    "Sofia Rossi",
                    350_00,
                    "hotel pre-authorisation, Lakeview Inn",
                    Duration::days(7),
                )
                .await
            }
            Scene::HotelCheckout => {
                self.capture_hold(at, 0, 286_40, None, "Lakeview Inn, 3 nights")
                    .await
            }
            Scene::CarRentalHold => {
                self.place_hold(
                    at,
                    "Anaïs Dubois",
                    600_00,
                    "car rental deposit",
                    Duration::days(14),
                )
                .await
            }
            Scene::CarReturned => self.release_hold(at, 1, "car returned undamaged").await,
            Scene::CafeTab => self.tab(at).await,
            Scene::MovesAbroad => self.leaves(at, "Joaquín Ortega").await,
            Scene::RefundToClosed => self.refund_to_closed(at, "Joaquín Ortega").await,
            Scene::WrongRecipient => self.wrong_recipient(at).await,
            Scene::IdentityReview => {
                let reason = "identity review: documents expired; customer asked to visit a branch";
                self.status(at, "Björn Lindqvist", FREEZE, reason, Status::Frozen)
                    .await
            }
            Scene::TransferToReview => {
                self.send_to_frozen(at, "Zoë Brontë", "Björn Lindqvist")
                    .await
            }
            Scene::WrongRecipientPutRight => self.wrong_recipient_put_right(at).await,
            Scene::BeyondOverdraft => {
                self.overdrawn_transfer(at, "Ethan O'Connor", "Hannah Goldberg")
                    .await
            }
            Scene::FuelPumpHold => {
                let reference = "fuel pump pre-authorisation";
                self.place_hold(at, "Chloé Tremblay", 120_00, reference, Duration::days(4))
                    .await
            }
        }
        .with_context(|| format!("scene {scene:?}"))
    }

    async fn status(
        &mut self,
        at: DateTime<Utc>,
        holder: &str,
        query: &str,
        reason: &str,
        status: Status,
    ) -> anyhow::Result<()> {
        let index = index_of(holder);
        let key = self.seeder.key();
        let input =
            json!({ "accountId": self.seats[index].id, "reason": reason, "idempotencyKey": key });
        let correlation = format!("case-{}", slug(holder));
        self.seeder
            .ok(at, SAM, &correlation, query, json!({ "i": input }))
            .await?;
        self.seats[index].status = status;
        Ok(())
    }

    async fn short_of_cash(&mut self, at: DateTime<Utc>, holder: &str) -> anyhow::Result<()> {
        let index = index_of(holder);
        let seat = &self.seats[index];
        let amount = (seat.available() + seat.overdraft + Decimal::new(200, 0)).round_dp(0);
        let key = self.seeder.key();
        let input = json!({ "accountId": seat.id, "amount": amount.to_string(),
            "reference": "ATM withdrawal", "idempotencyKey": key });
        let attempt = format!(
            "{holder} withdraws {amount} {}, more than the account holds",
            seat.member.currency
        );
        let correlation = format!("req-{}", self.rng.u32(..));
        self.refused(
            at,
            BOB,
            &correlation,
            (WITHDRAW, input),
            (attempt, "INSUFFICIENT_FUNDS"),
        )
        .await
    }

    async fn overdrawn_transfer(
        &mut self,
        at: DateTime<Utc>,
        from: &str,
        to: &str,
    ) -> anyhow::Result<()> {
        let (from_index, to_index) = (index_of(from), index_of(to));
        let seat = &self.seats[from_index];
        let amount = (seat.available() + seat.overdraft + Decimal::new(500, 0)).round_dp(0);
        let attempt = format!(
            "{from} sends {amount} {} to {to}, beyond the overdraft",
            seat.member.currency
        );
        let input = self.transfer_input(from_index, to_index, amount, "car deposit");
        let correlation = format!("req-{}", self.rng.u32(..));
        self.refused(
            at,
            ALICE,
            &correlation,
            (TRANSFER, input),
            (attempt, "INSUFFICIENT_FUNDS"),
        )
        .await
    }

    async fn send_to_frozen(
        &mut self,
        at: DateTime<Utc>,
        from: &str,
        to: &str,
    ) -> anyhow::Result<()> {
        let (from_index, to_index) = (index_of(from), index_of(to));
        let amount = Decimal::new(40_00, 2);
        let attempt = format!(
            "{from} sends {amount} {} to {to}, whose account is frozen",
            self.seats[from_index].member.currency
        );
        let input = self.transfer_input(from_index, to_index, amount, "concert tickets");
        let correlation = format!("req-{}", self.rng.u32(..));
        self.refused(
            at,
            ALICE,
            &correlation,
            (TRANSFER, input),
            (attempt, "ACCOUNT_FROZEN"),
        )
        .await
    }

    async fn refund_to_closed(&mut self, at: DateTime<Utc>, holder: &str) -> anyhow::Result<()> {
        let index = index_of(holder);
        let key = self.seeder.key();
        let input = json!({ "accountId": self.seats[index].id, "amount": "84.90",
            "reference": "refund, order 5521", "idempotencyKey": key });
        let attempt = format!(
            "a refund of 84.90 {} to {holder}, whose account is closed",
            self.seats[index].member.currency
        );
        let correlation = format!("req-{}", self.rng.u32(..));
        self.refused(
            at,
            BOB,
            &correlation,
            (DEPOSIT, input),
            (attempt, "ACCOUNT_CLOSED"),
        )
        .await
    }

    /// A customer leaves: the balance is paid out to their new bank, then the account closed.
    async fn leaves(&mut self, at: DateTime<Utc>, holder: &str) -> anyhow::Result<()> {
        let index = index_of(holder);
        let correlation = format!("case-{}", slug(holder));
        let balance = self.seats[index].balance;
        if balance > Decimal::ZERO {
            let reference = "closing balance paid out to PT50 0035 0651 0000 4861 0307 2";
            self.withdraw(at, ALICE, &correlation, index, balance, reference)
                .await?;
        }
        let later = at + Duration::minutes(25);
        let reason = "customer moved to Lisbon; balance paid out to the new bank";
        self.status(later, holder, CLOSE, reason, Status::Closed)
            .await
    }

    /// A teller sends a rent share to the wrong person ...
    async fn wrong_recipient(&mut self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let (from, wrong) = (index_of("Priya Raman"), index_of("Emily Park"));
        let amount = Decimal::new(250_00, 2);
        let transfer_id = self
            .transfer(
                at,
                ALICE,
                WRONG_RECIPIENT_CASE,
                from,
                wrong,
                amount,
                "rent share",
            )
            .await?;
        self.wrong_transfer = Some(transfer_id);
        Ok(())
    }

    /// ... a supervisor reverses it the next day, and the teller sends it to the right one.
    async fn wrong_recipient_put_right(&mut self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let (from, wrong, right) = (
            index_of("Priya Raman"),
            index_of("Emily Park"),
            index_of("Olivia Chen"),
        );
        let transfer_id = self
            .wrong_transfer
            .take()
            .context("no transfer to put right")?;
        let amount = Decimal::new(250_00, 2);
        let input = json!({ "transferId": transfer_id, "idempotencyKey": self.seeder.key(),
            "reason": "sent to the wrong account: the customer meant Olivia Chen" });
        self.seeder
            .ok(
                at,
                SAM,
                WRONG_RECIPIENT_CASE,
                REVERSE,
                json!({ "i": input }),
            )
            .await?;
        self.seats[from].balance += amount;
        self.seats[wrong].balance -= amount;
        let later = at + Duration::minutes(12);
        self.transfer(
            later,
            ALICE,
            WRONG_RECIPIENT_CASE,
            from,
            right,
            amount,
            "rent share",
        )
        .await
        .map(|_| ())
    }

    async fn place_hold(
        &mut self,
        at: DateTime<Utc>,
        holder: &str,
        amount: i64,
        reference: &str,
        lasts: Duration,
    ) -> anyhow::Result<()> {
        let index = index_of(holder);
        let amount = Decimal::new(amount, 2);
        let hold_id = self.uuid();
        let key = self.seeder.key();
        let input = json!({ "accountId": self.seats[index].id, "amount": amount.to_string(), "holdId": hold_id,
            "expiresAt": (at + lasts).to_rfc3339(), "reference": reference, "idempotencyKey": key });
        let correlation = format!("req-{}", self.rng.u32(..));
        self.seeder
            .ok(at, ALICE, &correlation, PLACE_HOLD, json!({ "i": input }))
            .await?;
        self.seats[index].held += amount;
        self.hold_ids.push(hold_id);
        Ok(())
    }

    async fn capture_hold(
        &mut self,
        at: DateTime<Utc>,
        hold: usize,
        amount: i64,
        to: Option<usize>,
        reference: &str,
    ) -> anyhow::Result<()> {
        let hold_id = self.hold_ids[hold];
        let index = self.hold_account(hold)?;
        let amount = Decimal::new(amount, 2);
        let key = self.seeder.key();
        let mut input = json!({ "holdId": hold_id, "amount": amount.to_string(), "reference": reference, "idempotencyKey": key });
        if let Some(to) = to {
            input["toAccountId"] = json!(self.seats[to].id);
            self.seats[to].balance += amount;
        }
        let correlation = format!("req-{}", self.rng.u32(..));
        self.seeder
            .ok(at, ALICE, &correlation, CAPTURE_HOLD, json!({ "i": input }))
            .await?;
        self.seats[index].balance -= amount;
        self.seats[index].held = Decimal::ZERO;
        Ok(())
    }

    async fn release_hold(
        &mut self,
        at: DateTime<Utc>,
        hold: usize,
        reason: &str,
    ) -> anyhow::Result<()> {
        let index = self.hold_account(hold)?;
        let key = self.seeder.key();
        let input =
            json!({ "holdId": self.hold_ids[hold], "reason": reason, "idempotencyKey": key });
        let correlation = format!("req-{}", self.rng.u32(..));
        self.seeder
            .ok(at, BOB, &correlation, RELEASE_HOLD, json!({ "i": input }))
            .await?;
        self.seats[index].held = Decimal::ZERO;
        Ok(())
    }

    /// A café tab: held when the order is taken, captured to the café's account when paid.
    async fn tab(&mut self, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.place_hold(
            at,
            "Oliver Hughes",
            45_00,
            "Thames Bookshop café, table 4",
            Duration::days(2),
        )
        .await?;
        let shop = index_of("Thames Bookshop Ltd");
        let hold = self.hold_ids.len() - 1;
        self.capture_hold(
            at + Duration::minutes(50),
            hold,
            38_50,
            Some(shop),
            "Thames Bookshop café, table 4",
        )
        .await
    }

    /// The seat whose account holds the story's `hold`-th hold.
    fn hold_account(&self, hold: usize) -> anyhow::Result<usize> {
        let holders = [
            "Sofia Rossi",
            "Anaïs Dubois",
            "Oliver Hughes",
            "Chloé Tremblay",
        ];
        holders
            .get(hold)
            .map(|h| index_of(h))
            .context("no such hold in the story")
    }
}

/// `holder` as ASCII words joined by dashes, for correlation ids.
fn slug(holder: &str) -> String {
    let ascii: String = holder
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ï' => 'i',
            'ó' | 'ö' | 'ô' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            'ø' => 'o',
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    ascii
        .split('-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
