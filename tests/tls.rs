//! TLS on the Thrift port, against real TLS clients: the Python (`TSSLSocket`) and Node.js
//! (`createSSLConnection`) clients the Thrift compiler's bindings use pass every conformance
//! check over mutual TLS, on every transport and protocol; `openssl s_client` makes the
//! handshakes a server must refuse (no certificate configured, no client certificate, one from
//! another CA), and plaintext is refused where TLS is required. Each refusal is one log line
//! and a closed connection, and the server goes on serving.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::conformance::{checks_per_run, script, Idl, Values};
use common::drivers::{require, Bindings, Lang, Source};
use common::tls::Certs;
use common::ThrudocServer;
use thrudoc::client::ALL_KINDS;
use thrudoc::codec::{Protocol, Transport};
use thrudoc::gen::thrudoc::TThrudocSyncClient;

fn over_mutual_tls(lang: Lang, source: Source, idl: Idl, values: Values) {
    let certs = Certs::make();
    let bindings = Bindings::generate(lang, source);
    let server = ThrudocServer::start(&certs.server_conf(true));
    let tag = format!("tls-{lang:?}").to_lowercase();
    let report = bindings.run_with(
        server.addr,
        &script("data", idl, values, &tag),
        &certs.driver_args(Some("client")),
    );
    report.assert_passed(
        checks_per_run(values) * ALL_KINDS.len(),
        &server.stderr_text(),
    );
    let log = server.stderr_text();
    assert!(
        !log.contains("TLS handshake failed") && !log.contains("connection refused"),
        "{log}"
    );
}

#[test]
fn python_tsslsocket_client_passes_every_check_over_mutual_tls() {
    over_mutual_tls(Lang::Python, Source::New, Idl::New, Values::Bytes);
}

#[test]
fn node_ssl_client_passes_every_check_over_mutual_tls() {
    over_mutual_tls(Lang::Node, Source::Original, Idl::Original, Values::Text);
}

