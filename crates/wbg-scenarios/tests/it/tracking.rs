//! The public lookup against its scrapers, with ground truth (issue 21, item 7): over two simulated days of
//! customers looking up their 5,000 parcels (typos, shared addresses and last-four checks included), scrapers
//! guessing numbers in sequence or at random, from one address or a whole /24, and guessing recipients' last four
//! digits from one address or fifty networks, a botnet guessing from a network per guess — no scraper is shown
//! any personal data, each number-guesser is blocked before 100 lookups of numbers it does not own, the botnet
//! raises the distributed alert (and nothing else does), no number takes 20 wrong last-four guesses, and no
//! customer is ever refused.
use wbg_scenarios::{simulate_tracking, Looker, SimSpec, TrackingSpec, World};

#[test]
fn scrapers_are_blocked_and_shown_nothing_while_customers_never_are() {
    for seed in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mut world = World::scratch(dir.path(), &SimSpec::small(seed)).unwrap();
        let report = simulate_tracking(&mut world, &TrackingSpec::standard(seed)).unwrap();
        eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
        let of = |l: Looker| report.lookers.iter().find(|o| o.looker == l).unwrap();
        let customers = of(Looker::Customers);
        assert!(customers.lookups > 10_000, "{}", customers.lookups);
        assert_eq!(
            (customers.slowed, customers.blocked),
            (0, 0),
            "a customer was refused"
        );
        for l in Looker::SCRAPERS {
            let o = of(l);
            assert_eq!(o.foreign_reveals, 0, "{l:?} was shown personal data");
            assert!(
                o.max_wrong_last4_per_number < 20,
                "{l:?}: {} last-four guesses on one number",
                o.max_wrong_last4_per_number
            );
        }
        // A botnet asking each number once from a network of its own passes every per-source watch: it is not
        // blocked, it is seen — the distributed alert is raised while it works, never for customers alone — and
        // it gets routing data only.
        assert!(
            report.distributed_alerts_during_botnet >= 1,
            "the botnet went unseen"
        );
        assert_eq!(report.distributed_alerts_otherwise, 0, "a false alarm");
        // Guessing the last four digits from fifty networks evades every address and network block: each number's
        // check locks instead.
        let spread = of(Looker::Last4Rotating);
        assert!(spread.last4_locked > 1_000, "{}", spread.last4_locked);
        for l in [
            Looker::Sequential,
            Looker::Random,
            Looker::RotatingPrefix,
            Looker::Last4Guessing,
        ] {
            let o = of(l);
            assert!(o.blocked > 0, "{l:?} was never blocked");
            assert!(
                o.foreign_before_block < 100,
                "{l:?}: {} lookups of others' numbers before its block",
                o.foreign_before_block
            );
        }
    }
}
