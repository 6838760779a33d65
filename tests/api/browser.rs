//! The console in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, installed by `scripts/services --browser`), with every
//! host but the server unresolvable, so a page that needed the internet would fail here.
//!
//! Set `FOLIO_SCREENSHOTS=DIR` to keep a screenshot of each page in DIR (never committed).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use chrono::Datelike;
use fantoccini::{Client, ClientBuilder, Locator};
use platform::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, key, spawn_app};

/// A chromedriver of the test's own, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    /// The browser profile of this driver's sessions: its Chromium processes are found by
    /// it and stopped with the driver, even when a failing test never closed its session.
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.to_string_lossy().as_ref())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): the browser tests need Debian's chromium and \
                 chromium-driver; install them with `scripts/services --browser`"
            )
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile: std::env::temp_dir().join(format!("folio-chromium-{}", key())),
    };
    let status = format!("{}/status", driver.url);
    eventually("chromedriver answers", || {
        let status = status.clone();
        async move {
            reqwest::get(&status)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    })
    .await;
    driver
}

/// A headless Chromium session that can resolve no host but 127.0.0.1, and saves
/// downloads into `downloads`.
async fn browser(driver: &Driver, downloads: &Path) -> Client {
    // Only the first call installs it; later ones find it there.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", driver.profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads.to_string_lossy(),
                "download.prompt_for_download": false,
            },
        }),
    );
    ClientBuilder::rustls()
        .expect("a TLS configuration")
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

/// The browser side of a test: the session, where screenshots go, every URL it loaded.
struct Session {
    client: Client,
    origin: String,
    screenshots: Option<PathBuf>,
    loaded: Vec<String>,
}

impl Session {
    async fn goto(&mut self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.origin))
            .await
            .expect("navigate");
        self.settled(path).await;
    }

    /// Records what the page loaded (the document and every resource) and, when asked
    /// for, a screenshot named after `name`.
    async fn settled(&mut self, name: &str) {
        let entries = self
            .client
            .execute(
                "return ['navigation', 'resource']
                   .flatMap(t => performance.getEntriesByType(t))
                   .map(e => e.name)",
                vec![],
            )
            .await
            .expect("the page's performance entries");
        for entry in entries.as_array().into_iter().flatten() {
            if let Some(name) = entry.as_str() {
                self.loaded.push(name.to_string());
            }
        }
        if let Some(dir) = &self.screenshots {
            let png = self.client.screenshot().await.expect("a screenshot");
            let file: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            std::fs::write(dir.join(format!("{file}.png")), png).expect("write the screenshot");
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        let kind = field.attr("type").await.expect("its type");
        if matches!(kind.as_deref(), Some("date" | "datetime-local")) {
            // Typing into a date input follows the browser's locale (mm/dd/yyyy here);
            // its value is always yyyy-mm-dd, as a date picker sets it.
            self.client
                .execute(
                    "arguments[0].value = arguments[1]",
                    vec![
                        serde_json::to_value(&field).expect("an element reference"),
                        json!(text),
                    ],
                )
                .await
                .expect("set the date");
            return;
        }
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type into the field");
    }

    async fn click(&mut self, css: &str, name: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .expect("click");
        self.client
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .expect("the next page");
        self.settled(name).await;
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .text()
            .await
            .expect("its text")
    }

    /// The text of every cell of the first table's body whose caption contains `caption`,
    /// row by row.
    async fn table(&self, caption: &str) -> Vec<Vec<String>> {
        let rows = self
            .client
            .execute(
                "const [caption] = arguments;
                 const table = [...document.querySelectorAll('table')]
                   .find(t => t.caption && t.caption.textContent.includes(caption));
                 if (!table) return null;
                 return [...table.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent.trim()));",
                vec![json!(caption)],
            )
            .await
            .expect("the table's cells");
        serde_json::from_value(rows).unwrap_or_else(|_| panic!("no table captioned {caption:?}"))
    }

    async fn sign_in(&mut self, token: &str) {
        self.goto("/console").await;
        assert!(
            self.client
                .current_url()
                .await
                .expect("a URL")
                .path()
                .ends_with("/console/sign-in"),
            "an anonymous visit goes to the sign-in page"
        );
        self.fill("#token", token).await;
        self.click("main.signin button[type=submit]", "signed-in")
            .await;
        let url = self.client.current_url().await.expect("a URL");
        assert_eq!(
            url.path(),
            "/console/accounts",
            "signed in, on the accounts page"
        );
        assert!(
            !url.as_str().contains(token),
            "the token never appears in a URL"
        );
    }

    async fn close(self) -> Vec<String> {
        self.client.close().await.expect("close the browser");
        self.loaded
    }
}

