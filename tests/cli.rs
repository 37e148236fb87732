//! The `thrudoc` command line, the shipped config, and the committed generated bindings.

mod common;

use std::process::Command;

use common::ThrudocServer;
use thrudoc::client::ALL_KINDS;
use thrudoc::gen::thrudoc::TThrudocSyncClient;

fn thrudoc(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_thrudoc"));
    command.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run thrudoc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_validates_names_bad_keys_and_hides_passwords() {
    let (ok, text) = thrudoc(&["--check", "-f", "conf/thrudoc.conf"], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("configuration is valid"), "{text}");

    let (ok, text) = thrudoc(
        &["--check", "-f", "conf/thrudoc.conf"],
        &[("THRUDOC_SERVER_PORT", "http")],
    );
    assert!(!ok);
    assert!(
        text.contains("SERVER_PORT (from the environment)"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.conf");
    std::fs::write(
        &file,
        "BACKEND = mysql\nMYSQL_MASTER_HOST = db\nMYSQL_PASSWORD = hunter2\nSOME_OLD_KEY = 1\n",
    )
    .unwrap();
    let (ok, text) = thrudoc(&["--check", "-f", file.to_str().unwrap()], &[]);
    assert!(ok, "{text}");
    assert!(!text.contains("hunter2"), "password printed: {text}");
    assert!(text.contains("unknown key SOME_OLD_KEY"), "{text}");

    let (ok, text) = thrudoc(&["-f", "/no/such/file.conf"], &[]);
    assert!(!ok);
    assert!(text.contains("/no/such/file.conf"), "{text}");
}

/// The README's first-run line: the shipped config with the port and data directory from the
/// environment serves bucket `data` over every transport and protocol.
#[test]
fn shipped_config_serves_bucket_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("docs");
    let root_text = root.display().to_string();
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/thrudoc.conf");
    let server = ThrudocServer::start_with(
        dir,
        &conf,
        &[
            ("THRUDOC_SERVER_PORT", "0"),
            ("THRUDOC_DISK_DOC_ROOT", &root_text),
        ],
    );
    for (i, (transport, protocol)) in ALL_KINDS.into_iter().enumerate() {
        let mut c = server.client(transport, protocol);
        assert_eq!(c.get_buckets().unwrap(), vec!["data".to_string()]);
        c.put("data".into(), format!("k{i}"), b"v".to_vec())
            .unwrap();
    }
    assert!(
        root.join("data.sqlite3").exists(),
        "store file under DISK_DOC_ROOT"
    );
}

#[test]
fn generated_bindings_match_idl() {
    let out = Command::new("scripts/gen-thrift")
        .arg("--stdout")
        .output()
        .expect("run scripts/gen-thrift");
    assert!(
        out.status.success(),
        "scripts/gen-thrift failed (is thrift-compiler installed? `scripts/setup --test`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string("src/gen/thrudoc.rs").unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "src/gen/thrudoc.rs does not match idl/thrudoc.thrift: run scripts/gen-thrift and commit"
    );
}
