//! `backprop hint gate1 [--more]` (or `conv`): a gate's hint one tier at a time, so a learner takes only as
//! much as they need. Tier 1 is the idea, tier 2 the shapes argument or a worked example, tier 3
//! the formula. Each `--more` shows the next tier; the tiers live in `hints/tiers/gateN.md`
//! (one `## ` section per tier) and are built into the binary, so `hint` works from anywhere.

use crate::error::RunError;

/// One gate's hint: its topic name, the longer hint page, and the `hints/tiers` text.
#[derive(Debug)]
struct Topic {
    name: &'static str,
    page: &'static str,
    tiers: &'static str,
}

const TOPICS: [Topic; 5] = [
    Topic {
        name: "gate1",
        page: "hints/hint-2-linear-backward.md (and hint-1-chain-rule.md for the activations)",
        tiers: include_str!("../hints/tiers/gate1.md"),
    },
    Topic {
        name: "gate2",
        page: "hints/hint-3-full-network.md",
        tiers: include_str!("../hints/tiers/gate2.md"),
    },
    Topic {
        name: "gate3",
        page: "hints/gate3-finite-differences.md",
        tiers: include_str!("../hints/tiers/gate3.md"),
    },
    Topic {
        name: "gate4",
        page: "hints/gate4-pytorch.md",
        tiers: include_str!("../hints/tiers/gate4.md"),
    },
    Topic {
        name: "conv",
        page: "hints/hint-5-convolution.md",
        tiers: include_str!("../hints/tiers/conv.md"),
    },
];

/// The tiers of a topic's text: `(heading, body)` per `## ` section, in order.
fn tiers(text: &str) -> Vec<(&str, &str)> {
    text.split("\n## ")
        .skip(1)
        .map(|section| {
            let (heading, body) = section.split_once('\n').unwrap_or((section, ""));
            (heading.trim(), body.trim())
        })
        .collect()
}

/// The text `backprop hint TOPIC` prints after `more` uses of `--more`: one tier, and the
/// command for the next. `TOPIC` is `gate1`..`gate4` or `conv`, or a check name containing one
/// (`basic::gate1_single_layer_backward`, `conv::conv2d_matches_hand_computation`).
///
/// # Errors
/// An unknown topic; the message lists the known ones.
pub fn hint(topic: &str, more: usize) -> Result<String, RunError> {
    let known = || TOPICS.map(|topic| topic.name).join(", ");
    let found = TOPICS
        .iter()
        .find(|candidate| topic.contains(candidate.name))
        .ok_or_else(|| {
            RunError::Argument(format!(
                "hint: no hints for {topic:?}; the topics are {}",
                known()
            ))
        })?;
    let tiers = tiers(found.tiers);
    let shown = more.min(tiers.len() - 1);
    let (heading, body) = tiers[shown];
    let mut text = format!(
        "{}, tier {} of {}: {}\n\n{body}\n\n",
        found.name,
        shown + 1,
        tiers.len(),
        heading.to_lowercase()
    );
    if shown + 1 < tiers.len() {
        let flags = " --more".repeat(shown + 1);
        text.push_str(&format!("next tier: backprop hint {}{flags}\n", found.name));
    } else {
        text.push_str(&format!(
            "that was the last tier; the whole page: {}\n",
            found.page
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_three_tiers_idea_first_formula_last() {
        for topic in &TOPICS {
            let tiers = tiers(topic.tiers);
            assert_eq!(tiers.len(), 3, "{}", topic.name);
            assert_eq!(tiers[0].0, "The idea", "{}", topic.name);
            assert_eq!(tiers[2].0, "The formula", "{}", topic.name);
            assert!(
                tiers.iter().all(|(_, body)| body.len() > 200),
                "{}",
                topic.name
            );
        }
    }

    #[test]
    fn each_more_shows_the_next_tier_and_the_formula_comes_last() {
        let first = hint("gate1", 0).unwrap();
        assert!(first.starts_with("gate1, tier 1 of 3: the idea"), "{first}");
        assert!(
            first.contains("next tier: backprop hint gate1 --more\n"),
            "{first}"
        );
        // The idea gives no formula away.
        assert!(
            !first.contains("x^T g") && !first.contains("W^T"),
            "{first}"
        );
        let second = hint("basic::gate1_single_layer_backward", 1).unwrap();
        assert!(second.starts_with("gate1, tier 2 of 3"), "{second}");
        assert!(
            second.contains("--more --more\n") && !second.contains("x^T g"),
            "{second}"
        );
        let third = hint("gate1", 2).unwrap();
        assert!(
            third.contains("x^T g") && third.contains("last tier"),
            "{third}"
        );
        assert_eq!(hint("gate1", 7).unwrap(), third);
        let unknown = hint("gate9", 0).unwrap_err().to_string();
        assert!(
            unknown.contains("gate1, gate2, gate3, gate4, conv"),
            "{unknown}"
        );
        let conv = hint("conv::conv2d_matches_hand_computation", 0).unwrap();
        assert!(conv.starts_with("conv, tier 1 of 3: the idea"), "{conv}");
    }
}