async fn open_browser(app: &TestApp, driver: &Driver, downloads: &Path) -> Session {
    let screenshots = std::env::var_os("FOLIO_SCREENSHOTS").map(PathBuf::from);
    if let Some(dir) = &screenshots {
        std::fs::create_dir_all(dir).expect("the screenshot directory");
    }
    Session {
        client: browser(driver, downloads).await,
        origin: app.address.clone(),
        screenshots,
        loaded: Vec::new(),
    }
}

/// Waits for one finished CSV download in `dir` and reads it.
async fn downloaded(dir: &Path) -> (String, String) {
    downloaded_as(dir, "csv").await
}

/// Waits for one finished download in `dir` whose name ends in `.extension`, and reads it.
async fn downloaded_as(dir: &Path, extension: &str) -> (String, String) {
    eventually("the download finishes", || async {
        let entries = std::fs::read_dir(dir).ok()?;
        let files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        let done = files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == extension))?;
        let text = std::fs::read_to_string(done).ok()?;
        let name = done.file_name()?.to_string_lossy().to_string();
        Some((name, text))
    })
    .await
}

async fn movement(app: &TestApp, token: &str, query: &str, input: Value) -> String {
    let answer = app
        .execute(Some(token), &[], query, json!({ "input": input }))
        .await;
    assert!(
        answer.code().is_none(),
        "arranging failed: {:?}",
        answer.body
    );
    answer.body["data"]
        .as_object()
        .and_then(|data| data.values().next())
        .and_then(|payload| payload["position"].as_str())
        .expect("a position")
        .to_string()
}

#[tokio::test]
async fn an_auditor_finds_an_account_exports_its_statement_and_sees_the_views_in_the_access_log() {
    let app = spawn_app().await;
    let alice = app.token("alice", &[Role::Teller]);
    let bob = app.token("bob", &[Role::Teller]);
    let auditor = app.token("carol", &[Role::Auditor]);
    let jose = app.open_usd("José Álvarez").await;
    let ada = app.open_usd("Ada Lovelace").await;
    const DEPOSIT: &str = "mutation($input: DepositInput!) { deposit(input: $input) { position } }";
    const TRANSFER: &str =
        "mutation($input: TransferInput!) { transfer(input: $input) { position } }";
    movement(
        &app,
        &alice,
        DEPOSIT,
        json!({ "accountId": jose.id, "amount": "1250.50", "idempotencyKey": key() }),
    )
    .await;
    movement(
        &app,
        &bob,
        DEPOSIT,
        json!({ "accountId": ada.id, "amount": "80", "idempotencyKey": key() }),
    )
    .await;
    let last = movement(&app, &alice, TRANSFER, json!({
        "fromAccountId": jose.id, "toAccountId": ada.id, "amount": "200.25", "idempotencyKey": key(),
    })).await;
    // Everything projected before the browser looks.
    let status = app
        .projection_status(&auditor, json!({ "atLeast": last }))
        .await;
    assert!(status.code().is_none(), "{:?}", status.body);

    let driver = start_driver().await;
    let downloads = std::env::temp_dir().join(format!("folio-downloads-{}", key()));
    std::fs::create_dir_all(&downloads).expect("a download directory");
    let mut browser = open_browser(&app, &driver, &downloads).await;
    browser.sign_in(&auditor).await;

    // Find the account by part of its holder's name.
    browser.fill("#holder", "lvarez").await;
    browser
        .click("form[role=search] button", "accounts-search")
        .await;
    let found = browser.table("Accounts matching").await;
    assert_eq!(found.len(), 1, "one account matches: {found:?}");
    assert_eq!(found[0][0], "José Álvarez");
    assert_eq!(
        found[0][3], "1,050.25 USD",
        "balance right after the holder: {found:?}"
    );
    browser.click("table a", "account").await;
    assert_eq!(browser.text("h1").await, "José Álvarez");

    // Its statement for a period: this month so far.
    let today = chrono::Utc::now().date_naive();
    let from = today.with_day0(0).unwrap_or(today).to_string();
    browser.fill("#from", &from).await;
    browser.fill("#to", &today.to_string()).await;
    browser
        .click(
            "section[aria-labelledby=statement] form button",
            "statement",
        )
        .await;
    let lines = browser.table("Movements valued").await;
    let amounts: Vec<&str> = lines.iter().map(|r| r[r.len() - 2].as_str()).collect();
    assert_eq!(
        amounts,
        ["Opening balance", "1,250.50 USD", "-200.25 USD"],
        "opening row then the deposit and the transfer: {lines:?}"
    );

    // Download its CSV and read the rows.
    browser
        .click(
            "section[aria-labelledby=statement] a.button",
            "statement-csv",
        )
        .await;
    let (name, csv) = downloaded(&downloads).await;
    assert!(name.starts_with("statement-"), "a statement file: {name}");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("value_date,"), "a header row: {rows:?}");
    assert!(
        rows.iter().any(|r| r.contains("1250.50")),
        "the deposit: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.contains("-200.25")),
        "the transfer: {rows:?}"
    );
    assert!(
        rows.last().is_some_and(|r| r.contains("1050.25")),
        "the closing balance last: {rows:?}"
    );

    // The audit trail filtered by one actor.
    browser.goto("/console/audit").await;
    browser.fill("#actor", "bob").await;
    browser.click("form.filters button", "audit-bob").await;
    let events = browser.table("Events by position").await;
    assert_eq!(events.len(), 1, "bob made one movement: {events:?}");
    assert_eq!(events[0][4], "bob");
    assert_eq!(events[0][6], "80.00 USD");

    // The auditor's own views, in the access log.
    browser.goto("/console/access").await;
    browser.fill("#actor", "carol").await;
    browser.click("form.filters button", "access-carol").await;
    let accesses = browser.table("Accesses").await;
    let queries: Vec<&str> = accesses.iter().map(|r| r[3].as_str()).collect();
    for expected in ["accounts", "statement", "statement.csv", "auditTrail"] {
        assert!(
            queries.contains(&expected),
            "{expected} is in the access log: {queries:?}"
        );
    }
    assert!(accesses.iter().all(|r| r[1] == "carol"));

    // Nothing was fetched from any host but the server.
    let loaded = browser.close().await;
    assert!(!loaded.is_empty(), "the pages' loads were recorded");
    let foreign: Vec<&String> = loaded
        .iter()
        .filter(|url| !url.starts_with(&app.address))
        .collect();
    assert!(foreign.is_empty(), "requests to other hosts: {foreign:?}");
    let _ = std::fs::remove_dir_all(&downloads);
}

