//! The conformance drivers of other languages (`tests/interop/<language>/`): bindings generated
//! by the Thrift compiler at test time, then the driver run with a script of
//! [`super::conformance`]. A missing compiler, runtime or library fails the test with the
//! command that installs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::process::{run, Ran};

/// The longest a driver may take for a whole script (four pairs).
const DRIVER_DEADLINE: Duration = Duration::from_secs(300);

/// What `scripts/setup --test` installs; the message of every missing-tool failure.
const SETUP: &str = "scripts/setup --test";

/// A language with a conformance driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Python,
    Ruby,
    Java,
    Node,
}

/// An IDL clients are generated from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `tests/interop/original.thrift`.
    Original,
    /// The original with no field ids in its `throws` clauses, as the earliest published
    /// revision wrote them: the compiler numbers the exception field -1.
    Earliest,
    /// The project's `idl/thrudoc.thrift`.
    New,
}

/// Bindings of one language for one IDL, ready to run the driver with.
pub struct Bindings {
    lang: Lang,
    source: Source,
    dir: tempfile::TempDir,
}

/// Fails, naming the install command, unless `tool probe...` runs and succeeds.
pub fn require(tool: &str, probe: &[&str], install: &str) {
    let found = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "`{tool}` is missing: run `{SETUP}` ({install})");
}

fn check_ran(ran: &Ran, what: &str) {
    assert!(
        ran.status.success(),
        "{what} failed ({}):\n{}\n{}",
        ran.status,
        ran.stdout,
        ran.stderr
    );
}

