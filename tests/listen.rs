//! Where the real binary listens: a repeated `--web.listen-address` (every
//! address serves, under the same web config; a duplicate, an overlap or an
//! address that cannot be bound stops the start, naming it) and
//! `--web.systemd-socket` (the sockets `systemd-socket-activate` passes).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use avepoint_exporter::simulator::{RunningSimulator, SimulatorConfig};
use common::RunningBinary;

const BIN: &str = env!("CARGO_BIN_EXE_avepoint-exporter");

/// The simulator in this process and a config file for it in `dir`.
async fn simulator_config(dir: &Path) -> (RunningSimulator, PathBuf) {
    let sim = RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let path = dir.join("avepoint.yml");
    std::fs::write(&path, sim.exporter_config(None)).unwrap();
    (sim, path)
}

/// The binary with `args` and the simulator's secret.
fn exporter(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["--config.file", config.to_str().unwrap()])
        .args(args)
        .env(
            "AVEPOINT_CLIENT_SECRET",
            avepoint_exporter::simulator::DEMO_CLIENT_SECRET,
        )
        .env_remove("AVEPOINT_CLIENT_ID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    command
}

/// Run `command` to its exit (it must exit within 15 s); its status and stderr.
fn run_to_exit(mut command: Command) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 15 s: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

async fn get(url: &str, user: Option<(&str, &str)>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(15));
    if let Some((user, password)) = user {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listen_address_serves_under_the_same_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, config) = simulator_config(dir.path()).await;
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prom: '{hash}'\n")).unwrap();
    let command = exporter(
        &config,
        &[
            "--web.config.file",
            web.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.listen-address",
            "127.0.0.1:0",
        ],
    );
    let binary = RunningBinary::spawn_listening(command, 2);
    let [first, second] = [binary.addresses[0].clone(), binary.addresses[1].clone()];
    assert_ne!(first, second);
    for address in [&first, &second] {
        let url = format!("http://{address}/metrics");
        assert_eq!(
            get(&url, None).await.0,
            401,
            "{address} without credentials"
        );
        let (status, metrics) = get(&url, Some(("prom", "pw"))).await;
        assert_eq!(status, 200, "{address}");
        common::assert_profiles_up(&metrics, 9);
    }
    let log = binary.terminate();
    let listening = log.matches("message=listening").count();
    assert_eq!(listening, 2, "one line per address:\n{log}");
    assert!(log.contains(&format!("address={first} ")), "{log}");
    assert!(log.contains(&format!("address={second} ")), "{log}");
    assert_eq!(log.matches("message=\"shutting down\"").count(), 1, "{log}");
}

#[test]
fn a_duplicate_an_overlap_or_an_unusable_address_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_offline_config(dir.path());
    // A port in use: a duplicate of it must be reported as a duplicate,
    // found before anything is bound, not as "address in use".
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let in_use = format!("127.0.0.1:{port}");
    let every = format!(":{port}");
    let cases: [(&[&str], String); 4] = [
        (
            &[&in_use, &in_use],
            format!("--web.listen-address {in_use} is given twice; give each address once"),
        ),
        (
            &[&every, &in_use],
            format!(
                "--web.listen-address {in_use} overlaps --web.listen-address {every}: both take \
                 port {port} (one of them listens on every interface); give one of them"
            ),
        ),
        (
            &["127.0.0.1:0", &in_use],
            format!("cannot listen on {in_use}: Address already in use"),
        ),
        (
            &["127.0.0.1:0", "not-an-address"],
            "--web.listen-address not-an-address: ".to_owned(),
        ),
    ];
    for (addresses, expected) in cases {
        let mut args = Vec::new();
        for address in addresses {
            args.extend(["--web.listen-address", address]);
        }
        let (status, stderr) = run_to_exit(exporter(&config, &args));
        assert_eq!(status.code(), Some(1), "{addresses:?}: {stderr}");
        assert!(stderr.contains(&expected), "{addresses:?}: {stderr}");
        assert!(!stderr.contains("message=listening"), "{stderr}");
    }
}

