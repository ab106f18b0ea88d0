//! The graph across machines, on dora's own deploy: a coordinator and three daemons on this
//! host (their own ports, loopback only) run `dataflows/hapt-multi-machine.yml` — ingest on
//! `ingest`, processing on `compute`, the log on `store` — and every prediction that reaches
//! the log is the one a single-machine `dora run` of the same graph gives. Known defect, held
//! to its extent: a few messages crossing daemons can be lost (at least 96 % arrive).
//! Needs the dora CLI and the node binaries, as `tests/dataflow.rs`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::flow::{Flow, DORA};

/// A free TCP port on loopback (bound, then released for the process that takes it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Background processes killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(args: &[&str], dir: &std::path::Path) -> Child {
    Command::new("dora")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the dora CLI is not on PATH: pip install dora-rs-cli==1.1.0")
}

const PREDICTIONS: &str = "SELECT device_id, window_id, predicted_label, round(confidence, 5) AS confidence FROM predictions ORDER BY device_id, window_id";

#[test]
fn three_daemons_run_the_graph_and_log_what_one_machine_logs() {
    let _one = DORA.lock().unwrap_or_else(|e| e.into_inner());
    let flow = Flow::from_yml("dataflows/hapt-multi-machine.yml", &[]);
    let coordinator = free_port().to_string();
    let zenoh = format!("tcp/127.0.0.1:{}", free_port());
    let mut processes = Processes(vec![spawn(
        &["coordinator", "--port", &coordinator, "--quiet"],
        flow.dir.path(),
    )]);
    std::thread::sleep(Duration::from_millis(500));
    for machine in ["ingest", "compute", "store"] {
        let listen = free_port().to_string();
        processes.0.push(spawn(
            &[
                "daemon",
                "--machine-id",
                machine,
                "--coordinator-port",
                &coordinator,
                "--local-listen-port",
                &listen,
                "--zenoh-peer",
                &zenoh,
            ],
            flow.dir.path(),
        ));
    }
    // Wait until the three daemons have registered.
    let started = Instant::now();
    loop {
        let out = Command::new("dora")
            .args(["cluster", "status", "--coordinator-port", &coordinator])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if ["ingest-", "compute-", "store-"]
            .iter()
            .all(|m| text.contains(m))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "daemons did not register: {text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = Command::new("dora")
        .args(["start", "--attach", "--coordinator-port", &coordinator])
        .arg(flow.yml())
        .current_dir(flow.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dora start failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stdout);
    for machine in ["ingest", "compute", "store"] {
        assert!(
            log.contains(&format!("on daemon `{machine}`")),
            "{machine} ran nothing"
        );
    }
    drop(processes);

    // What reached the log. Known defect (docs/dataflow.md, "Several machines"): messages
    // crossing daemons are sometimes lost — mostly the final windows', once a window mid-run —
    // so this holds what was seen: at least 96 % of the windows' predictions arrive, and each
    // is the one-machine prediction of its window (checked below).
    let across = flow.sql(PREDICTIONS);
    assert!(across.len() > 250, "{} predictions", across.len());

    // The same graph on one machine.
    let local = Flow::from_yml("dataflows/hapt-multi-machine.yml", &[]);
    let yml = std::fs::read_to_string(local.yml()).unwrap();
    let single: String = yml
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("deploy:") && !l.trim_start().starts_with("machine:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(local.yml(), single).unwrap();
    local.run();
    let here = local.sql(PREDICTIONS);
    assert!(
        across.len() * 100 >= here.len() * 96,
        "{} of {} predictions crossed machines",
        across.len(),
        here.len()
    );
    // Every prediction that crossed machines is the one-machine prediction of its window.
    let key = |r: &serde_json::Value| (r["device_id"].to_string(), r["window_id"].as_u64());
    let one: std::collections::BTreeMap<_, _> = here.iter().map(|r| (key(r), r)).collect();
    for r in &across {
        assert_eq!(
            Some(&r),
            one.get(&key(r)),
            "the same prediction on one machine"
        );
    }
}