impl Bindings {
    /// Generates `lang`'s bindings of `source` into a temporary directory (and, for Java,
    /// compiles them with the driver).
    pub fn generate(lang: Lang, source: Source) -> Bindings {
        require(
            "thrift",
            &["--version"],
            "apt-get install -y thrift-compiler",
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let idl = match source {
            Source::Original => PathBuf::from("tests/interop/original.thrift"),
            Source::New => PathBuf::from("idl/thrudoc.thrift"),
            Source::Earliest => {
                let text = std::fs::read_to_string("tests/interop/original.thrift").unwrap();
                let earliest = text.replace(
                    "throws (1: ThrudocException e)",
                    "throws (ThrudocException e)",
                );
                assert_ne!(text, earliest, "original.thrift has no `throws (1: ...)`");
                let path = dir.path().join("earliest.thrift");
                std::fs::write(&path, earliest).unwrap();
                path
            }
        };
        let generator = match lang {
            Lang::Python => "py",
            Lang::Ruby => "rb",
            Lang::Java => "java:generated_annotations=suppress",
            Lang::Node => "js:node",
        };
        let gen = dir.path().join("gen");
        std::fs::create_dir_all(&gen).unwrap();
        let mut command = Command::new("thrift");
        command
            .args(["--gen", generator, "-out"])
            .arg(&gen)
            .arg(&idl);
        check_ran(&run(command, Duration::from_secs(60)), "thrift --gen");
        let bindings = Bindings { lang, source, dir };
        if lang == Lang::Java {
            bindings.compile_java();
        }
        bindings
    }

    fn gen(&self) -> PathBuf {
        self.dir.path().join("gen")
    }

    fn classes(&self) -> PathBuf {
        self.dir.path().join("classes")
    }

    fn compile_java(&self) {
        require(
            "javac",
            &["-version"],
            "apt-get install -y default-jdk-headless",
        );
        assert!(
            Path::new(JAVA_THRIFT).exists(),
            "{JAVA_THRIFT} is missing: run `{SETUP}` (apt-get install -y libthrift-java)"
        );
        let mut sources: Vec<PathBuf> = std::fs::read_dir(self.gen().join("thrudoc"))
            .expect("generated Java package `thrudoc`")
            .map(|e| e.unwrap().path())
            .collect();
        sources.push(PathBuf::from("tests/interop/java/Conformance.java"));
        let mut command = Command::new("javac");
        command
            .arg("-nowarn")
            .arg("-d")
            .arg(self.classes())
            .args(["-cp", &java_classpath(&[])])
            .args(sources);
        check_ran(&run(command, Duration::from_secs(180)), "javac");
    }

    /// Runs the Python program `file` with these (Python) bindings importable and `args`;
    /// its standard output, after checking that it succeeded.
    pub fn run_python(&self, file: &str, args: &[String]) -> String {
        assert_eq!(self.lang, Lang::Python, "Python bindings");
        require("python3", &["--version"], "apt-get install -y python3");
        let mut command = Command::new("python3");
        command.arg(file).args(args).env("PYTHONPATH", self.gen());
        let ran = run(command, DRIVER_DEADLINE);
        check_ran(&ran, file);
        ran.stdout
    }

    /// Runs the driver with `script` against `addr`.
    pub fn run(&self, addr: SocketAddr, script: &Value) -> Report {
        self.run_with(addr, script, &[])
    }

    /// [`Bindings::run`] with more driver arguments (the TLS ones: `--tls-ca FILE`,
    /// `--tls-cert FILE`, `--tls-key FILE`; Python and Node.js take them).
    pub fn run_with(&self, addr: SocketAddr, script: &Value, extra: &[String]) -> Report {
        let file = self.dir.path().join("script.json");
        std::fs::write(&file, serde_json::to_vec(script).unwrap()).unwrap();
        let (host, port) = (addr.ip().to_string(), addr.port().to_string());
        let mut command = match self.lang {
            Lang::Python => {
                require("python3", &["--version"], "apt-get install -y python3");
                let mut c = Command::new("python3");
                c.arg("tests/interop/python/conformance.py")
                    .arg("--gen")
                    .arg(self.gen())
                    .args([
                        "--module",
                        match self.source {
                            Source::New => "thrudoc",
                            Source::Original | Source::Earliest => "thrudoc_original",
                        },
                    ]);
                c
            }
            Lang::Ruby => {
                require(
                    "ruby",
                    &["--version"],
                    "apt-get install -y ruby ruby-thrift",
                );
                let mut c = Command::new("ruby");
                c.arg("tests/interop/ruby/conformance.rb")
                    .arg("--gen")
                    .arg(self.gen());
                c
            }
            Lang::Java => {
                require(
                    "java",
                    &["-version"],
                    "apt-get install -y default-jre-headless",
                );
                let mut c = Command::new("java");
                c.args(["-cp", &java_classpath(&[&self.classes()])])
                    .arg("Conformance");
                c
            }
            Lang::Node => {
                require("node", &["--version"], "apt-get install -y nodejs");
                let mut c = Command::new("node");
                c.arg("tests/interop/node/conformance.js")
                    .arg("--gen")
                    .arg(self.gen());
                c
            }
        };
        command
            .args(["--host", &host, "--port", &port, "--script"])
            .arg(&file)
            .args(extra);
        let ran = run(command, DRIVER_DEADLINE);
        Report {
            what: format!("{:?} driver, {:?} IDL", self.lang, self.source),
            ran,
        }
    }
}

/// Debian's libthrift-java and the one library it needs at run time.
const JAVA_THRIFT: &str = "/usr/share/java/thrift.jar";
const JAVA_SLF4J: &str = "/usr/share/java/slf4j-api.jar";

fn java_classpath(extra: &[&Path]) -> String {
    let mut parts: Vec<String> = extra.iter().map(|p| p.display().to_string()).collect();
    parts.push(JAVA_THRIFT.into());
    parts.push(JAVA_SLF4J.into());
    parts.join(":")
}

/// What a driver reported.
pub struct Report {
    what: String,
    ran: Ran,
}

impl Report {
    /// Asserts that the driver ran `checks` checks and every one passed.
    pub fn assert_passed(&self, checks: usize, server_log: &str) {
        let out = &self.ran.stdout;
        let summary = out.lines().last().unwrap_or_default();
        let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
        assert!(
            self.ran.status.success() && summary == format!("{checks} passed, 0 failed"),
            "{}: wanted `{checks} passed, 0 failed`, got `{summary}` ({}); failures:\n{}\n\
             stderr:\n{}\nserver log (last lines):\n{}",
            self.what,
            self.ran.status,
            failures.join("\n"),
            self.ran.stderr,
            tail(server_log, 40)
        );
    }

    /// The driver's whole output.
    pub fn stdout(&self) -> &str {
        &self.ran.stdout
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
