use super::*;

#[test]
fn a_crash_at_any_step_of_a_cycle_leaves_nothing_unrecoverable() {
    let cycle = |f: &Fixture| {
        let ctx = Ctx {
            io_timeout: Duration::from_millis(20),
            ..f.ctx()
        };
        let mut o = f.opts();
        o.owner = dead_owner();
        if let Ok(held) = acquire(&ctx, &o) {
            let _ = held.touch(&ctx).and_then(|_| held.release(&ctx));
        }
    };
    let clean = Fixture::new();
    cycle(&clean);
    let steps = clean.fs.steps();
    assert!(steps >= 8, "a cycle takes {steps} calls");
    for step in 1..=steps {
        let f = Fixture::new();
        f.fs.crash_before(step);
        cycle(&f);
        recovers_from_a_crash(&f, "cycle", step);
    }
}

#[test]
fn a_crash_at_any_step_of_a_break_leaves_nothing_unrecoverable() {
    let setup = || {
        let f = Fixture::new();
        let mut o = f.opts();
        o.owner = dead_owner();
        let _crashed = acquire(&f.ctx(), &o).unwrap();
        f
    };
    let breaks = |f: &Fixture| {
        let ctx = Ctx {
            io_timeout: Duration::from_millis(20),
            ..f.ctx()
        };
        let opts = BreakOptions {
            older_than: None,
            force: false,
            dry_run: false,
        };
        break_lock(&ctx, opts)
    };
    let clean = setup();
    clean.fs.crash_before(usize::MAX);
    let out = breaks(&clean);
    assert!(
        matches!(out, Ok(BreakOutcome::Broken { .. })),
        "the dead owner's lock is broken: {out:?}"
    );
    let steps = clean.fs.steps();
    for step in 1..=steps {
        let f = setup();
        f.fs.crash_before(step);
        let _ = breaks(&f);
        recovers_from_a_crash(&f, "break", step);
    }
}
