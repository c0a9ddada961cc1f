//! ECR lifecycle policy documents (PutLifecyclePolicy,
//! StartLifecyclePolicyPreview), then evaluated over a few images.
//! Input: the document, then optionally a NUL and `pattern\ntag` for the
//! tag wildcard matcher.
#![no_main]

use berth_core::lifecycle::{self, Image, ImageStatus, Policy};
use libfuzzer_sys::fuzz_target;

const DAY: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_714_564_800_000;

fn image(n: u8, tags: &[&str], age_days: i64, status: ImageStatus, referenced: bool) -> Image {
    Image {
        digest: format!("sha256:{:064x}", n),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: NOW - age_days * DAY,
        referenced,
        pulled_at: (n % 2 == 0).then_some(NOW - age_days / 2 * DAY),
        status,
        archived_at: (status == ImageStatus::Archived).then_some(NOW - 100 * DAY),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (document, rest) = text.split_once('\0').unwrap_or((text, ""));
    if let Some((pattern, tag)) = rest.split_once('\n') {
        let _ = lifecycle::wildcard_match(pattern, tag);
    }
    let Ok(policy) = Policy::parse(document) else {
        return;
    };
    assert!(!policy.rules.is_empty() && policy.rules.len() <= lifecycle::MAX_RULES);
    assert!(policy.rules.windows(2).all(|w| w[0].priority < w[1].priority));
    let images = [
        image(1, &["latest", "v1.2.3"], 1, ImageStatus::Active, false),
        image(2, &["prod-2024", "release-1"], 40, ImageStatus::Active, false),
        image(3, &[], 400, ImageStatus::Active, false),
        image(4, &[], 10, ImageStatus::Active, true),
        image(5, &["dev-abc", "feature-x"], 3000, ImageStatus::Archived, false),
        image(6, &["old"], 365, ImageStatus::Archived, false),
        image(7, &["v0.0.1"], 100, ImageStatus::Activating, false),
        image(8, &[""], 0, ImageStatus::Active, false),
        image(9, &["x"], -5, ImageStatus::Active, false),
    ];
    for now in [NOW, 0] {
        let expired = lifecycle::evaluate(&policy, &images, now);
        // Each image is taken by one rule at most.
        let mut digests: Vec<&str> = expired.iter().map(|e| e.digest.as_str()).collect();
        digests.sort_unstable();
        let before = digests.len();
        digests.dedup();
        assert_eq!(before, digests.len(), "an image expired twice");
        assert!(expired.iter().all(|e| !e.digest.ends_with("4")), "a referenced image expired");
    }
});