/// `openssl s_client` to the server, with a client certificate (`client`, `rogue`) or none:
/// its whole output.
fn s_client(server: &ThrudocServer, certs: &Certs, cert: Option<&str>) -> String {
    require("openssl", &["version"], "apt-get install -y openssl");
    let mut c = Command::new("openssl");
    c.args(["s_client", "-connect", &server.addr.to_string()])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(certs.file("ca.pem"));
    if let Some(name) = cert {
        c.arg("-cert")
            .arg(certs.file(&format!("{name}.pem")))
            .arg("-key")
            .arg(certs.file(&format!("{name}.key")));
    }
    // stdin at its end: s_client makes the handshake, then closes.
    let out = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|child| child.wait_with_output())
        .expect("run openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `s_client` completed a handshake: it shows the server's certificate.
fn handshake_done(out: &str) -> bool {
    out.contains("-----BEGIN CERTIFICATE-----") && out.contains("Verify return code: 0 (ok)")
}

/// Waits until the server's log holds `line` `times` times.
fn logged(server: &ThrudocServer, line: &str, times: usize) {
    common::wait_until(
        Duration::from_secs(5),
        &format!("`{line}` in the log {times} times"),
        || server.stderr_text().matches(line).count() >= times,
    );
}

/// A plain Thrift call.
fn plain_call(server: &ThrudocServer) -> thrift::Result<Vec<String>> {
    server
        .client(Transport::Framed, Protocol::Binary)
        .get_buckets()
}

#[test]
fn refused_handshakes_and_plaintext_are_logged_and_the_server_goes_on() {
    let certs = Certs::make();

    // No certificate configured: a TLS client is refused, plain Thrift is served.
    let plain = ThrudocServer::start("");
    let out = s_client(&plain, &certs, None);
    assert!(!handshake_done(&out), "{out}");
    logged(
        &plain,
        "TLS handshake refused: this server has no certificate",
        1,
    );
    assert_eq!(plain_call(&plain).unwrap(), vec!["data".to_string()]);

    // Mutual TLS: plaintext, no client certificate and another CA's certificate are refused.
    let mutual = ThrudocServer::start(&certs.server_conf(true));
    assert!(
        plain_call(&mutual).is_err(),
        "plaintext to a mutual-TLS server"
    );
    logged(
        &mutual,
        "plaintext connection refused: this server requires TLS",
        1,
    );
    s_client(&mutual, &certs, None);
    logged(&mutual, "TLS handshake failed", 1);
    s_client(&mutual, &certs, Some("rogue"));
    logged(&mutual, "TLS handshake failed", 2);
    let log = mutual.stderr_text();
    assert!(
        log.contains("peer sent no certificates") || log.contains("NoCertificatesPresented"),
        "the log says the client showed no certificate:\n{log}"
    );
    assert!(
        log.contains("UnknownIssuer") || log.contains("unknown issuer"),
        "the log says the rogue certificate's issuer is unknown:\n{log}"
    );
    // The server goes on: a client with a good certificate completes its handshake.
    let out = s_client(&mutual, &certs, Some("client"));
    assert!(handshake_done(&out), "{out}");
    assert_eq!(
        mutual.stderr_text().matches("TLS handshake failed").count(),
        2,
        "the good client was not refused"
    );

    // TLS_REQUIRED without client certificates: plaintext refused, TLS served.
    let required = ThrudocServer::start(&format!(
        "{}TLS_REQUIRED = true\n",
        certs.server_conf(false)
    ));
    assert!(plain_call(&required).is_err());
    logged(
        &required,
        "plaintext connection refused: this server requires TLS",
        1,
    );
    let out = s_client(&required, &certs, None);
    assert!(handshake_done(&out), "{out}");
    assert!(!required.stderr_text().contains("TLS handshake failed"));
}

#[test]
fn bad_tls_settings_stop_the_check_naming_the_key() {
    let certs = Certs::make();
    let dir = tempfile::tempdir().unwrap();
    let check = |conf: &str| {
        let file = dir.path().join("t.conf");
        std::fs::write(&file, conf).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_thrudoc"))
            .arg("--check")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check(&format!(
        "TLS_CERT_FILE = {}\n",
        certs.file("server.pem").display()
    ));
    assert!(!ok && err.contains("TLS_KEY_FILE"), "{err}");
    let (ok, err) = check(&format!(
        "TLS_CERT_FILE = {}\nTLS_KEY_FILE = {}\n",
        certs.file("server.key").display(),
        certs.file("server.key").display()
    ));
    assert!(
        !ok && err.contains("TLS_CERT_FILE") && err.contains("no PEM certificate"),
        "{err}"
    );
    let (ok, err) = check(&format!(
        "TLS_CERT_FILE = {}\nTLS_KEY_FILE = {}\n",
        certs.file("server.pem").display(),
        certs.file("client.key").display()
    ));
    assert!(!ok && err.contains("do not make a usable pair"), "{err}");
    let (ok, err) = check("TLS_REQUIRED = true\n");
    assert!(!ok && err.contains("TLS_REQUIRED"), "{err}");
    let (ok, err) = check(&certs.server_conf(true));
    assert!(ok, "{err}");
}

/// `MYSQL_TLS`: the server's own connections to MariaDB. The hosts get a certificate and the
/// service account `REQUIRE SSL`, so a connection without TLS is refused by MariaDB itself.
#[test]
fn mysql_tls_verify_checks_the_hosts_certificate() {
    common::mariadb::require_mariadb();
    let certs = Certs::make();
    let cluster = common::mariadb::Cluster::start_pairs(1);
    let addrs: Vec<String> = cluster.hosts.iter().map(|h| h.addr()).collect();
    common::mysql::create_bucket(&cluster.hosts[0], "thrudoc", &addrs, "t", 1);
    for h in &cluster.hosts {
        h.enable_tls(
            &certs.file("server.pem"),
            &certs.file("server.key"),
            &certs.file("ca.pem"),
        );
    }
    cluster.hosts[0].sql("ALTER USER 'thrudoc'@'%' REQUIRE SSL");
    common::mariadb::wait_replicated(
        &cluster.hosts[0],
        &cluster.hosts[1],
        Duration::from_secs(30),
    );
    let server = |tls: &str| {
        common::mysql::thrudoc_on(&cluster.hosts[0], Some(&cluster.hosts[1]), "thrudoc", tls)
    };

    // Verified against the CA and the host's address: served.
    let verified = server(&format!(
        "MYSQL_TLS = verify\nMYSQL_TLS_CA_FILE = {}",
        certs.file("ca.pem").display()
    ));
    let mut c = verified.client(Transport::Framed, Protocol::Binary);
    c.put("t".into(), "k".into(), b"over tls".to_vec()).unwrap();
    assert_eq!(c.get("t".into(), "k".into()).unwrap(), b"over tls");
    let ssl = cluster.hosts[0]
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'thrudoc'");
    assert_ne!(ssl[0][0], "0", "the server holds connections as thrudoc");

    // Encrypted without a check: served.
    let required = server("MYSQL_TLS = required");
    let mut c = required.client(Transport::Framed, Protocol::Binary);
    assert_eq!(c.get("t".into(), "k".into()).unwrap(), b"over tls");

    // A CA that did not sign the host's certificate: the host is not trusted, nothing served.
    let wrong = server(&format!(
        "MYSQL_TLS = verify\nMYSQL_TLS_CA_FILE = {}",
        certs.file("rogue-ca.pem").display()
    ));
    let err = wrong
        .client(Transport::Framed, Protocol::Binary)
        .get("t".into(), "k".into())
        .unwrap_err();
    assert_eq!(common::error_code(err), 6, "UNAVAILABLE");
    let log = wrong.stderr_text();
    assert!(
        log.contains("UnknownIssuer") || log.contains("invalid peer certificate"),
        "the log says why the host is not trusted:\n{log}"
    );

    // Without TLS, MariaDB refuses the account: the server stops, saying so.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.conf");
    std::fs::write(
        &file,
        common::mysql::mysql_conf(
            &cluster.hosts[0],
            Some(&cluster.hosts[1]),
            "thrudoc",
            "SERVER_PORT = 0",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_thrudoc"))
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Access denied"),
        "{stderr}"
    );
}
