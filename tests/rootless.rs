//! closefuzz run by an ordinary user: each executing thread still gets a private network
//! namespace, and gVisor runs (rootless).
//!
//! Run as root, each test runs the built binary as user `nobody` through `setpriv`
//! (skipped, saying why, when `setpriv` or the user is missing or the binary is out of
//! nobody's reach); run as anyone else, it runs the binary as that user. The binary is
//! asked (`CLOSEFUZZ_SHOW_NETNS`) to print, for each namespace a thread enters, the
//! namespace its sockets are in as the kernel reports it (`SIOCGSKNS`), which the tests
//! compare with the host's.

use closefuzz::exec::netns::{NO_USER_NAMESPACE_ENV, SHOW_NAMESPACE_ENV};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_closefuzz");

/// A directory owned by the user the binary runs as, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str, owner: Option<(u32, u32)>) -> TempDir {
        let dir = std::env::temp_dir().join(format!("closefuzz-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How the tests run the binary unprivileged.
enum Runner {
    /// We are root: through setpriv as nobody (uid, gid).
    Nobody(u32, u32),
    /// We are already an ordinary user.
    Itself,
}

fn runner() -> Option<Runner> {
    // SAFETY: plain id query.
    if unsafe { libc::geteuid() } != 0 {
        return Some(Runner::Itself);
    }
    let Ok(out) = Command::new("setpriv").arg("--version").output() else {
        eprintln!(
            "skipped: setpriv (util-linux) not found; it is how root runs closefuzz as nobody"
        );
        return None;
    };
    assert!(out.status.success(), "setpriv --version failed");
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let ids = unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    };
    let Some((uid, gid)) = ids else {
        eprintln!("skipped: no user nobody");
        return None;
    };
    let r = Runner::Nobody(uid, gid);
    // The binary and the scenarios must be reachable by nobody (a target directory
    // under a private home is not).
    let probe = run(&r, "/usr/bin/test", &["-x", BIN], &[], Path::new("/"));
    if !probe.status.success() {
        eprintln!("skipped: {BIN} is not executable by nobody (check the directories' o+x)");
        return None;
    }
    Some(r)
}

impl Runner {
    fn owner(&self) -> Option<(u32, u32)> {
        match self {
            Runner::Nobody(u, g) => Some((*u, *g)),
            Runner::Itself => None,
        }
    }
}

/// Runs `program args` unprivileged in `dir`, killed after 120 s.
fn run(r: &Runner, program: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut cmd = match r {
        Runner::Nobody(uid, gid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(program);
            c
        }
        Runner::Itself => Command::new(program),
    };
    cmd.args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).map(|_| v)
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).map(|_| v)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap().unwrap(),
        stderr: t_err.join().unwrap().unwrap(),
    }
}

/// The host's network namespace, as `/proc/self/ns/net` names it.
fn host_namespace() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string()
}

/// The `closefuzz netns:` lines: (isolation, made by, sockets' namespace).
fn namespaces(stderr: &str) -> Vec<(String, String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("closefuzz netns: "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let field = |name: &str| {
                let i = w.iter().position(|x| *x == name).expect(l);
                w[i + 1].to_string()
            };
            (field("isolation"), field("by"), field("sockets"))
        })
        .collect()
}

/// Checks that `threads` threads each made their sockets in a private namespace (by
/// themselves, or by a helper, as `by` says): not the host's, and not each other's.
fn assert_private(stderr: &str, threads: usize, by: &str) {
    let host = host_namespace();
    let seen = namespaces(stderr);
    assert_eq!(seen.len(), threads, "one namespace per thread:\n{stderr}");
    let mut distinct = BTreeSet::new();
    for (iso, made_by, sockets) in &seen {
        assert_eq!(iso, "Private", "{stderr}");
        assert_eq!(made_by, by, "{stderr}");
        assert!(sockets.starts_with("net:["), "{stderr}");
        assert_ne!(*sockets, host, "sockets in the host's namespace:\n{stderr}");
        distinct.insert(sockets.clone());
    }
    assert_eq!(
        distinct.len(),
        threads,
        "threads share a namespace:\n{stderr}"
    );
}

/// Both unprivileged paths: the binary's own (a user namespace entered at start) and
/// the one a multithreaded process such as a test harness takes (a helper per thread).
/// Each with who makes the namespaces.
const PATHS: [(&str, &[(&str, &str)]); 2] = [
    ("thread", &[(SHOW_NAMESPACE_ENV, "1")]),
    (
        "helper",
        &[(SHOW_NAMESPACE_ENV, "1"), (NO_USER_NAMESPACE_ENV, "1")],
    ),
];

#[test]
fn fuzz_as_an_ordinary_user_uses_private_namespaces() {
    let Some(r) = runner() else { return };
    for (path, env) in PATHS {
        let dir = TempDir::new("rootless-fuzz", r.owner());
        let out_dir = dir.0.join("failures");
        let args = [
            "fuzz",
            "--cases",
            "2000",
            "--threads",
            "2",
            "--seed",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        let o = run(&r, BIN, &args, env, &dir.0);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{path}: {}\n{stdout}\n{stderr}",
            o.status
        );
        assert!(
            stdout.contains("2000 cases, 0 mismatches"),
            "{path}: {stdout}"
        );
        assert_private(&stderr, 2, path);
    }
}

#[test]
fn replay_as_an_ordinary_user_uses_a_private_namespace() {
    let Some(r) = runner() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/tcp-motivating-case.cfz");
    for (path, env) in PATHS {
        let dir = TempDir::new("rootless-replay", r.owner());
        let o = run(&r, BIN, &["replay", script.to_str().unwrap()], env, &dir.0);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{path}: {}\n{stdout}\n{stderr}",
            o.status
        );
        assert_private(&stderr, 1, path);
    }
}

/// gVisor as an ordinary user: runsc must be started `--rootless`, or it stops at
/// `cannot set up cgroup`. The case must run on gVisor with kernel and model agreeing
/// on every step and every expectation met: the scenario states gVisor's own where it
/// differs (`EPIPE sigpipe; gvisor => EPIPE`: gVisor raises no SIGPIPE).
#[test]
fn gvisor_replay_as_an_ordinary_user_runs() {
    if let Err(e) = closefuzz::exec::gvisor::find_runsc() {
        eprintln!("skipped: runsc not available ({e})");
        return;
    }
    let Some(r) = runner() else { return };
    let dir = TempDir::new("rootless-gvisor", r.owner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/tcp-motivating-case.cfz");
    let args = [
        "replay",
        "--json",
        "--platform",
        "gvisor",
        script.to_str().unwrap(),
    ];
    let o = run(&r, BIN, &args, &[], &dir.0);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the replay did not run or did not pass: {}\n{stdout}\n{stderr}",
        o.status
    );
    let reports: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    let report = &reports[0];
    assert_eq!(report["platform"], "gvisor", "{stdout}");
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 9, "{stdout}");
    for s in steps {
        assert_eq!(s["model_agrees"], true, "{s}");
        assert_eq!(s["expectation_met"], true, "{s}");
    }
    // Judged by gVisor's part of the line, not Linux's.
    assert_eq!(steps[6]["expect"], "EPIPE", "{stdout}");
    assert_eq!(report["pass"], true, "{stdout}");
}
