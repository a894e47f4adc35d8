//! The `recur` binary itself: its commands, configuration errors, the banner
//! and curl example of `recur serve`, JSON logs, SIGTERM, and `recur sandbox`
//! standing alone for another Bank 131 client.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bank131::Signer;

use crate::support::{free_port, json_of};

fn recur() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recur"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("recur-bin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads stdout lines until one contains `needle` (20 s at most).
fn wait_for_line(child: &mut Child, needle: &str) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let done = line.contains(needle);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }
    panic!("no line with {needle:?} in {lines:?}");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_lists_every_command_of_the_contract() {
    let out = recur().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "sandbox", "migrate", "demo", "rotate-token-key"] {
        assert!(help.contains(command), "{command} missing from\n{help}");
    }
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_the_variable() {
    let out = recur()
        .arg("serve")
        .env("RECUR_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("RECUR_LISTEN"), "{stderr}");
    let out = recur()
        .arg("serve")
        .env("BANK131_BASE_URL", "https://demo.bank131.ru")
        .env_remove("BANK131_PROJECT")
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("BANK131_PROJECT")
    );
}

/// `recur serve` in a fresh directory with `vars` and nothing else live.
fn serve_with(dir: &std::path::Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = recur();
    command.arg("serve").current_dir(dir);
    for name in [
        "BANK131_BASE_URL",
        "BANK131_PROJECT",
        "BANK131_PRIVATE_KEY_FILE",
        "BANK131_PUBLIC_KEY_FILE",
        "RECUR_API_KEYS",
        "RECUR_TOKEN_KEY",
        "RECUR_SANDBOX",
        "RECUR_TEST_CLOCK",
        "DATABASE_URL",
    ] {
        command.env_remove(name);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn live_settings_without_a_bank_url_never_start_the_sandbox() {
    for live in [
        "BANK131_PROJECT",
        "BANK131_PRIVATE_KEY_FILE",
        "BANK131_PUBLIC_KEY_FILE",
        "RECUR_API_KEYS",
        "RECUR_TOKEN_KEY",
    ] {
        let dir = temp_dir("live-no-url");
        let out = serve_with(&dir, &[(live, "sk_live_secret_value_0123456789")]);
        assert!(!out.status.success(), "{live}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("BANK131_BASE_URL"), "{stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.contains("sk_live_secret"),
            "no secret printed: {stdout}"
        );
        assert!(!stderr.contains("sk_live_secret"), "{stderr}");
        assert!(!dir.join(".recur").exists(), "nothing generated for {live}");
        assert!(!dir.join("recur.db").exists(), "no database for {live}");
    }
}

#[test]
fn the_test_clock_against_the_production_bank_stops_start_up() {
    let dir = temp_dir("prod-clock");
    let out = serve_with(
        &dir,
        &[
            ("BANK131_BASE_URL", "https://proxy.bank131.ru"),
            ("BANK131_PROJECT", "p"),
            ("BANK131_PRIVATE_KEY_FILE", "partner.pem"),
            ("BANK131_PUBLIC_KEY_FILE", "bank.pem"),
            ("RECUR_API_KEYS", "sk_live_0123456789abcdef"),
            (
                "RECUR_TOKEN_KEY",
                "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=",
            ),
            ("RECUR_TEST_CLOCK", "true"),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("RECUR_TEST_CLOCK"), "{stderr}");
}

/// `recur serve` in sandbox mode in `dir` on free ports, with `vars` set
/// and no live setting or database URL inherited, its output piped.
fn spawn_sandbox_serve(dir: &std::path::Path, vars: &[(&str, &str)]) -> Child {
    let (api, sandbox) = (free_port(), free_port());
    let mut command = recur();
    command
        .arg("serve")
        .current_dir(dir)
        .env("RECUR_LISTEN", format!("127.0.0.1:{api}"))
        .env("SANDBOX_LISTEN", format!("127.0.0.1:{sandbox}"))
        .env("RECUR_LOG_FORMAT", "json")
        .env_remove("DATABASE_URL")
        .env_remove("RECUR_API_KEYS")
        .env_remove("BANK131_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_sandbox_says_so_and_never_prints_a_given_key() {
    let dir = temp_dir("forced-sandbox");
    let mut child = spawn_sandbox_serve(
        &dir,
        &[
            ("RECUR_API_KEYS", "sk_given_0123456789abcdef"),
            ("RECUR_SANDBOX", "true"),
        ],
    );
    let banner = wait_for_line(&mut child, "API key").join("\n");
    assert!(banner.contains("SANDBOX mode"), "{banner}");
    assert!(!banner.contains("sk_given_0123456789abcdef"), "{banner}");
    assert!(terminate(&mut child).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_answers_its_own_curl_example_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let mut child = spawn_sandbox_serve(&dir, &[]);
    let banner = wait_for_line(&mut child, "-d '").join("\n");
    assert!(dir.join("recur.db").exists(), "the embedded SQLite file");
    assert!(
        dir.join(".recur/api_key").exists(),
        "the generated key is kept"
    );
    let key = std::fs::read_to_string(dir.join(".recur/api_key")).unwrap();
    assert!(banner.contains(&key), "the key is printed: {banner}");
    // Run the printed curl example as printed.
    let curl: String = banner
        .lines()
        .skip_while(|l| !l.starts_with("curl"))
        .collect::<Vec<_>>()
        .join("\n");
    let out = Command::new("sh").arg("-c").arg(&curl).output().unwrap();
    let payment: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(payment["status"], "succeeded", "{payment}");
    assert!(payment["token"]["id"].as_str().unwrap().starts_with("tok_"));

    let status = terminate(&mut child);
    assert!(status.success(), "graceful exit: {status:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    let lines: Vec<_> = logs.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(
        !logs.contains("4242424242424242"),
        "no card number in the logs"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_alone_serves_any_client_with_its_generated_keys() {
    let dir = temp_dir("sandbox");
    let port = free_port();
    let mut child = recur()
        .arg("sandbox")
        .current_dir(&dir)
        .env("SANDBOX_LISTEN", format!("127.0.0.1:{port}"))
        .env("SANDBOX_PROJECT", "shop-acquiring")
        .env("SANDBOX_KEYS_DIR", dir.join("keys"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = wait_for_line(&mut child, "Bank 131 sandbox on").join("\n");
    assert!(
        printed.contains("partner_private.pem") && printed.contains("bank_public.pem"),
        "{printed}"
    );
    let partner =
        Signer::from_pem(&std::fs::read_to_string(dir.join("keys/partner_private.pem")).unwrap())
            .unwrap();
    let body = br#"{"metadata":{"order":"1"}}"#;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/session/create");
    let signed = |project: &str| {
        http.post(&url)
            .header("X-PARTNER-PROJECT", project)
            .header("X-PARTNER-SIGN", partner.sign(body).unwrap())
            .body(body.to_vec())
    };
    let answer = json_of(signed("shop-acquiring")).await;
    assert_eq!(answer["status"], "ok", "{answer}");
    assert!(answer["session"]["id"].as_str().unwrap().starts_with("ps_"));
    let refused = json_of(signed("other")).await;
    assert_eq!(refused["error"]["code"], "authentication_error");
    terminate(&mut child);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn migrate_applies_the_schema_and_exits() {
    let dir = temp_dir("migrate");
    let url = format!("sqlite://{}", dir.join("m.db").display());
    let out = recur()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("m.db").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_token_key_reencrypts_stored_tokens_with_the_new_key() {
    use std::sync::Arc;

    use domain::*;
    use ports::{ChangeSet, TokenRepository, UnitOfWork, Write};
    use store_sql::crypto::TokenKeys;

    let dir = temp_dir("rotate");
    let url = format!("sqlite://{}", dir.join("r.db").display());
    let (old, new) = (TokenKeys::generate_base64(), TokenKeys::generate_base64());
    let issued = IssuedToken {
        secret: RecurrentTokenSecret::parse("feda2b21").unwrap(),
        created_at: None,
        finished_at: None,
        is_active: true,
    };
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let token = RecurrentToken::issued(
        TokenId::parse("tok_rot").unwrap(),
        CustomerReference::parse("c").unwrap(),
        &issued,
        TokenMethod::Card,
        PaymentId::parse("pay_rot").unwrap(),
        now,
    );
    let store = app::open_store(&url, Arc::new(TokenKeys::from_base64(&old, None).unwrap()))
        .await
        .unwrap();
    store
        .commit(
            ChangeSet {
                tokens: vec![Write::insert(token.clone())],
                ..ChangeSet::default()
            },
            now,
        )
        .await
        .unwrap();
    store.pool().close().await;

    let out = recur()
        .arg("rotate-token-key")
        .env("DATABASE_URL", &url)
        .env("RECUR_TOKEN_KEY", &new)
        .env("RECUR_TOKEN_KEY_OLD", &old)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 1 token"));

    let only_new = app::open_store(&url, Arc::new(TokenKeys::from_base64(&new, None).unwrap()))
        .await
        .unwrap();
    let read = TokenRepository::get(&only_new, &token.id)
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        read.secret.expose(),
        "feda2b21",
        "readable with the new key alone"
    );
    only_new.pool().close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Human-format logs written to a pipe (a file, journald) carry no ANSI
/// colour codes: they are only for a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_logs_off_a_terminal_carry_no_colour_codes() {
    let dir = temp_dir("no-ansi");
    let mut child = spawn_sandbox_serve(&dir, &[("RECUR_LOG_FORMAT", "human")]);
    wait_for_line(&mut child, "-d '");
    assert!(terminate(&mut child).success());
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("INFO"), "human lines were written: {logs}");
    assert!(!logs.contains('\u{1b}'), "an ANSI escape in: {logs}");
    let _ = std::fs::remove_dir_all(dir);
}
