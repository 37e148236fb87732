//! Certificates for the TLS tests, made by the `openssl` command line: a CA, a server
//! certificate for `localhost` and 127.0.0.1 signed by it, a client certificate signed by it,
//! and a client certificate signed by another CA (which a server must refuse).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::drivers::require;

/// The files, in a temporary directory.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key `NAME.key` and, for subject `cn`, `out`: a certificate request, or with
/// `-x509` among `extra` a self-signed certificate.
fn new_key(dir: &Path, name: &str, cn: &str, out: &str, extra: &[&str]) {
    let (key, subject) = (format!("{name}.key"), format!("/CN={cn}"));
    let mut args = vec!["req"];
    args.extend_from_slice(extra);
    args.extend([
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        out,
        "-subj",
        &subject,
    ]);
    openssl(dir, &args);
}

/// A P-256 key and a certificate for `cn`, signed by `ca` with `extensions`.
fn signed(dir: &Path, name: &str, cn: &str, ca: &str, extensions: &str) {
    new_key(dir, name, cn, &format!("{name}.csr"), &[]);
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// A self-signed CA: `NAME.key` and `NAME.pem`, for subject `cn`.
fn ca(dir: &Path, name: &str, cn: &str) {
    new_key(
        dir,
        name,
        cn,
        &format!("{name}.pem"),
        &["-x509", "-days", "2"],
    );
}

impl Certs {
    pub fn make() -> Certs {
        require("openssl", &["version"], "apt-get install -y openssl");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ca(d, "ca", "Thrudoc test CA");
        ca(d, "rogue-ca", "Some other CA");
        signed(
            d,
            "server",
            "localhost",
            "ca",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        signed(
            d,
            "client",
            "a client",
            "ca",
            "extendedKeyUsage=clientAuth\n",
        );
        signed(
            d,
            "rogue",
            "a stranger",
            "rogue-ca",
            "extendedKeyUsage=clientAuth\n",
        );
        Certs { dir }
    }

    /// `NAME.pem` or `NAME.key` of the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `TLS_*` lines of a server with this certificate; `mutual` adds the client CA.
    pub fn server_conf(&self, mutual: bool) -> String {
        let mut conf = format!(
            "TLS_CERT_FILE = {}\nTLS_KEY_FILE = {}\n",
            self.file("server.pem").display(),
            self.file("server.key").display()
        );
        if mutual {
            conf.push_str(&format!(
                "TLS_CLIENT_CA_FILE = {}\n",
                self.file("ca.pem").display()
            ));
        }
        conf
    }

    /// A conformance driver's TLS arguments, with the client certificate `client` (`client`,
    /// `rogue`) or none.
    pub fn driver_args(&self, client: Option<&str>) -> Vec<String> {
        let mut args = vec![
            "--tls-ca".to_string(),
            self.file("ca.pem").display().to_string(),
        ];
        if let Some(c) = client {
            args.extend([
                "--tls-cert".to_string(),
                self.file(&format!("{c}.pem")).display().to_string(),
                "--tls-key".to_string(),
                self.file(&format!("{c}.key")).display().to_string(),
            ]);
        }
        args
    }
}
