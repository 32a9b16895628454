//! Seed-gateway compatibility at the process level: `--strict-compat` (or `STRICT_COMPAT`) makes
//! a seed flag or config key that mcp-router would not act on a startup error (exit 64) naming
//! it; the flag the seed removed (`--gateway-ca-cert`) still starts, with a deprecation warning.

use std::process::Command;

use crate::common::log_dir;

fn run(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-router"));
    cmd.arg("--mcp-gateway-config")
        .arg(config)
        .arg("--mcp-gateway-public-host=gw.local")
        // Ports that cannot be bound: a run that gets past the checks fails right after them.
        .arg("--mcp-router-address=192.0.2.1:1")
        .env_remove("STRICT_COMPAT")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run mcp-router");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code(), text)
}

#[test]
fn strict_compat_refuses_seed_settings_not_acted_on_and_names_them() {
    let logs = log_dir("compat-strict");
    let clean = logs.join("clean.yaml");
    std::fs::write(&clean, "servers: []\n").expect("config");
    let seed_keys = logs.join("seed-keys.yaml");
    std::fs::write(
        &seed_keys,
        "servers:\n  - {name: a, url: 'http://a/mcp', guardrailsConfigIDs: [g]}\nglobalGuardrails: {url: 'http://g', model: m}\n",
    )
    .expect("config");
    let strict_env = [("STRICT_COMPAT", "true")];
    for (config, args, env, names) in [
        (
            &clean,
            &["--strict-compat", "--enable-pprof"][..],
            &[][..],
            &["--enable-pprof"][..],
        ),
        (
            &clean,
            &["--mcp-broker-write-timeout=5"][..],
            &strict_env[..],
            &["--mcp-broker-write-timeout"][..],
        ),
        (
            &seed_keys,
            &["--strict-compat"][..],
            &[][..],
            &["servers[0].guardrailsConfigIDs", "globalGuardrails"][..],
        ),
    ] {
        let (code, text) = run(config, args, env);
        assert_eq!(code, Some(64), "{args:?} {env:?}: {text}");
        for name in names {
            assert!(text.contains(name), "{args:?}: {name} not named in {text}");
        }
        assert!(text.contains("strict-compat"), "{text}");
    }
    // Without it, the same settings only warn: the process gets as far as binding its ports
    // (which this test makes fail, with another exit code).
    for (config, args) in [(&clean, &["--enable-pprof"][..]), (&seed_keys, &[][..])] {
        let (code, text) = run(config, args, &[]);
        assert_ne!(code, Some(64), "{args:?}: {text}");
        assert!(text.contains("does not act on"), "{args:?}: {text}");
    }
}

#[test]
fn the_flag_the_seed_removed_still_starts_with_a_deprecation_warning() {
    let logs = log_dir("compat-deprecated");
    let clean = logs.join("clean.yaml");
    std::fs::write(&clean, "servers: []\n").expect("config");
    let ca = logs.join("ca.pem");
    std::fs::write(&ca, crate::common::tls::TestCa::new("compat CA").pem).expect("ca");
    let arg = format!("--gateway-ca-cert={}", ca.display());
    // Even with --strict-compat: the flag works, it is only deprecated.
    let (code, text) = run(&clean, &[&arg, "--strict-compat"], &[]);
    assert_ne!(code, Some(64), "{text}");
    assert!(text.contains("--gateway-ca-cert is deprecated"), "{text}");
}
