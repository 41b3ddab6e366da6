//! `backprop graph` against the hand computation written in `hints/intuition.md`.

use backprop::graph::{Node, tiny_network, to_dot, to_svg};

/// The rows of intuition.md's node table: (node, entry, value, gradient).
fn hand_table() -> Vec<(String, usize, f64, f64)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/hints/intuition.md"))
        .expect("hints/intuition.md");
    let table = text
        .split("<!-- graph-table")
        .nth(1)
        .expect("intuition.md has the graph table");
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let [name, entry, value, grad] = cells.as_slice() else {
                return None;
            };
            Some((
                name.to_string(),
                entry.parse().ok()?,
                value.parse().ok()?,
                grad.parse().ok()?,
            ))
        })
        .collect()
}

fn check(nodes: &[Node], level: &str) {
    let table = hand_table();
    assert_eq!(
        table.len(),
        21,
        "every entry of the 9 nodes is in the table"
    );
    for (name, entry, value, grad) in table {
        let node = nodes.iter().find(|node| node.name == name).expect(&name);
        let (ours_value, ours_grad) = (
            node.value.iter().nth(entry).unwrap(),
            node.grad.iter().nth(entry).unwrap(),
        );
        // The table has 6 decimals: half a unit in the last place.
        assert!(
            (ours_value - value).abs() <= 5e-7 && (ours_grad - grad).abs() <= 5e-7,
            "{level}: {name}[{entry}]: value {ours_value} gradient {ours_grad}, by hand {value} and {grad}"
        );
    }
}

#[test]
fn every_level_matches_the_hand_computation_in_intuition_md() {
    check(&tiny_network::<level01::Level01>(), "level01");
    check(&tiny_network::<level02::Level02>(), "level02");
    check(&tiny_network::<level03::Level03>(), "level03");
}

#[test]
fn the_dot_file_shows_each_node_with_value_and_gradient() {
    let dot = to_dot(&tiny_network::<level02::Level02>());
    assert!(dot.starts_with("// backprop graph") && dot.contains("digraph backward_pass {"));
    assert!(
        dot.contains("h [label=\"h\\nvalue [1.000000, 0.000000]\\ngrad  [-0.238406, 0.178804]\"]"),
        "{dot}"
    );
    assert!(dot.contains("z2 -> L [label=\"softmax + cross-entropy\"]"));
}

#[test]
fn the_svg_is_well_formed_and_shows_every_node_with_its_numbers() {
    let nodes = tiny_network::<level02::Level02>();
    let svg = to_svg(&nodes);
    let document = roxmltree::Document::parse(&svg).expect("graph.svg is well-formed XML");
    let texts: Vec<&str> = document
        .descendants()
        .filter(|node| node.has_tag_name("text"))
        .filter_map(|node| node.text())
        .collect();
    for node in &nodes {
        assert!(
            texts.contains(&node.name),
            "no label {} in {texts:?}",
            node.name
        );
    }
    // h's value and gradient, as in the .dot and in intuition.md.
    assert!(texts.contains(&"value [1.000000, 0.000000]"), "{texts:?}");
    assert!(texts.contains(&"grad  [-0.238406, 0.178804]"), "{texts:?}");
    assert_eq!(
        document
            .descendants()
            .filter(|node| node.has_tag_name("line"))
            .count(),
        8,
        "one arrow per edge"
    );
}
