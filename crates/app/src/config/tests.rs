//! The settings as each command reads them: defaults, modes, every refusal.

use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_env(&|name| map.get(name).cloned())
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn live_settings_without_a_bank_url_stop_start_up_naming_it() {
    for live in LIVE_SETTINGS {
        let refused = config(&[(live, "anything")]).unwrap_err();
        assert_eq!(refused.variable, "BANK131_BASE_URL", "{live}");
        assert!(refused.to_string().contains(live), "{refused}");
        assert!(
            !refused.to_string().contains("anything"),
            "no value is echoed"
        );
        let forced = config(&[(live, "anything"), ("RECUR_SANDBOX", "true")]);
        assert!(forced.is_ok_and(|c| c.sandbox_mode()), "{live}");
    }
    assert!(config(&[]).unwrap().sandbox_mode(), "nothing live: sandbox");
    assert_eq!(
        config(&[("RECUR_SANDBOX", "maybe")]).unwrap_err().variable,
        "RECUR_SANDBOX"
    );
}

#[test]
fn the_test_clock_never_runs_against_the_production_bank() {
    let live = |url: &'static str, clock: &'static str| {
        config(&[
            ("BANK131_BASE_URL", url),
            ("BANK131_PROJECT", "p"),
            ("BANK131_PRIVATE_KEY_FILE", "k.pem"),
            ("BANK131_PUBLIC_KEY_FILE", "b.pem"),
            ("RECUR_API_KEYS", "sk_live_0123456789abcdef"),
            ("RECUR_TOKEN_KEY", "a2V5"),
            ("RECUR_TEST_CLOCK", clock),
        ])
    };
    for url in [
        "https://proxy.bank131.ru",
        "https://PROXY.bank131.ru/",
        "https://proxy.bank131.ru:443/api",
    ] {
        assert_eq!(
            live(url, "true").unwrap_err().variable,
            "RECUR_TEST_CLOCK",
            "{url}"
        );
        assert!(live(url, "false").is_ok(), "{url}");
    }
    assert!(live("https://demo.bank131.ru", "true").is_ok_and(|c| c.test_clock));
    assert!(
        live("https://proxy.bank131.ru", "false")
            .unwrap()
            .mode_line()
            .contains("LIVE")
    );
}

#[test]
fn every_command_reads_its_settings_with_the_contracts_defaults() {
    let sandbox = SandboxAlone::from_env(&vars(&[])).unwrap();
    assert_eq!(sandbox.listen.to_string(), "127.0.0.1:9131");
    assert_eq!(sandbox.keys_dir, PathBuf::from("./sandbox-keys"));
    assert_eq!(
        sandbox.webhook_url,
        "http://127.0.0.1:8080/webhooks/bank131"
    );
    assert_eq!(sandbox.project, "sandbox");
    let store = StoreCommand::from_env(&vars(&[
        ("DATABASE_URL", "postgres://db/recur"),
        ("RECUR_TOKEN_KEY", "k"),
    ]))
    .unwrap();
    assert_eq!(store.database_url, "postgres://db/recur");
    assert_eq!(store.token_key.as_deref(), Some("k"));
    let bad = SandboxAlone::from_env(&vars(&[("SANDBOX_LISTEN", "nowhere")]));
    assert_eq!(bad.unwrap_err().variable, "SANDBOX_LISTEN");
    let bad = StoreCommand::from_env(&vars(&[("DATABASE_URL", "mysql://x")]));
    assert_eq!(bad.unwrap_err().variable, "DATABASE_URL");
}

#[test]
fn inbox_retention_reads_days_hours_minutes_and_seconds() {
    assert_eq!(
        config(&[]).unwrap().inbox_retention,
        time::Duration::days(7)
    );
    for (text, expected) in [
        ("7d", time::Duration::days(7)),
        ("12h", time::Duration::hours(12)),
        ("30m", time::Duration::minutes(30)),
        ("3600", time::Duration::hours(1)),
    ] {
        let c = config(&[("RECUR_INBOX_RETENTION", text)]).unwrap();
        assert_eq!(c.inbox_retention, expected, "{text}");
    }
    for bad in ["0d", "-1d", "7 days", "d"] {
        let e = config(&[("RECUR_INBOX_RETENTION", bad)]).unwrap_err();
        assert_eq!(e.variable, "RECUR_INBOX_RETENTION", "{bad}");
    }
}

