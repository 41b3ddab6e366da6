//! `backprop graph`: the computation of a tiny network as a Graphviz picture, each node with its
//! value and its gradient after one backward pass.
//!
//! The network is the worked example of `hints/intuition.md`: 2 inputs, 2 ReLU units, 2 classes,
//! one sample, softmax cross-entropy against class 0, with hand-picked weights. A learner checks
//! a hand computation against the numbers in the picture.

use std::fs;
use std::path::Path;
use std::process::Command;

use backprop_core::{Layer, Level, LinearLayer, Loss, Targets};
use ndarray::{Array2, Axis, array};

use crate::error::RunError;
use crate::output::{create_folder, write_atomically};

/// One node of the picture: a name (`x`, `z1`, `W1`, ...), its values and its gradients, both in
/// the tensor's shape, row by row.
#[derive(Debug, Clone)]
pub struct Node {
    /// The tensor's name.
    pub name: &'static str,
    /// Its value after the forward pass.
    pub value: Array2<f64>,
    /// dL/d(it) after the backward pass.
    pub grad: Array2<f64>,
}

/// Runs the worked example of `hints/intuition.md` through level `L`'s layers: forward, loss,
/// backward. Returns the nodes input to loss.
pub fn tiny_network<L: Level<f64>>() -> Vec<Node> {
    let x = array![[1.0, 2.0]];
    let (w1, b1) = (array![[0.5, -0.5], [0.25, 0.5]], array![0.0, -1.0]);
    let (w2, b2) = (array![[1.0, -1.0], [0.5, 2.0]], array![0.0, 0.0]);
    let targets = [0];
    let mut linear1 = L::linear(w1, b1);
    let mut relu = L::relu();
    let mut linear2 = L::linear(w2, b2);
    let mut loss = L::softmax_cross_entropy();

    // Forward: z1 = x W1 + b1, h = relu(z1), z2 = h W2 + b2, L = cross-entropy(softmax(z2), 0).
    let z1 = linear1.forward(x.view());
    let h = relu.forward(z1.view());
    let z2 = linear2.forward(h.view());
    let value = loss.forward(z2.view(), Targets::Classes(&targets));
    // Backward, last to first: each layer turns dL/d(output) into dL/d(input).
    let grad_z2 = loss.backward();
    let grad_h = linear2.backward(grad_z2.view());
    let grad_z1 = relu.backward(grad_h.view());
    let grad_x = linear1.backward(grad_z1.view());

    // Each parameter and its gradient as a 2-D array (a bias as one row).
    let params = |layer: &mut L::Linear| {
        let params = layer.params_mut();
        let row = |bias: ndarray::ArrayView1<'_, f64>| bias.insert_axis(Axis(0)).to_owned();
        (
            (params.weight.to_owned(), params.grad_weight.to_owned()),
            (row(params.bias.view()), row(params.grad_bias.view())),
        )
    };
    let ((w1_value, w1_grad), (b1_value, b1_grad)) = params(&mut linear1);
    let ((w2_value, w2_grad), (b2_value, b2_grad)) = params(&mut linear2);
    let node = |name, (value, grad)| Node { name, value, grad };
    vec![
        node("x", (x, grad_x)),
        node("W1", (w1_value, w1_grad)),
        node("b1", (b1_value, b1_grad)),
        node("z1", (z1, grad_z1)),
        node("h", (h, grad_h)),
        node("W2", (w2_value, w2_grad)),
        node("b2", (b2_value, b2_grad)),
        node("z2", (z2, grad_z2)),
        node("L", (array![[value]], array![[1.0]])),
    ]
}

/// The Graphviz text of `nodes` (as [`tiny_network`] returns them).
pub fn to_dot(nodes: &[Node]) -> String {
    let numbers = |array: &Array2<f64>| {
        let rows: Vec<String> = array
            .rows()
            .into_iter()
            .map(|row| {
                let cells: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
                format!("[{}]", cells.join(", "))
            })
            .collect();
        rows.join(" ")
    };
    let mut dot = String::from(
        "// backprop graph: 2-2-2 ReLU network, one sample, softmax cross-entropy (class 0).\n\
         // Each node: its value after forward, and dL/d(node) after backward.\n\
         digraph backward_pass {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for node in nodes {
        dot.push_str(&format!(
            "  {} [label=\"{}\\nvalue {}\\ngrad  {}\"{}];\n",
            node.name,
            node.name,
            numbers(&node.value),
            numbers(&node.grad),
            if node.name.starts_with(['W', 'b']) {
                ", style=rounded"
            } else {
                ""
            }
        ));
    }
    for (from, to, op) in [
        ("x", "z1", "x W1 + b1"),
        ("W1", "z1", ""),
        ("b1", "z1", ""),
        ("z1", "h", "relu"),
        ("h", "z2", "h W2 + b2"),
        ("W2", "z2", ""),
        ("b2", "z2", ""),
        ("z2", "L", "softmax + cross-entropy"),
    ] {
        dot.push_str(&format!("  {from} -> {to} [label=\"{op}\"];\n"));
    }
    dot.push_str("}\n");
    dot
}

/// Writes level `L`'s `graph.dot` (and `graph.svg` when Graphviz's `dot` is installed) into
/// `out`; returns
/// what was written, for the command to print.
///
/// # Errors
/// An unwritable output folder.
pub fn write_graph<L: Level<f64>>(out: &Path) -> Result<String, RunError> {
    create_folder(out)?;
    let nodes = tiny_network::<L>();
    let dot_path = out.join("graph.dot");
    let dot = to_dot(&nodes);
    write_atomically(&dot_path, |path| fs::write(path, &dot))?;
    let mut report = format!("wrote {}", dot_path.display());
    let svg_path = out.join("graph.svg");
    let rendered = Command::new("dot")
        .args(["-Tsvg", "-o"])
        .arg(&svg_path)
        .arg(&dot_path)
        .status();
    match rendered {
        Ok(status) if status.success() => report.push_str(&format!(" and {}", svg_path.display())),
        _ => report.push_str(" (install Graphviz for an SVG: dot -Tsvg graph.dot -o graph.svg)"),
    }
    Ok(report)
}
