use super::*;
use crate::fs::Durability;
use crate::protocol::window::{last_start, start_in_window, Window};

/// The first start stamps; a second within the window is refused and
/// leaves nothing; each costs what the module says.
#[test]
fn a_window_is_stamped_once_and_closed_cheaply() {
    let f = Fixture::new();
    let ctx = f.ctx();
    let min = Duration::from_secs(3600);
    let ops = [Op::Read, Op::Create, Op::Rename, Op::Unlink];
    let count = || ops.map(|op| f.fs.calls(op));
    let before = count();
    assert_eq!(
        start_in_window(&ctx, min, Durability::NoSync).unwrap(),
        Window::Open { last: None }
    );
    let after = count();
    // read (nothing there), create, rename, and the read that checks it.
    assert_eq!(
        after,
        [before[0] + 2, before[1] + 1, before[2] + 1, before[3]]
    );
    let last = last_start(&ctx).unwrap().unwrap();
    assert_eq!(last.host, f.env.identity().host);
    let closed = start_in_window(&ctx, min, Durability::NoSync).unwrap();
    assert!(
        matches!(&closed, Window::Closed { last: l, opens_in, .. } if *l == last && *opens_in > Duration::from_secs(3500)),
        "{closed:?}"
    );
    assert_eq!(f.names(), [".l.nfslock-stamp"], "only the stamp stays");
    // A zero window is always open, and the stamp moves on.
    assert!(matches!(
        start_in_window(&ctx, Duration::ZERO, Durability::NoSync).unwrap(),
        Window::Open { last: Some(_) }
    ));
}

/// A lost reply to the rename that put the stamp in place is no failure.
#[test]
fn a_lost_rename_reply_still_stamps() {
    let f = Fixture::new();
    f.fs.on(Op::Rename, None, 0, Fault::LostReply(ENOENT));
    let ctx = f.ctx();
    start_in_window(&ctx, Duration::from_secs(60), Durability::NoSync).unwrap();
    assert!(last_start(&ctx).unwrap().is_some());
    assert_eq!(f.names(), [".l.nfslock-stamp"]);
}