#[test]
fn worker_concurrency_is_one_to_256_and_eight_by_default() {
    assert_eq!(config(&[]).unwrap().worker_in_flight, 8);
    let c = config(&[("RECUR_WORKER_CONCURRENCY", "32")]).unwrap();
    assert_eq!(c.worker_in_flight, 32);
    for bad in ["0", "257", "-1", "many"] {
        let e = config(&[("RECUR_WORKER_CONCURRENCY", bad)]).unwrap_err();
        assert_eq!(e.variable, "RECUR_WORKER_CONCURRENCY", "{bad}");
    }
}

#[test]
fn no_configuration_is_sandbox_mode_on_sqlite() {
    let c = config(&[]).unwrap();
    assert_eq!(c.database_url, "sqlite://recur.db");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert!(c.sandbox_mode() && c.test_clock);
    assert_eq!(
        c.bank,
        Bank::Sandbox {
            listen: "127.0.0.1:9131".parse().unwrap(),
            explicit: false
        }
    );
}

#[test]
fn a_real_bank_needs_its_keys_and_the_service_secrets() {
    let base = [("BANK131_BASE_URL", "https://demo.bank131.ru")];
    assert_eq!(config(&base).unwrap_err().variable, "BANK131_PROJECT");
    let more = [
        base[0],
        ("BANK131_PROJECT", "p"),
        ("BANK131_PRIVATE_KEY_FILE", "k.pem"),
        ("BANK131_PUBLIC_KEY_FILE", "a.pem,b.pem"),
    ];
    assert_eq!(config(&more).unwrap_err().variable, "RECUR_API_KEYS");
    let keys = [
        more[0],
        more[1],
        more[2],
        more[3],
        ("RECUR_API_KEYS", "0123456789abcdef"),
    ];
    assert_eq!(config(&keys).unwrap_err().variable, "RECUR_TOKEN_KEY");
    let all = [
        keys[0],
        keys[1],
        keys[2],
        keys[3],
        keys[4],
        ("RECUR_TOKEN_KEY", "x"),
    ];
    let c = config(&all).unwrap();
    assert!(!c.test_clock, "never on by default outside sandbox mode");
    let Bank::Remote {
        public_key_files,
        project_3ds,
        ..
    } = c.bank
    else {
        panic!()
    };
    assert_eq!(public_key_files.len(), 2);
    assert_eq!(project_3ds, None, "the main project unless given");
    let with_3ds: Vec<_> = all
        .iter()
        .copied()
        .chain([("BANK131_PROJECT_3DS", "p-3ds")])
        .collect();
    let Bank::Remote { project_3ds, .. } = config(&with_3ds).unwrap().bank else {
        panic!()
    };
    assert_eq!(project_3ds.as_deref(), Some("p-3ds"));
}

#[test]
fn malformed_settings_name_their_variable() {
    assert_eq!(
        config(&[("RECUR_LISTEN", "nope")]).unwrap_err().variable,
        "RECUR_LISTEN"
    );
    assert_eq!(
        config(&[("DATABASE_URL", "mysql://x")])
            .unwrap_err()
            .variable,
        "DATABASE_URL"
    );
    assert_eq!(
        config(&[("RECUR_EVENTS_URL", "http://m")])
            .unwrap_err()
            .variable,
        "RECUR_EVENTS_SECRET"
    );
    assert_eq!(
        config(&[("RECUR_TEST_CLOCK", "maybe")])
            .unwrap_err()
            .variable,
        "RECUR_TEST_CLOCK"
    );
    assert_eq!(
        config(&[("RECUR_API_KEYS", " , "), ("RECUR_SANDBOX", "true")])
            .unwrap_err()
            .variable,
        "RECUR_API_KEYS"
    );
    assert_eq!(
        config(&[("RECUR_LOG_FORMAT", "xml")]).unwrap_err().variable,
        "RECUR_LOG_FORMAT"
    );
}
