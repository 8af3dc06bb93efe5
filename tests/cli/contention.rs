use crate::util::*;
use std::process::Command;

#[test]
fn a_waiter_gets_the_lock_when_the_holder_releases() {
    let s = Scratch::new();
    let h = s.hold("l", &[]);
    let next = sleeper();
    let next_pid = next.pid.clone();
    let waiter = piped(s.cmd(["acquire", "--pid", &next_pid, "l"]));
    eventually("the waiter's claim", || s.litter().len() == 2);
    s.run(["release", "--pid", &h.pid, "l"]).code(0);
    wait_out(waiter, "waiter").code(0);
    // Having waited on inotify, it leaves the closing of that to a child
    // of its own (see sysenv): which must not outlive it.
    let mine = format!("acquire\0--pid\0{next_pid}\0l\0");
    eventually("no process of the waiter's left", || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.ends_with(mine.as_bytes()) && c.starts_with(BIN.as_bytes()))
        })
    });
    let v = s.run(["status", "--json", "l"]).code(75).json();
    assert_eq!(v["holder"]["pid"].as_u64().unwrap().to_string(), next_pid);
    s.run(["release", "--pid", &next_pid, "l"]).code(0);
    s.assert_no_litter();
    drop(next);
}

/// 16 shells x 50 read-increment-write cycles of one counter: any overlap
/// loses an update, so the exact total proves mutual exclusion.
#[test]
fn sixteen_processes_increment_a_counter_exactly() {
    let s = Scratch::new();
    std::fs::write(s.path("counter"), "0\n").unwrap();
    let script = r#"
        i=0
        while [ $i -lt 50 ]; do
            "$NFSLOCK" acquire --pid $$ counter.lock || exit 10
            n=$(cat counter)
            echo $((n + 1)) > counter
            "$NFSLOCK" release --pid $$ counter.lock || exit 11
            i=$((i + 1))
        done
    "#;
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(script)
                .current_dir(s.dir())
                .env("NFSLOCK", BIN);
            piped(c)
        })
        .collect();
    for w in workers {
        wait_out(w, "worker").code(0);
    }
    let total = std::fs::read_to_string(s.path("counter")).unwrap();
    assert_eq!(total.trim(), "800");
    assert!(!s.path("counter.lock").exists());
    s.assert_no_litter();
}
