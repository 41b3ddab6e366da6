//! `backprop graph`: the computation of a tiny network as a picture (SVG, and Graphviz DOT), each node with its
//! value and its gradient after one backward pass.
//!
//! The network is the worked example of `hints/intuition.md`: 2 inputs, 2 ReLU units, 2 classes,
//! one sample, softmax cross-entropy against class 0, with hand-picked weights. A learner checks
//! a hand computation against the numbers in the picture.

use std::path::Path;

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

/// The edges of the picture: (from, to, the operation written on the edge).
const EDGES: [(&str, &str, &str); 8] = [
    ("x", "z1", "x W1 + b1"),
    ("W1", "z1", ""),
    ("b1", "z1", ""),
    ("z1", "h", "relu"),
    ("h", "z2", "h W2 + b2"),
    ("W2", "z2", ""),
    ("b2", "z2", ""),
    ("z2", "L", "softmax + cross-entropy"),
];

/// A tensor's entries with 6 decimals, row by row: `[1.000000, 0.000000]`.
fn numbers(array: &Array2<f64>) -> String {
    let rows: Vec<String> = array
        .rows()
        .into_iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
            format!("[{}]", cells.join(", "))
        })
        .collect();
    rows.join(" ")
}

/// The Graphviz text of `nodes` (as [`tiny_network`] returns them).
pub fn to_dot(nodes: &[Node]) -> String {
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
    for (from, to, op) in EDGES {
        dot.push_str(&format!("  {from} -> {to} [label=\"{op}\"];\n"));
    }
    dot.push_str("}\n");
    dot
}

/// Where each node sits: (column, row) of a grid read left to right, inputs and parameters
/// before the tensors they feed.
fn grid_position(name: &str) -> (f64, f64) {
    match name {
        "W1" => (0.0, 0.0),
        "x" => (0.0, 1.0),
        "b1" => (0.0, 2.0),
        "z1" => (1.0, 1.0),
        "h" => (2.0, 1.0),
        "W2" => (2.5, 0.0),
        "b2" => (2.5, 2.0),
        "z2" => (3.5, 1.0),
        _ => (4.7, 1.0), // the loss (its edge label is the longest)
    }
}

/// Node box width, one text line's height, the grid's spacing and the margin, in pixels.
const BOX_WIDTH: f64 = 210.0;
const LINE: f64 = 16.0;
const SPACING: (f64, f64) = (330.0, 130.0);
const MARGIN: f64 = 20.0;

/// A node's text lines: its name, then its value and its gradient one matrix row per line.
fn node_lines(node: &Node) -> Vec<String> {
    let mut lines = vec![node.name.to_string()];
    for (label, array) in [("value", &node.value), ("grad ", &node.grad)] {
        for (row, values) in array.rows().into_iter().enumerate() {
            let cells: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
            let label = if row == 0 { label } else { "     " };
            lines.push(format!("{label} [{}]", cells.join(", ")));
        }
    }
    lines
}

/// A self-contained SVG of `nodes` (as [`tiny_network`] returns them): each node a box with its
/// name, value and gradient, each edge an arrow with its operation. No Graphviz needed.
pub fn to_svg(nodes: &[Node]) -> String {
    let height_of = |name: &str| {
        let node = nodes.iter().find(|node| node.name == name);
        LINE * node.map_or(1, |node| node_lines(node).len()) as f64 + 10.0
    };
    // A box's top-left corner: rows are centred on their grid line.
    let corner = |name: &str| {
        let (column, row) = grid_position(name);
        let centre = MARGIN + 40.0 + 50.0 + row * SPACING.1;
        (MARGIN + column * SPACING.0, centre - height_of(name) / 2.0)
    };
    let width = MARGIN * 2.0 + 4.7 * SPACING.0 + BOX_WIDTH;
    let height = MARGIN * 2.0 + 40.0 + 100.0 + 2.0 * SPACING.1;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"monospace\" font-size=\"11\">\n\
         <defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" \
         orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\"/></marker></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{MARGIN}\" y=\"24\" font-size=\"14\">2-2-2 ReLU network, one sample, softmax \
         cross-entropy (class 0): each node's value after forward, dL/d(node) after backward</text>\n"
    );
    for (from, to, op) in EDGES {
        let (from_x, from_y) = corner(from);
        let (to_x, to_y) = corner(to);
        let start = (from_x + BOX_WIDTH, from_y + height_of(from) / 2.0);
        svg.push_str(&svg_arrow(start, (to_x, to_y + height_of(to) / 2.0), op));
    }
    for node in nodes {
        let (x, y) = corner(node.name);
        let rounded = if node.name.starts_with(['W', 'b']) {
            10
        } else {
            0
        };
        svg.push_str(&format!(
            "<g><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_WIDTH}\" height=\"{}\" rx=\"{rounded}\" \
             fill=\"#f4f4ff\" stroke=\"black\"/>\n",
            height_of(node.name)
        ));
        for (index, line) in node_lines(node).iter().enumerate() {
            let weight = if index == 0 {
                " font-weight=\"bold\""
            } else {
                ""
            };
            let baseline = y + LINE * (index + 1) as f64;
            svg.push_str(&format!(
                "<text x=\"{}\" y=\"{baseline}\"{weight} xml:space=\"preserve\">{}</text>\n",
                x + 6.0,
                escape(line)
            ));
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

/// An arrow from `(x1, y1)` to `(x2, y2)` with `label` above its middle.
fn svg_arrow((x1, y1): (f64, f64), (x2, y2): (f64, f64), label: &str) -> String {
    format!(
        "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"black\" \
         marker-end=\"url(#arrow)\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        (x1 + x2) / 2.0,
        (y1 + y2) / 2.0 - 4.0,
        escape(label)
    )
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes level `L`'s `graph.dot` and `graph.svg` into `out`; returns what was written, for the
/// command to print.
///
/// # Errors
/// An unwritable output folder.
pub fn write_graph<L: Level<f64>>(out: &Path) -> Result<String, RunError> {
    create_folder(out)?;
    let nodes = tiny_network::<L>();
    let dot_path = out.join("graph.dot");
    let dot = to_dot(&nodes);
    write_atomically(&dot_path, dot.as_bytes())?;
    let svg_path = out.join("graph.svg");
    let svg = to_svg(&nodes);
    write_atomically(&svg_path, svg.as_bytes())?;
    Ok(format!(
        "wrote {} and {} (Graphviz draws the .dot its own way: dot -Tsvg graph.dot)",
        svg_path.display(),
        dot_path.display()
    ))
}