#[test]
fn the_systemd_socket_flag_without_sockets_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_offline_config(dir.path());
    let hint = "; start the exporter through its .socket unit \
                (deploy/systemd/avepoint-exporter.socket), or drop the flag and use --web.listen-address";
    // LISTEN_PID 1 is init's: sockets passed to another process are not ours.
    let cases: [(&[(&str, &str)], &str); 2] = [
        (&[], "LISTEN_FDS is not set"),
        (
            &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")],
            "LISTEN_PID=1 is not this process",
        ),
    ];
    for (env, reason) in cases {
        let mut command = exporter(&config, &["--web.systemd-socket"]);
        command.envs(env.iter().copied());
        let (status, stderr) = run_to_exit(command);
        assert_eq!(status.code(), Some(1), "{stderr}");
        let expected = format!("--web.systemd-socket: systemd passed no sockets ({reason}");
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(stderr.contains(hint), "{stderr}");
    }
    // With an explicit address the two cannot both be meant.
    let (status, stderr) = run_to_exit(exporter(
        &config,
        &["--web.systemd-socket", "--web.listen-address", ":10290"],
    ));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// `systemd-socket-activate` from `PATH`. Missing in CI is a failure (CI
/// installs the Debian package systemd); elsewhere the test is skipped,
/// saying so.
fn socket_activate() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("systemd-socket-activate"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "systemd-socket-activate is not installed (Debian package systemd; .ci/run installs it)"
        );
        eprintln!("skipped: systemd-socket-activate is not installed (Debian package systemd)");
    }
    found
}

/// A port free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_the_sockets_systemd_socket_activate_passes() {
    let Some(activate) = socket_activate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_sim, config) = simulator_config(dir.path()).await;
    let ports = [free_port(), free_port()];
    let mut command = Command::new(activate);
    for port in ports {
        command.args(["-l", &format!("127.0.0.1:{port}")]);
    }
    // systemd-socket-activate passes on only the variables it is given.
    command
        .arg(format!(
            "--setenv=AVEPOINT_CLIENT_SECRET={}",
            avepoint_exporter::simulator::DEMO_CLIENT_SECRET
        ))
        .args([BIN, "--config.file", config.to_str().unwrap()])
        .arg("--web.systemd-socket");
    // It starts the exporter on the first connection, as systemd would;
    // that connection waits in the socket's backlog meanwhile.
    let first = ports[0];
    let knock = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", first)).is_err() {
            assert!(Instant::now() < deadline, "nothing listens on {first}");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let binary = RunningBinary::spawn_listening(command, 2);
    knock.join().unwrap();
    let expected: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert_eq!(binary.addresses, expected, "the .socket unit's order");
    for address in &binary.addresses {
        let (status, metrics) = get(&format!("http://{address}/metrics"), None).await;
        assert_eq!(status, 200, "{address}");
        common::assert_profiles_up(&metrics, 9);
    }
    let log = binary.terminate();
    assert_eq!(
        log.matches("systemd_socket=true").count(),
        2,
        "one line per socket:\n{log}"
    );
}

/// A passed socket that is bound but not listening used to be accepted, and
/// the exporter ran without ever serving (issue #20): now the start fails,
/// naming the socket and its address. `python3` passes the socket (the
/// tests cannot, `unsafe` being forbidden); without it the test is skipped,
/// saying so.
#[test]
fn a_passed_socket_that_is_not_listening_stops_the_start() {
    let python = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("python3"))
            .find(|candidate| candidate.is_file())
    });
    let Some(python) = python else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_offline_config(dir.path());
    // Bound, never listened on, as fd 3 of the exporter; LISTEN_PID is the
    // exporter's, which keeps python's pid across the exec.
    let script = "import os, socket, sys\n\
                  s = socket.socket()\n\
                  s.bind(('127.0.0.1', 0))\n\
                  os.dup2(s.fileno(), 3)\n\
                  os.set_inheritable(3, True)\n\
                  os.environ['LISTEN_FDS'] = '1'\n\
                  os.environ['LISTEN_PID'] = str(os.getpid())\n\
                  print(s.getsockname()[1], flush=True)\n\
                  os.execv(sys.argv[1], sys.argv[1:])\n";
    let exporter = exporter(&config, &["--web.systemd-socket"]);
    let mut command = Command::new(python);
    command
        .args(["-c", script, BIN])
        .args(exporter.get_args())
        .envs(
            exporter
                .get_envs()
                .filter_map(|(key, value)| value.map(|value| (key, value))),
        )
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    let (status, stderr) = run_to_exit(command);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = "--web.systemd-socket: socket 1 of 1 that systemd passed (127.0.0.1:";
    assert!(stderr.contains(expected), "{stderr}");
    assert!(
        stderr.contains(
            ") is bound but not listening; whatever passes it must listen on it \
             (ListenStream= in a .socket unit does, with Accept=no)"
        ),
        "{stderr}"
    );
}