#[tokio::test]
async fn a_teller_is_refused_the_audit_and_access_pages_and_does_not_see_them() {
    let app = spawn_app().await;
    let teller = app.token("alice", &[Role::Teller]);
    let driver = start_driver().await;
    let downloads = std::env::temp_dir().join(format!("folio-downloads-{}", key()));
    let mut browser = open_browser(&app, &driver, &downloads).await;
    browser.sign_in(&teller).await;
    let nav = browser.text("nav").await;
    assert!(
        nav.contains("Accounts") && nav.contains("Balances"),
        "{nav}"
    );
    assert!(
        !nav.contains("Audit") && !nav.contains("Access"),
        "a teller's navigation has no audit or access pages: {nav}"
    );
    for path in ["/console/audit", "/console/access"] {
        browser.goto(path).await;
        let alert = browser.text("[role=alert]").await;
        assert!(alert.starts_with("FORBIDDEN"), "{path}: {alert}");
        assert!(
            browser
                .client
                .find_all(Locator::Css("table"))
                .await
                .expect("tables")
                .is_empty(),
            "{path} shows no data"
        );
    }
    browser.close().await;

    // Each refused page is on the record, as alice, with the reason.
    let refused = app
        .access_log(
            &app.auditor(),
            json!({ "filter": { "actor": "alice", "outcome": "REFUSED" } }),
        )
        .await;
    let rows: Vec<(String, String)> = refused.data("accessLog")["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["query"].as_str().unwrap_or_default().to_string(),
                e["node"]["refusalCode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("GET /console/access".to_string(), "FORBIDDEN".to_string()),
            ("GET /console/audit".to_string(), "FORBIDDEN".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_second_supervisor_approves_an_adjustment_and_downloads_the_signed_period_report() {
    let app = spawn_app().await;
    let carol = app.token("controller-carol", &[Role::Supervisor]);
    let sam = app.token("supervisor-sam", &[Role::Supervisor]);
    let account = app.open_usd("Ada Lovelace").await.id;
    app.deposited(account, "1000.00").await;
    let theirs = crate::adjustments::request(&app, &carol, account, "-12.50").await;
    let theirs = theirs.data("requestAdjustment")["adjustment"]["id"]
        .as_str()
        .expect("an adjustment id")
        .to_string();
    let own = crate::adjustments::request(&app, &sam, account, "3.00").await;
    let own = own.data("requestAdjustment")["adjustment"]["id"]
        .as_str()
        .expect("an adjustment id")
        .to_string();
    // Both pending adjustments projected before the browser looks.
    eventually("the pending adjustments are projected", || async {
        let listed = app
            .execute(
                Some(&sam),
                &[],
                "query { adjustments(status: PENDING) { edges { node { id } } } }",
                json!({}),
            )
            .await;
        (listed.body["data"]["adjustments"]["edges"]
            .as_array()?
            .len()
            == 2)
            .then_some(())
    })
    .await;

    let driver = start_driver().await;
    let downloads = std::env::temp_dir().join(format!("folio-downloads-{}", key()));
    let mut browser = open_browser(&app, &driver, &downloads).await;
    browser.sign_in(&sam).await;
    browser.goto("/console/adjustments").await;
    let pending = browser.table("Adjustments").await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    let carols = pending
        .iter()
        .find(|row| row[1] == "controller-carol")
        .expect("carol's request is listed");
    assert_eq!(carols[3], "-12.50");
    assert_eq!(
        carols[4], "on approval",
        "no value date: valued when approved"
    );
    assert_eq!(carols[7], "PENDING");
    assert!(
        !carols[8].is_empty(),
        "a pending adjustment shows when it expires"
    );

    // Sam's own request offers him no decision (the server would answer SELF_APPROVAL).
    let sams = pending
        .iter()
        .find(|row| row[1] == "supervisor-sam")
        .expect("sam's request is listed");
    assert_eq!(sams[10], "Your request: another supervisor decides it.");
    assert!(
        browser
            .client
            .find_all(Locator::Css(&format!("form[action$='/{own}/decision']")))
            .await
            .expect("forms")
            .is_empty(),
        "no decision form for one's own request"
    );

    browser
        .fill(&format!("#comment-{theirs}"), "seen ticket 81")
        .await;
    browser
        .click(
            &format!("form[action$='/{theirs}/decision'] button[value=approve]"),
            "approved",
        )
        .await;
    let notice = browser.text("[role=status]").await;
    assert_eq!(notice, "Adjustment approved.");
    let balance = app.account(app.teller(), account).await;
    assert_eq!(
        balance.data("account")["balance"],
        "987.50",
        "the approval posted -12.50 and nothing else"
    );

    // Close the period after the posting, then download its signed report from the page.
    let period_end = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let closed = app
        .execute(
            Some(&sam),
            &[],
            "mutation($input: ClosePeriodInput!) { closePeriod(input: $input) { position } }",
            json!({ "input": { "periodEnd": period_end, "idempotencyKey": key() } }),
        )
        .await;
    closed.data("closePeriod");
    browser.goto("/console/periods").await;
    let closes = browser.table("Closed periods").await;
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0][2], "supervisor-sam");
    assert!(closes[0][5].contains("987.50 USD"), "{:?}", closes[0]);
    browser
        .click("table a[href^='/console/periods/report']", "period-report")
        .await;
    let (name, file) = downloaded_as(&downloads, "json").await;
    assert_eq!(name, format!("period-{}.json", &period_end[..10]));
    let public_key =
        ed25519_dalek::SigningKey::from_bytes(&crate::helpers::TEST_SIGNING_SEED).verifying_key();
    let signed = ledger::period::SignedPeriodReport::parse(&file).expect("a period report");
    assert_eq!(signed.verify_signature(&public_key), Ok(()));
    assert!(file.contains("\"balance\":\"987.50\""), "{file}");
    browser.close().await;
    let _ = std::fs::remove_dir_all(&downloads);

    // The auditor finds sam's console reads and his refused self-approval on the record.
    let log = app
        .access_log(
            &app.auditor(),
            json!({ "filter": { "actor": "supervisor-sam" }, "first": 50 }),
        )
        .await;
    let queries: Vec<&str> = log.data("accessLog")["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["query"].as_str())
        .collect();
    for read in ["adjustments", "periodCloses", "periodClose"] {
        assert!(queries.contains(&read), "{read} in {queries:?}");
    }
}
