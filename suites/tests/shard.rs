//! The shard plan over the real registry: every scale's case ids are unique, and every case lands
//! in exactly one of n shards, the same plan however often it is computed.

use infermark_suites::shard::{assign, case_id, Job};
use infermark_suites::{registry, Scale};

fn jobs(scale: Scale) -> Vec<Job> {
    registry()
        .into_iter()
        .flat_map(|s| {
            s.cases(scale)
                .into_iter()
                .map(|c| Job {
                    suite: s.name().to_string(),
                    cost: s.cost(&c, scale),
                    case: c,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_case_of_every_scale_lands_in_exactly_one_shard() {
    for scale in Scale::ALL {
        let jobs = jobs(scale);
        let mut ids: Vec<String> = jobs.iter().map(|j| case_id(&j.suite, &j.case)).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), jobs.len(), "{}: case ids repeat", scale.name());
        for count in [1, 2, 3, 7] {
            let shard_of = assign(&jobs, count).unwrap();
            assert_eq!(shard_of, assign(&jobs, count).unwrap());
            let mut sizes = vec![0usize; count];
            for s in &shard_of {
                sizes[s - 1] += 1;
            }
            assert_eq!(sizes.iter().sum::<usize>(), jobs.len());
            assert!(
                sizes.iter().all(|&n| n > 0),
                "{} over {count}: {sizes:?}",
                scale.name()
            );
        }
    }
}
