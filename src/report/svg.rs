//! Standalone SVG figures for the HTML report: line charts, heat maps,
//! grouped bar charts, scatter plots, node grids and circuit graphs.
//!
//! Every function returns one self-contained `<svg>` string: no external
//! fonts, scripts, ids or URLs, so several figures can be inlined into one
//! HTML page. Hover information is given only through `<title>` children,
//! which browsers show as tooltips. Non-finite numbers never reach the
//! output; empty inputs give a valid figure with a "no data" note.

use std::fmt::Write;

const FONT: f64 = 12.0;
const SMALL: f64 = 11.0;
const TITLE_SIZE: f64 = 14.0;
/// Series with more valid points than this are downsampled (min/max per bucket).
const MAX_POINTS: usize = 2000;
/// Longest tick label (in characters) before it is shortened with an ellipsis.
const MAX_TICK_CHARS: usize = 20;
const GRID: &str = r##"stroke="#e6e6e6""##;
const AXIS: &str = r##"stroke="#333333""##;
const NAN_GREY: &str = "#b0b0b0";
const HALO: &str = r##"paint-order="stroke" stroke="#ffffff" stroke-width="3""##;

/// Okabe-Ito colour-blind-safe palette; yellow last as it is faint on white.
const OKABE_ITO: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];

type Rgb = (f64, f64, f64);
/// Sequential ramp, white to dark blue (ColorBrewer Blues).
const BLUES: [Rgb; 5] = [(247.0, 251.0, 255.0), (198.0, 219.0, 239.0), (107.0, 174.0, 214.0), (33.0, 113.0, 181.0), (8.0, 48.0, 107.0)];
/// Diverging ramp, blue - white - red (ColorBrewer RdBu reversed).
const RDBU: [Rgb; 5] = [(33.0, 102.0, 172.0), (146.0, 197.0, 222.0), (247.0, 247.0, 247.0), (244.0, 165.0, 130.0), (178.0, 24.0, 43.0)];

/// Title, axis labels and size shared by every figure.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    /// Figure title, shown on top and as the SVG `<title>`.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Logarithmic y axis (line, bar and scatter charts); non-positive values are skipped.
    pub log_y: bool,
    /// Width in pixels (at least 160; non-finite means default).
    pub width: f64,
    /// Height in pixels (at least 120; non-finite means default).
    pub height: f64,
    /// The most the y quantity can be (100 for a percentage): a bar chart's axis, padded above
    /// the tallest bar for its value label, stops here instead of running past it.
    pub y_max: Option<f64>,
}

impl ChartSpec {
    /// A linear-axis chart of the given title, axis labels and size in pixels.
    pub fn new(title: &str, x_label: &str, y_label: &str, width: f64, height: f64) -> Self {
        ChartSpec { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), width, height, ..Default::default() }
    }

    /// This chart with a percentage y axis, which ends at 100.
    pub fn percent(self) -> Self {
        ChartSpec { y_max: Some(100.0), ..self }
    }
}

impl Default for ChartSpec {
    fn default() -> Self {
        ChartSpec {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            log_y: false,
            width: 640.0,
            height: 360.0,
            y_max: None,
        }
    }
}

/// A named polyline for [`line_chart`]; non-finite points break the line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend and hover name.
    pub name: String,
    /// `(x, y)` points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A vertical dashed line with a label (e.g. a phase change) in [`line_chart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Marker {
    /// Position on the x axis.
    pub x: f64,
    /// Text shown next to the line and on hover.
    pub label: String,
}

/// Colour scale and cell text options for [`heatmap`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeatmapOpts {
    /// Value mapped to the low end of the colour scale (default: data minimum).
    pub min: Option<f64>,
    /// Value mapped to the high end of the colour scale (default: data maximum).
    pub max: Option<f64>,
    /// Blue-white-red scale, symmetric around 0 unless `min`/`max` are given.
    pub diverging: bool,
    /// Print each value inside its cell when it fits.
    pub cell_text: bool,
    /// Show values as percentages (the value times 100, with a `%` sign).
    pub value_fmt_pct: bool,
}

/// One point of a [`scatter`] plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScatterPoint {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Class index, selecting colour and legend entry.
    pub class: usize,
    /// Hover text.
    pub label: String,
}

/// One filled box of a [`node_grid`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GridCell {
    /// Column index into `columns`.
    pub col: usize,
    /// Row index into `rows`.
    pub row: usize,
    /// Text lines drawn inside the box (e.g. `["A3", "BA3"]`).
    pub lines: Vec<String>,
    /// Role selecting the colour and legend entry; `""` draws a neutral box.
    pub colour_key: String,
    /// Hover text (defaults to the joined lines when empty).
    pub tooltip: String,
}

/// One node (box) of a [`circuit_graph`], at a grid cell like a [`node_grid`] box.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphNode {
    /// Column index into `columns`.
    pub col: usize,
    /// Row index into `rows`.
    pub row: usize,
    /// Text drawn inside the box.
    pub label: String,
    /// Hover text (defaults to the label when empty).
    pub tooltip: String,
}

/// One arrow of a [`circuit_graph`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphEdge {
    /// Index of the sending node.
    pub from: usize,
    /// Index of the receiving node.
    pub to: usize,
    /// Size of the effect: the arrow's width is proportional to it (non-finite or negative
    /// values draw the thinnest arrow).
    pub weight: f64,
    /// Kind selecting the colour and legend entry (e.g. the receiver's input).
    pub colour_key: String,
    /// Short text at the arrow's middle (e.g. the corrupted column).
    pub label: String,
    /// Hover text (defaults to the label when empty).
    pub tooltip: String,
}

/// Escapes `& < > " '` and drops characters that XML 1.0 forbids.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Colour `i` of the Okabe-Ito colour-blind-safe palette (cycles after 8).
pub fn palette(i: usize) -> &'static str {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// Draws series as lines, with optional dashed markers and a legend.
pub fn line_chart(spec: &ChartSpec, series: &[Series], markers: &[Marker]) -> String {
    let segs: Vec<Vec<Vec<(f64, f64)>>> = series.iter().map(|s| segments(&s.points, spec.log_y)).collect();
    let Some((xr, yr)) = extent(segs.iter().flatten().flatten().copied()) else {
        return no_data(spec);
    };
    let mx = markers.iter().map(|m| m.x).filter(|x| x.is_finite());
    let xr = mx.fold(xr, |(lo, hi), x| (lo.min(x), hi.max(x)));
    let total: usize = segs.iter().flatten().map(Vec::len).sum();
    let bucket = if total > MAX_POINTS { total.div_ceil(MAX_POINTS / 2) } else { 1 };
    let mut d = Doc::new(spec);
    let names: Vec<String> = series.iter().enumerate().map(|(i, s)| or_default(&s.name, "series", i)).collect();
    let xax = linear_axis(xr.0, xr.1, d.x_tick_target(), false);
    let yax = value_axis(yr.0, yr.1, spec.log_y, 6, true);
    let (f, xs, ys) = xy_axes(&mut d, spec, &xax, &yax, legend_width(&names));
    for (i, segs) in segs.iter().enumerate() {
        let data: String = segs.iter().map(|s| path_data(&downsample(s, bucket), &xs, &ys)).collect();
        if !data.is_empty() {
            let attrs = format!(
                r#"class="series" d="{data}" fill="none" stroke="{}" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round""#,
                palette(i)
            );
            d.el("path", &attrs, Some(&names[i]));
        }
    }
    draw_markers(&mut d, &f, &xs, markers);
    let entries: Vec<(String, &str)> = names.into_iter().enumerate().map(|(i, n)| (n, palette(i))).collect();
    draw_legend(&mut d, f.right() + 12.0, f.y, &entries, Swatch::Line);
    d.finish()
}

/// Draws a matrix of values (`values[row][col]`, row 0 on top) as coloured
/// cells with a colour bar; missing or NaN cells are grey.
pub fn heatmap(spec: &ChartSpec, x_ticks: &[String], y_ticks: &[String], values: &[Vec<f64>], opts: &HeatmapOpts) -> String {
    let nr = y_ticks.len().max(values.len());
    let nc = x_ticks.len().max(values.iter().map(Vec::len).max().unwrap_or(0));
    if nr == 0 || nc == 0 {
        return no_data(spec);
    }
    let get = |r: usize, c: usize| values.get(r).and_then(|row| row.get(c)).copied().unwrap_or(f64::NAN);
    let (lo, hi) = colour_range(values.iter().flatten().copied(), opts);
    let xl = tick_names(x_ticks, nc);
    let yl = tick_names(y_ticks, nr);
    let bar_labels = [hi, (lo + hi) / 2.0, lo].map(|v| fmt_value(v, opts.value_fmt_pct));
    let mut d = Doc::new(spec);
    let left = 30.0 + max_w(&yl, SMALL);
    let right = 46.0 + max_w(&bar_labels, SMALL);
    let cw = (d.w - left - right).max(20.0) / nc as f64;
    let (rot, xh) = band_layout(&xl, cw);
    let f = Frame::new(&d, left, right, 40.0, 30.0 + xh);
    let ch = f.h / nr as f64;
    for (r, c) in (0..nr).flat_map(|r| (0..nc).map(move |c| (r, c))) {
        let cell = Frame { x: f.x + c as f64 * cw, y: f.y + r as f64 * ch, w: cw, h: ch };
        let tip = format!("{}, {}: {}", yl[r], xl[c], fmt_value(get(r, c), opts.value_fmt_pct));
        heat_cell(&mut d, &cell, get(r, c), (lo, hi), opts, &tip);
    }
    for (r, l) in yl.iter().enumerate() {
        d.text(f.x - 6.0, f.y + (r as f64 + 0.5) * ch + 4.0, SMALL, "end", "", l);
    }
    draw_band_labels(&mut d, f.x, cw, f.bottom(), &xl, rot);
    axis_titles(&mut d, &f, spec);
    colour_bar(&mut d, &f, (lo, hi), opts.diverging, &bar_labels);
    d.finish()
}

/// Draws grouped bars: one group per `(name, values)` pair, one value per
/// category, with value labels on top of the bars and a legend.
pub fn bar_chart(spec: &ChartSpec, categories: &[String], groups: &[(String, Vec<f64>)]) -> String {
    let ok = |v: f64| v.is_finite() && (!spec.log_y || v > 0.0);
    let vals = groups.iter().flat_map(|g| g.1.iter().copied()).filter(|&v| ok(v));
    let Some((lo, hi)) = range(vals) else {
        return no_data(spec);
    };
    let nc = categories.len().max(groups.iter().map(|g| g.1.len()).max().unwrap_or(0));
    let (lo, hi) = if spec.log_y { (lo, hi * 1.5) } else { (lo.min(0.0), hi.max(0.0)) };
    let pad = if spec.log_y || hi <= 0.0 { 0.0 } else { (hi - lo) * 0.08 };
    let top = spec.y_max.map_or(hi + pad, |m| (hi + pad).min(m).max(hi));
    let yax = value_axis(lo, top, spec.log_y, 6, true);
    let cats = tick_names(categories, nc);
    let names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    let show_legend = names.iter().any(|n| !n.is_empty());
    let mut d = Doc::new(spec);
    let left = 30.0 + yax.label_w();
    let right = 16.0 + if show_legend { legend_width(&names) } else { 0.0 };
    let band = (d.w - left - right).max(20.0) / nc as f64;
    let (rot, xh) = band_layout(&cats, band);
    let f = Frame::new(&d, left, right, 40.0, 30.0 + xh);
    let ys = yax.scale(f.bottom(), f.y);
    draw_y_axis(&mut d, &f, &yax, &ys);
    let base = ys.map(if spec.log_y { yax.lo } else { 0.0 });
    let bw = band * 0.8 / groups.len().max(1) as f64;
    for (j, (name, vs)) in groups.iter().enumerate() {
        for (i, &v) in vs.iter().enumerate().filter(|&(_, &v)| ok(v)) {
            let bar = Frame { x: f.x + band * (i as f64 + 0.1) + bw * j as f64, y: ys.map(v), w: bw, h: base };
            draw_bar(&mut d, &bar, palette(j), &format!("{name}, {}: {}", cats[i], fmt_num(v)), v);
        }
    }
    d.line(f.x, base, f.right(), base, AXIS);
    draw_band_labels(&mut d, f.x, band, f.bottom(), &cats, rot);
    axis_titles(&mut d, &f, spec);
    if show_legend {
        let entries: Vec<(String, &str)> = names.iter().enumerate().map(|(j, n)| (or_default(n, "group", j), palette(j))).collect();
        draw_legend(&mut d, f.right() + 12.0, f.y, &entries, Swatch::Box);
    }
    d.finish()
}

/// Draws points coloured by class with a class legend; hover shows each label.
pub fn scatter(spec: &ChartSpec, points: &[ScatterPoint], class_names: &[String]) -> String {
    let ok = |p: &&ScatterPoint| p.x.is_finite() && p.y.is_finite() && (!spec.log_y || p.y > 0.0);
    let pts: Vec<&ScatterPoint> = points.iter().filter(ok).collect();
    let Some((xr, yr)) = extent(pts.iter().map(|p| (p.x, p.y))) else {
        return no_data(spec);
    };
    let entries = class_entries(class_names, &pts);
    let names: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    let mut d = Doc::new(spec);
    let (x0, x1) = padded(xr);
    let xax = linear_axis(x0, x1, d.x_tick_target(), true);
    let yax = if spec.log_y { log_axis(yr.0, yr.1) } else { linear_axis(padded(yr).0, padded(yr).1, 6, true) };
    let (f, xs, ys) = xy_axes(&mut d, spec, &xax, &yax, legend_width(&names));
    for p in &pts {
        let tip = if p.label.is_empty() { format!("({}, {})", fmt_num(p.x), fmt_num(p.y)) } else { p.label.clone() };
        let attrs = format!(
            r##"class="pt" cx="{}" cy="{}" r="4" fill="{}" fill-opacity="0.8" stroke="#ffffff" stroke-width="0.5""##,
            n(xs.map(p.x)),
            n(ys.map(p.y)),
            palette(p.class)
        );
        d.el("circle", &attrs, Some(&tip));
    }
    draw_legend(&mut d, f.right() + 12.0, f.y, &entries, Swatch::Dot);
    d.finish()
}

/// Draws a grid of boxes (columns x rows); filled cells are tinted by role
/// with a role legend, empty positions get a light grey outline.
pub fn node_grid(spec: &ChartSpec, columns: &[String], rows: &[String], cells: &[GridCell]) -> String {
    let (nc, nr) = (columns.len(), rows.len());
    if nc == 0 || nr == 0 {
        return no_data(spec);
    }
    let cells: Vec<&GridCell> = cells.iter().filter(|c| c.col < nc && c.row < nr).collect();
    let mut roles: Vec<&str> = Vec::new();
    for c in &cells {
        if !c.colour_key.is_empty() && !roles.contains(&c.colour_key.as_str()) {
            roles.push(&c.colour_key);
        }
    }
    let names: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let mut d = Doc::new(spec);
    let left = 30.0 + max_w(rows, SMALL);
    let f = Frame::new(&d, left, 16.0 + legend_width(&names), 58.0, 34.0);
    let (cw, rh) = (f.w / nc as f64, f.h / nr as f64);
    let box_at = |c: usize, r: usize| Frame { x: f.x + c as f64 * cw + 2.0, y: f.y + r as f64 * rh + 2.0, w: cw - 4.0, h: rh - 4.0 };
    for (c, name) in columns.iter().enumerate() {
        let fit = ((cw / (SMALL * 0.6)) as usize).max(2);
        d.text(f.x + (c as f64 + 0.5) * cw, f.y - 8.0, SMALL, "middle", "", &clip(name, fit));
    }
    for (r, name) in rows.iter().enumerate() {
        d.text(f.x - 6.0, f.y + (r as f64 + 0.5) * rh + 4.0, SMALL, "end", "", name);
    }
    for (r, c) in (0..nr).flat_map(|r| (0..nc).map(move |c| (r, c))) {
        if !cells.iter().any(|g| g.col == c && g.row == r) {
            let b = box_at(c, r);
            d.el("rect", &format!(r##"class="empty" {} fill="none" stroke="#d0d0d0""##, b.rect_attrs()), None);
        }
    }
    for g in &cells {
        let colour = roles.iter().position(|r| *r == g.colour_key).map(palette);
        grid_box(&mut d, &box_at(g.col, g.row), g, colour);
    }
    axis_titles(&mut d, &f, spec);
    let entries: Vec<(String, &str)> = names.into_iter().enumerate().map(|(i, n)| (n, palette(i))).collect();
    draw_legend(&mut d, f.right() + 12.0, f.y, &entries, Swatch::Tint);
    d.finish()
}

/// Draws nodes as boxes on a grid (columns x rows, as [`node_grid`]) and edges as curved
/// arrows from box to box, their width proportional to `weight` and coloured by kind with a
/// legend; arrows between the same boxes bow apart. Edges naming a missing node are skipped.
pub fn circuit_graph(spec: &ChartSpec, columns: &[String], rows: &[String], nodes: &[GraphNode], edges: &[GraphEdge]) -> String {
    let (nc, nr) = (columns.len(), rows.len());
    if nc == 0 || nr == 0 || nodes.is_empty() {
        return no_data(spec);
    }
    let edges: Vec<&GraphEdge> = edges.iter().filter(|e| e.from < nodes.len() && e.to < nodes.len() && e.from != e.to).collect();
    let mut kinds: Vec<String> = Vec::new();
    for e in &edges {
        if !kinds.contains(&e.colour_key) {
            kinds.push(e.colour_key.clone());
        }
    }
    let mut d = Doc::new(spec);
    let f = Frame::new(&d, 30.0 + max_w(rows, SMALL), 16.0 + legend_width(&kinds), 58.0, 34.0);
    let (cw, rh) = (f.w / nc as f64, f.h / nr as f64);
    let (bw, bh) = ((cw * 0.62).min(90.0), (rh * 0.42).min(30.0));
    let centre = |g: &GraphNode| (f.x + (g.col.min(nc - 1) as f64 + 0.5) * cw, f.y + (g.row.min(nr - 1) as f64 + 0.5) * rh);
    for (c, name) in columns.iter().enumerate() {
        let fit = ((cw / (SMALL * 0.6)) as usize).max(2);
        d.text(f.x + (c as f64 + 0.5) * cw, f.y - 8.0, SMALL, "middle", "", &clip(name, fit));
    }
    for (r, name) in rows.iter().enumerate() {
        d.text(f.x - 6.0, f.y + (r as f64 + 0.5) * rh + 4.0, SMALL, "end", "", name);
    }
    for g in nodes {
        let (x, y) = centre(g);
        let b = Frame { x: x - bw / 2.0, y: y - bh / 2.0, w: bw, h: bh };
        let tip = if g.tooltip.is_empty() { g.label.clone() } else { g.tooltip.clone() };
        d.el("rect", &format!(r##"class="node" {} fill="#f2f2f2" stroke="#999999""##, b.rect_attrs()), Some(&tip));
        d.text(x, y + 4.0, SMALL, "middle", r#"pointer-events="none""#, &clip(&g.label, ((bw / (SMALL * 0.6)) as usize).max(2)));
    }
    let max = edges.iter().map(|e| e.weight).filter(|w| w.is_finite()).fold(0.0f64, f64::max);
    let mut drawn: Vec<(usize, usize)> = Vec::new();
    for e in &edges {
        let bend = drawn.iter().filter(|&&p| p == (e.from, e.to)).count();
        drawn.push((e.from, e.to));
        let colour = palette(kinds.iter().position(|k| *k == e.colour_key).unwrap_or(0));
        let width = if max > 0.0 && e.weight.is_finite() { 1.5 + 6.0 * (e.weight.max(0.0) / max) } else { 1.5 };
        arrow(&mut d, (centre(&nodes[e.from]), centre(&nodes[e.to])), (bw, bh, rh), bend, (colour, width), e);
    }
    axis_titles(&mut d, &f, spec);
    let entries: Vec<(String, &str)> = kinds.into_iter().enumerate().map(|(i, k)| (k, palette(i))).collect();
    draw_legend(&mut d, f.right() + 12.0, f.y, &entries, Swatch::Line);
    d.finish()
}

/// One curved arrow of a [`circuit_graph`] from box centre `a` to box centre `b` (boxes of size
/// `bw x bh`, rows `rh` apart), bowed sideways by `bend` steps, in `colour` and `width`, with a
/// filled head, a label at its middle and a tooltip.
fn arrow(
    d: &mut Doc,
    (a, b): ((f64, f64), (f64, f64)),
    (bw, bh, rh): (f64, f64, f64),
    bend: usize,
    (colour, width): (&str, f64),
    e: &GraphEdge,
) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-6);
    let (ux, uy) = (dx / len, dy / len);
    // Leave each box where the straight line crosses its border.
    let exit = |u: f64, v: f64| (bw / 2.0 / u.abs().max(1e-6)).min(bh / 2.0 / v.abs().max(1e-6));
    let t = exit(ux, uy);
    let (p0, p1) = ((a.0 + ux * t, a.1 + uy * t), (b.0 - ux * t, b.1 - uy * t));
    let side = if bend.is_multiple_of(2) { 1.0 } else { -1.0 };
    // An arrow down its own column past other boxes bows out beside them.
    let past = if ux.abs() < 0.2 && len > 1.5 * rh { 1.2 * bw } else { 0.0 };
    let bow = (18.0 + 16.0 * bend as f64 + past) * side;
    let c = ((p0.0 + p1.0) / 2.0 - uy * bow, (p0.1 + p1.1) / 2.0 + ux * bow);
    // The head points along the curve's last tangent (control point to end).
    let (tx, ty) = (p1.0 - c.0, p1.1 - c.1);
    let tl = (tx * tx + ty * ty).sqrt().max(1e-6);
    let (hx, hy) = (tx / tl, ty / tl);
    let head = 6.0 + width;
    let base = (p1.0 - hx * head, p1.1 - hy * head);
    let tip = if e.tooltip.is_empty() { e.label.clone() } else { e.tooltip.clone() };
    let path = format!(
        r#"class="edge" d="M{} {} Q{} {} {} {}" fill="none" stroke="{colour}" stroke-width="{}" stroke-opacity="0.85""#,
        n(p0.0),
        n(p0.1),
        n(c.0),
        n(c.1),
        n(base.0),
        n(base.1),
        n(width)
    );
    d.el("path", &path, Some(&tip));
    let (wx, wy) = (-hy * head * 0.5, hx * head * 0.5);
    let points = format!("{},{} {},{} {},{}", n(p1.0), n(p1.1), n(base.0 + wx), n(base.1 + wy), n(base.0 - wx), n(base.1 - wy));
    d.el("polygon", &format!(r#"class="head" points="{points}" fill="{colour}""#), None);
    // The label sits on the curve's middle (a quadratic's point at t = 1/2).
    let (mx, my) = ((p0.0 + 2.0 * c.0 + p1.0) / 4.0, (p0.1 + 2.0 * c.1 + p1.1) / 4.0);
    if !e.label.is_empty() {
        d.text(mx, my + 4.0, SMALL, "middle", &format!(r#"class="edge-label" {HALO}"#), &clip(&e.label, 12));
    }
}

// ---------------------------------------------------------------- document

/// An SVG document being written.
struct Doc {
    s: String,
    w: f64,
    h: f64,
}

impl Doc {
    /// Opens the `<svg>` root with title, white background and heading.
    fn new(spec: &ChartSpec) -> Doc {
        let w = if spec.width.is_finite() { spec.width.clamp(160.0, 10_000.0) } else { 640.0 };
        let h = if spec.height.is_finite() { spec.height.clamp(120.0, 10_000.0) } else { 360.0 };
        let title = if spec.title.trim().is_empty() { "figure" } else { spec.title.as_str() };
        let mut s = String::with_capacity(8192);
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="{FONT}"><title>{t}</title><rect class="bg" x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>"##,
            w = n(w),
            h = n(h),
            t = escape_xml(title)
        );
        let mut d = Doc { s, w, h };
        d.text(w / 2.0, 22.0, TITLE_SIZE, "middle", r#"font-weight="bold""#, title);
        d
    }

    /// Writes `<tag attrs/>`, or with a `<title>` child when `tip` is given.
    fn el(&mut self, tag: &str, attrs: &str, tip: Option<&str>) {
        match tip {
            Some(t) => {
                let _ = write!(self.s, "<{tag} {attrs}><title>{}</title></{tag}>", escape_xml(t));
            }
            None => {
                let _ = write!(self.s, "<{tag} {attrs}/>");
            }
        }
    }

    /// Writes a text element; `extra` holds further attributes.
    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, extra: &str, content: &str) {
        let _ = write!(
            self.s,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{anchor}" {extra}>{}</text>"#,
            n(x),
            n(y),
            n(size),
            escape_xml(content)
        );
    }

    /// Writes a plain line.
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, attrs: &str) {
        let a = format!(r#"x1="{}" y1="{}" x2="{}" y2="{}" {attrs}"#, n(x1), n(y1), n(x2), n(y2));
        self.el("line", &a, None);
    }

    /// Target number of x ticks for the figure width.
    fn x_tick_target(&self) -> usize {
        ((self.w - 160.0) / 90.0).max(2.0) as usize
    }

    /// Closes the root element and returns the SVG text.
    fn finish(mut self) -> String {
        self.s.push_str("</svg>");
        self.s
    }
}

/// A valid figure that only says "no data".
fn no_data(spec: &ChartSpec) -> String {
    let mut d = Doc::new(spec);
    let (x, y) = (d.w / 2.0, d.h / 2.0);
    d.text(x, y, FONT, "middle", r##"class="nodata" fill="#666666""##, "no data");
    d.finish()
}

/// A rectangle in pixels (plot area, cell, bar or box).
#[derive(Clone, Copy, Debug)]
struct Frame {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Frame {
    /// The plot area left after the given margins.
    fn new(d: &Doc, left: f64, right: f64, top: f64, bottom: f64) -> Frame {
        Frame { x: left, y: top, w: (d.w - left - right).max(20.0), h: (d.h - top - bottom).max(20.0) }
    }
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
    /// `x y width height` attributes.
    fn rect_attrs(&self) -> String {
        format!(r#"x="{}" y="{}" width="{}" height="{}""#, n(self.x), n(self.y), n(self.w.max(0.0)), n(self.h.max(0.0)))
    }
}

// ------------------------------------------------------------ numbers/text

/// Formats a coordinate with at most 2 decimals; never NaN or inf.
fn n(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Formats a data value with about 3 significant digits.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let dec = (2 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(format!("{v:.dec$}"))
}

/// Formats a value for tooltips and cells, optionally as a percentage.
fn fmt_value(v: f64, pct: bool) -> String {
    match (v.is_finite(), pct) {
        (false, _) => "n/a".into(),
        (true, true) => format!("{:.1}%", v * 100.0),
        (true, false) => fmt_num(v),
    }
}

/// Formats a linear tick with as many decimals as the step needs.
fn fmt_tick(v: f64, step: f64) -> String {
    if v.abs() >= 1e5 || step < 1e-4 {
        return if v == 0.0 { "0".into() } else { trim_zeros_exp(format!("{v:.2e}")) };
    }
    let dec = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    let s = format!("{v:.dec$}");
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        "0".into()
    } else {
        s
    }
}

/// Label of the power-of-ten tick `10^e`.
fn pow10_label(e: i32) -> String {
    match e {
        0..=4 => format!("1{}", "0".repeat(e as usize)),
        -3..=-1 => format!("0.{}1", "0".repeat((-e - 1) as usize)),
        _ => format!("1e{e}"),
    }
}

/// Removes trailing zeros after a decimal point.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Removes trailing zeros from the mantissa of `1.50e5`-style numbers.
fn trim_zeros_exp(s: String) -> String {
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", trim_zeros(m.to_string())),
        None => s,
    }
}

/// Approximate rendered width of a text in pixels.
fn text_w(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// Widest of several labels, in pixels.
fn max_w(labels: &[String], size: f64) -> f64 {
    labels.iter().map(|l| text_w(l, size)).fold(0.0, f64::max)
}

/// Shortens a label to `max` characters with an ellipsis in the middle,
/// keeping both ends (which usually tell similar labels apart).
fn clip(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let tail = max.saturating_sub(1) / 2;
    let head = max.saturating_sub(1) - tail;
    let (a, b) = (&chars[..head], &chars[chars.len() - tail..]);
    a.iter().chain(['…'].iter()).chain(b).collect()
}

/// `count` tick names, clipped; missing ones are empty.
fn tick_names(ticks: &[String], count: usize) -> Vec<String> {
    (0..count).map(|i| ticks.get(i).map(|t| clip(t, MAX_TICK_CHARS)).unwrap_or_default()).collect()
}

/// The name, or `"{what} {i}"` when it is empty.
fn or_default(name: &str, what: &str, i: usize) -> String {
    if name.is_empty() {
        format!("{what} {i}")
    } else {
        name.to_string()
    }
}

// ------------------------------------------------------------------ scales

/// Maps data values to pixels (linear or log10).
#[derive(Clone, Copy, Debug)]
struct Scale {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
    log: bool,
}

impl Scale {
    /// Pixel position of `v`.
    fn map(&self, v: f64) -> f64 {
        let f = |x: f64| {
            if self.log {
                x.max(f64::MIN_POSITIVE).log10()
            } else {
                x
            }
        };
        let (lo, hi) = (f(self.lo), f(self.hi));
        let t = if hi > lo { (f(v) - lo) / (hi - lo) } else { 0.5 };
        self.a + t * (self.b - self.a)
    }
}

/// A numeric axis: domain, tick positions and tick labels.
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
    log: bool,
}

impl Axis {
    /// Scale from this axis' domain onto pixels `a..b`.
    fn scale(&self, a: f64, b: f64) -> Scale {
        Scale { lo: self.lo, hi: self.hi, a, b, log: self.log }
    }
    /// Widest tick label in pixels.
    fn label_w(&self) -> f64 {
        max_w(&self.labels, SMALL)
    }
}

/// Log axis when `log`, else a linear axis extended to nice bounds.
fn value_axis(lo: f64, hi: f64, log: bool, target: usize, extend: bool) -> Axis {
    if log {
        log_axis(lo, hi)
    } else {
        linear_axis(lo, hi, target, extend)
    }
}

/// Makes an empty or infinite range usable.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = (lo.max(-1e300), hi.min(1e300));
    if hi > lo {
        return (lo, hi);
    }
    let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - d, hi + d)
}

/// Range padded by 5% on both sides (for scatter plots).
fn padded((lo, hi): (f64, f64)) -> (f64, f64) {
    let (lo, hi) = widen(lo, hi);
    let p = (hi - lo) * 0.05;
    (lo - p, hi + p)
}

/// A 1-2-5 step giving about `target` intervals over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    let raw = range / target.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let m = [1.0, 2.0, 5.0, 10.0].into_iter().find(|m| m * mag >= raw * (1.0 - 1e-9)).unwrap_or(10.0);
    m * mag
}

/// Linear axis with 1-2-5 ticks; `extend` grows the domain to whole steps.
fn linear_axis(lo: f64, hi: f64, target: usize, extend: bool) -> Axis {
    let (lo, hi) = widen(lo, hi);
    let step = nice_step(hi - lo, target as f64);
    let (first, last) = ((lo / step).floor(), (hi / step).ceil());
    let (lo, hi) = if extend { (first * step, last * step) } else { (lo, hi) };
    let eps = step * 1e-9;
    let count = ((last - first) as usize).min(200);
    let ticks: Vec<f64> = (0..=count).map(|i| (first + i as f64) * step).filter(|t| *t >= lo - eps && *t <= hi + eps).collect();
    let labels = ticks.iter().map(|&t| fmt_tick(t, step)).collect();
    Axis { lo, hi, ticks, labels, log: false }
}

/// Log10 axis over whole decades with ticks at powers of ten (at most ~9).
fn log_axis(lo: f64, hi: f64) -> Axis {
    let e0 = (lo.log10().floor() as i32).clamp(-300, 299);
    let e1 = (hi.log10().ceil() as i32).clamp(e0 + 1, 300);
    let k = (((e1 - e0) as f64 / 8.0).ceil() as i32).max(1);
    let exps: Vec<i32> = (e0..=e1).step_by(k as usize).collect();
    Axis {
        lo: 10f64.powi(e0),
        hi: 10f64.powi(e1),
        ticks: exps.iter().map(|&e| 10f64.powi(e)).collect(),
        labels: exps.iter().map(|&e| pow10_label(e)).collect(),
        log: true,
    }
}

/// Min and max of the values, if any.
fn range(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// x and y ranges of the points, if any.
fn extent(pts: impl Iterator<Item = (f64, f64)>) -> Option<((f64, f64), (f64, f64))> {
    pts.fold(None, |acc, (x, y)| match acc {
        None => Some(((x, x), (y, y))),
        Some(((x0, x1), (y0, y1))) => Some(((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y)))),
    })
}

// -------------------------------------------------------------- axes/legend

/// Draws both numeric axes around the plot area left after the tick labels
/// and a legend of `legend_w` pixels; returns the area and its scales.
fn xy_axes(d: &mut Doc, spec: &ChartSpec, xax: &Axis, yax: &Axis, legend_w: f64) -> (Frame, Scale, Scale) {
    let f = Frame::new(d, 30.0 + yax.label_w(), 16.0 + legend_w, 40.0, 52.0);
    let (xs, ys) = (xax.scale(f.x, f.right()), yax.scale(f.bottom(), f.y));
    draw_y_axis(d, &f, yax, &ys);
    for (t, l) in xax.ticks.iter().zip(&xax.labels) {
        let x = xs.map(*t);
        d.line(x, f.y, x, f.bottom(), GRID);
        d.line(x, f.bottom(), x, f.bottom() + 4.0, AXIS);
        d.text(x, f.bottom() + 16.0, SMALL, "middle", "", l);
    }
    d.line(f.x, f.bottom(), f.right(), f.bottom(), AXIS);
    axis_titles(d, &f, spec);
    (f, xs, ys)
}

/// Draws the y axis line, grid lines, ticks and tick labels.
fn draw_y_axis(d: &mut Doc, f: &Frame, ax: &Axis, ys: &Scale) {
    for (t, l) in ax.ticks.iter().zip(&ax.labels) {
        let y = ys.map(*t);
        d.line(f.x, y, f.right(), y, GRID);
        d.line(f.x - 4.0, y, f.x, y, AXIS);
        d.text(f.x - 7.0, y + 4.0, SMALL, "end", "", l);
    }
    d.line(f.x, f.y, f.x, f.bottom(), AXIS);
}

/// Writes the x label under the figure and the rotated y label on the left.
fn axis_titles(d: &mut Doc, f: &Frame, spec: &ChartSpec) {
    if !spec.x_label.is_empty() {
        let y = d.h - 10.0;
        d.text(f.x + f.w / 2.0, y, FONT, "middle", r#"class="xlabel""#, &spec.x_label);
    }
    if !spec.y_label.is_empty() {
        let (x, y) = (16.0, f.y + f.h / 2.0);
        let rot = format!(r#"class="ylabel" transform="rotate(-90 {} {})""#, n(x), n(y));
        d.text(x, y, FONT, "middle", &rot, &spec.y_label);
    }
}

/// Whether category labels must be rotated to fit `band_w`, and the height they need.
fn band_layout(labels: &[String], band_w: f64) -> (bool, f64) {
    let w = max_w(labels, SMALL);
    if w <= band_w - 4.0 {
        (false, 16.0)
    } else {
        (true, w * 0.71 + 14.0)
    }
}

/// Writes category labels centred under bands starting at `x0`.
fn draw_band_labels(d: &mut Doc, x0: f64, band_w: f64, y: f64, labels: &[String], rotate: bool) {
    let every = if rotate { ((SMALL + 2.0) / band_w).ceil().max(1.0) as usize } else { 1 };
    for (i, l) in labels.iter().enumerate().step_by(every) {
        let x = x0 + (i as f64 + 0.5) * band_w;
        if rotate {
            let (x, y) = (x + 3.0, y + 10.0);
            d.text(x, y, SMALL, "end", &format!(r#"transform="rotate(-45 {} {})""#, n(x), n(y)), l);
        } else {
            d.text(x, y + 15.0, SMALL, "middle", "", l);
        }
    }
}

/// How a legend entry's colour is shown.
#[derive(Clone, Copy, PartialEq)]
enum Swatch {
    Line,
    Box,
    Dot,
    Tint,
}

/// Pixels needed for a legend of these names (0 when empty).
fn legend_width(names: &[String]) -> f64 {
    if names.is_empty() {
        0.0
    } else {
        max_w(names, SMALL).min(160.0) + 30.0
    }
}

/// Draws a vertical legend with its top-left corner at `(x, y)`.
fn draw_legend(d: &mut Doc, x: f64, y: f64, entries: &[(String, &str)], swatch: Swatch) {
    for (i, (name, colour)) in entries.iter().enumerate() {
        let cy = y + 8.0 + i as f64 * 17.0;
        let key = Frame { x, y: cy - 5.0, w: 14.0, h: 10.0 };
        match swatch {
            Swatch::Line => d.line(x, cy, x + 16.0, cy, &format!(r#"stroke="{colour}" stroke-width="2.5""#)),
            Swatch::Box => d.el("rect", &format!(r#"class="key" {} fill="{colour}""#, key.rect_attrs()), None),
            Swatch::Tint => d.el("rect", &tint_attrs("key", &key, colour), None),
            Swatch::Dot => {
                let a = format!(r#"class="key" cx="{}" cy="{}" r="4.5" fill="{colour}""#, n(x + 7.0), n(cy));
                d.el("circle", &a, None)
            }
        }
        d.text(x + 22.0, cy + 4.0, SMALL, "start", r#"class="legend""#, &clip(name, 24));
    }
}

// ------------------------------------------------------------ figure parts

/// Splits points into runs of drawable points (finite; positive y on log scales).
fn segments(points: &[(f64, f64)], log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    points.split(|p| !ok(p)).filter(|s| !s.is_empty()).map(<[_]>::to_vec).collect()
}

/// Keeps the min and max point of each bucket of `bucket` points, in order.
fn downsample(pts: &[(f64, f64)], bucket: usize) -> Vec<(f64, f64)> {
    if bucket <= 1 {
        return pts.to_vec();
    }
    let mut out = Vec::with_capacity(2 * pts.len() / bucket + 2);
    for chunk in pts.chunks(bucket) {
        let by_y = |a: &&(f64, f64), b: &&(f64, f64)| a.1.total_cmp(&b.1);
        let lo = chunk.iter().enumerate().min_by(|a, b| by_y(&a.1, &b.1)).map_or(0, |p| p.0);
        let hi = chunk.iter().enumerate().max_by(|a, b| by_y(&a.1, &b.1)).map_or(0, |p| p.0);
        out.push(chunk[lo.min(hi)]);
        if lo != hi {
            out.push(chunk[lo.max(hi)]);
        }
    }
    out
}

/// SVG path commands for one run of points.
fn path_data(pts: &[(f64, f64)], xs: &Scale, ys: &Scale) -> String {
    let mut s = String::new();
    for (i, &(x, y)) in pts.iter().enumerate() {
        let _ = write!(s, "{}{},{}", if i == 0 { "M" } else { "L" }, n(xs.map(x)), n(ys.map(y)));
    }
    if pts.len() == 1 {
        s.push_str("l0,0"); // a dot thanks to the round line cap
    }
    s
}

/// Draws dashed vertical marker lines with staggered labels.
fn draw_markers(d: &mut Doc, f: &Frame, xs: &Scale, markers: &[Marker]) {
    for (i, m) in markers.iter().filter(|m| m.x.is_finite()).enumerate() {
        let x = xs.map(m.x);
        let a = format!(
            r##"class="marker" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#555555" stroke-width="1.2" stroke-dasharray="5 4""##,
            n(f.y),
            n(f.bottom()),
            x = n(x)
        );
        d.el("line", &a, Some(&m.label));
        let y = f.y + 12.0 + (i % 3) as f64 * 13.0;
        let fits = x + 3.0 + text_w(&m.label, SMALL) <= f.right();
        let (tx, anchor) = if fits { (x + 3.0, "start") } else { (x - 3.0, "end") };
        d.text(tx, y, SMALL, anchor, &format!(r##"fill="#333333" {HALO}"##), &m.label);
    }
}

/// Colour-scale bounds: explicit options, else the data range (symmetric if diverging).
fn colour_range(vals: impl Iterator<Item = f64>, opts: &HeatmapOpts) -> (f64, f64) {
    let (lo, hi) = range(vals.filter(|v| v.is_finite())).unwrap_or((0.0, 1.0));
    let (lo, hi) = if opts.diverging {
        let m = lo.abs().max(hi.abs());
        (-m, m)
    } else {
        (lo, hi)
    };
    let lo = opts.min.filter(|v| v.is_finite()).unwrap_or(lo);
    let hi = opts.max.filter(|v| v.is_finite()).unwrap_or(hi);
    if hi > lo {
        (lo, hi)
    } else {
        widen(lo, hi)
    }
}

/// Piecewise-linear interpolation of colour stops at `t` in 0..=1.
fn ramp(stops: &[Rgb], t: f64) -> Rgb {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (stops.len() - 1) as f64;
    let i = (pos.floor() as usize).min(stops.len() - 2);
    let (a, b, u) = (stops[i], stops[i + 1], pos - i as f64);
    (a.0 + (b.0 - a.0) * u, a.1 + (b.1 - a.1) * u, a.2 + (b.2 - a.2) * u)
}

/// Colour of `v` on the heat-map scale `lo..hi`.
fn heat_colour(v: f64, (lo, hi): (f64, f64), diverging: bool) -> Rgb {
    ramp(if diverging { &RDBU } else { &BLUES }, (v - lo) / (hi - lo))
}

/// `#rrggbb` text of a colour.
fn hex(c: Rgb) -> String {
    let b = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", b(c.0), b(c.1), b(c.2))
}

/// Black or white, whichever reads better on `c`.
fn text_on(c: Rgb) -> &'static str {
    if 0.299 * c.0 + 0.587 * c.1 + 0.114 * c.2 < 140.0 {
        "#ffffff"
    } else {
        "#000000"
    }
}

/// Draws one heat-map cell with tooltip and optional value text.
fn heat_cell(d: &mut Doc, cell: &Frame, v: f64, lim: (f64, f64), opts: &HeatmapOpts, tip: &str) {
    let c = if v.is_finite() { heat_colour(v, lim, opts.diverging) } else { (176.0, 176.0, 176.0) };
    let fill = if v.is_finite() { hex(c) } else { NAN_GREY.to_string() };
    let a = format!(r##"class="cell" {} fill="{fill}" stroke="#ffffff" stroke-width="0.5""##, cell.rect_attrs());
    d.el("rect", &a, Some(tip));
    let label = fmt_value(v, opts.value_fmt_pct);
    if opts.cell_text && v.is_finite() && text_w(&label, SMALL) <= cell.w - 4.0 && cell.h >= SMALL + 2.0 {
        let extra = format!(r#"fill="{}" pointer-events="none""#, text_on(c));
        d.text(cell.x + cell.w / 2.0, cell.y + cell.h / 2.0 + 4.0, SMALL, "middle", &extra, &label);
    }
}

/// Draws a vertical colour bar right of the plot with max, middle and min labels.
fn colour_bar(d: &mut Doc, f: &Frame, lim: (f64, f64), diverging: bool, labels: &[String; 3]) {
    const STEPS: usize = 40;
    let (x, h) = (f.right() + 16.0, f.h / STEPS as f64);
    for i in 0..STEPS {
        let t = (i as f64 + 0.5) / STEPS as f64;
        let c = hex(heat_colour(lim.0 + t * (lim.1 - lim.0), lim, diverging));
        let r = Frame { x, y: f.bottom() - (i + 1) as f64 * h, w: 14.0, h: h + 0.3 };
        d.el("rect", &format!(r#"class="cbar" {} fill="{c}""#, r.rect_attrs()), None);
    }
    let outline = Frame { x, y: f.y, w: 14.0, h: f.h };
    d.el("rect", &format!(r##"{} fill="none" stroke="#999999""##, outline.rect_attrs()), None);
    for (i, l) in labels.iter().enumerate() {
        d.text(x + 19.0, f.y + f.h * i as f64 / 2.0 + 4.0, SMALL, "start", r#"class="cbar-label""#, l);
    }
}

/// Draws one bar (from `bar.y` to the baseline `bar.h`) with tooltip and,
/// when it fits, a value label (narrow bars keep the value in the tooltip).
fn draw_bar(d: &mut Doc, bar: &Frame, colour: &str, tip: &str, v: f64) {
    let (top, bottom) = (bar.y.min(bar.h), bar.y.max(bar.h));
    let r = Frame { x: bar.x + 0.5, y: top, w: bar.w - 1.0, h: bottom - top };
    d.el("rect", &format!(r#"class="bar" {} fill="{colour}""#, r.rect_attrs()), Some(tip));
    let label = fmt_num(v);
    if text_w(&label, SMALL) <= bar.w + 4.0 {
        let y = if bar.y <= bar.h { top - 4.0 } else { bottom + 12.0 };
        d.text(bar.x + bar.w / 2.0, y, SMALL, "middle", r#"class="value""#, &label);
    }
}

/// Legend entries for the named classes plus any other class in use.
fn class_entries(class_names: &[String], pts: &[&ScatterPoint]) -> Vec<(String, &'static str)> {
    let mut extra: Vec<usize> = pts.iter().map(|p| p.class).filter(|&c| c >= class_names.len()).collect();
    extra.sort_unstable();
    extra.dedup();
    let named = class_names.iter().enumerate().map(|(i, s)| (or_default(s, "class", i), palette(i)));
    named.chain(extra.into_iter().map(|c| (format!("class {c}"), palette(c)))).collect()
}

/// Attributes of a box tinted with a role colour.
fn tint_attrs(class: &str, b: &Frame, colour: &str) -> String {
    format!(r#"class="{class}" {} fill="{colour}" fill-opacity="0.3" stroke="{colour}" stroke-width="1.5""#, b.rect_attrs())
}

/// Draws one filled node-grid box with its text lines and tooltip.
fn grid_box(d: &mut Doc, b: &Frame, g: &GridCell, colour: Option<&str>) {
    let attrs = match colour {
        Some(c) => tint_attrs("node", b, c),
        None => format!(r##"class="node" {} fill="#f2f2f2" stroke="#999999""##, b.rect_attrs()),
    };
    let tip = if g.tooltip.is_empty() { g.lines.join(" ") } else { g.tooltip.clone() };
    d.el("rect", &attrs, Some(&tip));
    let fit = ((b.w / (SMALL * 0.6)) as usize).max(2);
    let y0 = b.y + b.h / 2.0 - (g.lines.len() as f64 - 1.0) * 6.5 + 4.0;
    for (i, l) in g.lines.iter().enumerate() {
        let y = y0 + i as f64 * 13.0;
        d.text(b.x + b.w / 2.0, y, SMALL, "middle", r#"pointer-events="none""#, &clip(l, fit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVG_NS: &str = "http://www.w3.org/2000/svg";

    /// Parses `svg`, checking one `<svg>` root with size, a leading `<title>`,
    /// no forbidden output and readable font sizes.
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.tag_name().namespace(), Some(SVG_NS));
        for a in ["viewBox", "width", "height"] {
            assert!(root.attribute(a).is_some(), "missing {a}");
        }
        let first = root.children().find(|c| c.is_element()).unwrap();
        assert_eq!(first.tag_name().name(), "title");
        for bad in ["NaN", "inf", "<script", "href", "url(", "@import"] {
            assert!(!svg.contains(bad), "output contains {bad}");
        }
        assert_eq!(svg.matches("http").count(), 1, "only the xmlns URL is allowed");
        for node in doc.descendants().filter(|d| d.has_attribute("font-size")) {
            let size: f64 = node.attribute("font-size").unwrap().parse().unwrap();
            assert!(size >= 11.0, "font too small: {size}");
        }
        doc
    }

    /// Elements with this tag and class.
    fn find<'a>(doc: &'a roxmltree::Document, tag: &str, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        let ok = |d: &roxmltree::Node| d.has_tag_name(tag) && d.attribute("class") == Some(class);
        doc.descendants().filter(ok).collect()
    }

    /// Text of an element's `<title>` child.
    fn tip(node: &roxmltree::Node) -> String {
        let t = node.children().find(|c| c.has_tag_name("title")).expect("hover title");
        t.text().unwrap_or_default().to_string()
    }

    /// Texts of all `<text>` elements.
    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        let t = doc.descendants().filter(|d| d.has_tag_name("text"));
        t.map(|d| d.text().unwrap_or_default().to_string()).collect()
    }

    fn spec(title: &str, log_y: bool) -> ChartSpec {
        ChartSpec { title: title.into(), x_label: "Training step".into(), y_label: "Loss".into(), log_y, ..Default::default() }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn sample_line() -> String {
        let series: Vec<Series> = (0..3)
            .map(|d| Series {
                name: format!("digit A{d}"),
                points: (0..300).map(|i| (i as f64 * 10.0, 3.0 * (-(i as f64) / (40.0 + 30.0 * d as f64)).exp() + 1e-3)).collect(),
            })
            .collect();
        let markers = [Marker { x: 400.0, label: "phase 1".into() }, Marker { x: 1200.0, label: "phase 2".into() }];
        line_chart(&spec("Per-digit loss", true), &series, &markers)
    }

    fn sample_heatmap() -> String {
        let xs = strings(&["D0", "D1", "D2", "+", "D'0"]);
        let ys = strings(&["A0", "A1", "A2", "A3"]);
        let mut v: Vec<Vec<f64>> = (0..4).map(|r| (0..5).map(|c| (r * 5 + c) as f64 / 19.0).collect()).collect();
        v[1][2] = f64::NAN;
        let opts = HeatmapOpts { cell_text: true, value_fmt_pct: true, ..Default::default() };
        let s = ChartSpec { x_label: "Token".into(), y_label: "Answer digit".into(), ..spec("Attention", false) };
        heatmap(&s, &xs, &ys, &v, &opts)
    }

    fn sample_bars() -> String {
        let cats = strings(&["BaseAdd", "UseCarry1", "UseSum9 cascade", "Mixed"]);
        let groups = vec![("1 layer".to_string(), vec![0.999, 0.95, 0.42, 0.8]), ("2 layers".to_string(), vec![1.0, 0.998, 0.97, 0.99])];
        let s = ChartSpec { x_label: "Question class".into(), y_label: "Accuracy".into(), ..spec("Accuracy by class", false) };
        bar_chart(&s, &cats, &groups)
    }

    fn sample_scatter() -> String {
        let names = strings(&["BA", "MC1", "MS9"]);
        let pts: Vec<ScatterPoint> = (0..60)
            .map(|i| {
                let c = i % 3;
                let a = i as f64 * 0.7;
                ScatterPoint { x: c as f64 * 3.0 + a.cos(), y: c as f64 - a.sin(), class: c, label: format!("q{i} {}", names[c]) }
            })
            .collect();
        let s = ChartSpec { x_label: "PC1".into(), y_label: "PC2".into(), ..spec("PCA of L0H1 at P14", false) };
        scatter(&s, &pts, &names)
    }

    fn sample_grid() -> String {
        let cols: Vec<String> = (8..18).map(|p| format!("P{p}")).collect();
        let rows = strings(&["L0H0", "L0H1", "L0H2", "L0M", "L1H0", "L1M"]);
        let cell = |col, row, lines: &[&str], key: &str| GridCell {
            col,
            row,
            lines: strings(lines),
            colour_key: key.into(),
            tooltip: format!("{} {key}", lines.join(" ")),
        };
        let cells = vec![
            cell(3, 0, &["A3", "BA3"], "BA"),
            cell(4, 1, &["A4", "MC3"], "MC"),
            cell(5, 2, &["A5", "MS4"], "MS"),
            cell(6, 3, &["A2", "US3"], "US"),
            cell(7, 3, &["A1", "BA1", "MC0"], "mixed"),
            cell(9, 5, &["A0"], ""),
        ];
        let s = ChartSpec { x_label: "Position".into(), y_label: "Node".into(), ..spec("Addition circuit", false) };
        node_grid(&s, &cols, &rows, &cells)
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(escape_xml(r#"<a & "b" 'c'>"#), "&lt;a &amp; &quot;b&quot; &#39;c&#39;&gt;");
        assert_eq!(escape_xml("x\u{0}\u{1b}y\n"), "xy\n");
    }

    #[test]
    fn palette_cycles() {
        assert_eq!(palette(0), palette(8));
        assert_ne!(palette(0), palette(1));
    }

    #[test]
    fn nice_ticks_use_1_2_5_steps() {
        let ax = linear_axis(0.0, 0.97, 5, true);
        assert_eq!(ax.labels, strings(&["0", "0.2", "0.4", "0.6", "0.8", "1.0"]));
        assert_eq!((ax.lo, ax.hi), (0.0, 1.0));
        let ax = linear_axis(3.0, 3.0, 5, false);
        assert!(ax.hi > ax.lo && !ax.ticks.is_empty());
        let ax = linear_axis(-1e308, 1e308, 5, true);
        assert!(ax.ticks.iter().all(|t| t.is_finite()));
        let ax = linear_axis(0.0, 12345.0, 5, false);
        assert!(ax.ticks.iter().all(|&t| t <= 12345.0) && ax.labels.contains(&"10000".to_string()));
    }

    #[test]
    fn log_ticks_are_powers_of_ten() {
        let ax = log_axis(0.003, 2.5);
        assert_eq!(ax.labels, strings(&["0.001", "0.01", "0.1", "1", "10"]));
        let ax = log_axis(1e-30, 1e10);
        assert!(ax.ticks.len() <= 9 && ax.labels[0] == "1e-30");
    }

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(fmt_num(0.98765), "0.988");
        assert_eq!(fmt_num(1234.6), "1235");
        assert_eq!(fmt_num(2e-5), "2.00e-5");
        assert_eq!(fmt_value(0.9731, true), "97.3%");
        assert_eq!(clip("a rather long token label 3", 9), "a ra…el 3");
        assert_eq!(clip("short", 9), "short");
        assert_eq!(n(f64::NAN), "0");
        assert_eq!(n(-0.001), "0");
    }

    #[test]
    fn line_chart_has_paths_labels_legend_and_markers() {
        let svg = sample_line();
        let doc = parse(&svg);
        let paths = find(&doc, "path", "series");
        assert_eq!(paths.len(), 3);
        assert_eq!(tip(&paths[1]), "digit A1");
        let t = texts(&doc);
        for want in ["Per-digit loss", "Training step", "Loss", "digit A2", "phase 1", "0.001", "1"] {
            assert!(t.iter().any(|s| s == want), "missing text {want}");
        }
        assert_eq!(find(&doc, "line", "marker").len(), 2);
    }

    #[test]
    fn log_scale_skips_zero_negative_and_nan() {
        let pts = vec![(0.0, 1.0), (1.0, 0.0), (2.0, f64::NAN), (3.0, -2.0), (f64::INFINITY, 1.0), (4.0, 0.1), (5.0, 0.01)];
        let series = [Series { name: "s".into(), points: pts }, Series { name: "bad".into(), points: vec![(0.0, 0.0)] }];
        let markers = [Marker { x: f64::NAN, label: "nan".into() }];
        let svg = line_chart(&spec("log", true), &series, &markers);
        let doc = parse(&svg);
        assert_eq!(find(&doc, "path", "series").len(), 1);
        let all_bad = [Series { name: "z".into(), points: vec![(0.0, 0.0), (1.0, f64::NAN)] }];
        assert!(line_chart(&spec("log", true), &all_bad, &[]).contains("no data"));
    }

    #[test]
    fn long_series_are_downsampled() {
        let pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, (i as f64 * 0.01).sin())).collect();
        let svg = line_chart(&spec("long", false), &[Series { name: "s".into(), points: pts }], &[]);
        let doc = parse(&svg);
        let d = find(&doc, "path", "series")[0].attribute("d").unwrap().to_string();
        let cmds = d.matches(['M', 'L']).count();
        assert!(cmds <= MAX_POINTS && cmds > 500, "{cmds} points");
        assert!(svg.len() < 100_000);
    }

    #[test]
    fn heatmap_has_one_titled_cell_per_value() {
        let svg = sample_heatmap();
        let doc = parse(&svg);
        let cells = find(&doc, "rect", "cell");
        assert_eq!(cells.len(), 20);
        assert_eq!(tip(&cells[0]), "A0, D0: 0.0%");
        assert_eq!(tip(&cells[7]), "A1, D2: n/a");
        assert_eq!(cells[7].attribute("fill"), Some(NAN_GREY));
        let t = texts(&doc);
        for want in ["Token", "Answer digit", "100.0%", "0.0%", "A3", "D'0"] {
            assert!(t.iter().any(|s| s == want), "missing text {want}");
        }
    }

    fn sample_diverging() -> String {
        let xs: Vec<String> = (0..4).map(|i| format!("a rather long token label {i}")).collect();
        let ys = strings(&["r0", "r1", "r2"]);
        let v = vec![vec![-1.0, 0.0, 2.0, 0.5], vec![1.0, -2.0], vec![f64::INFINITY, 0.1, 0.2, 0.3]];
        let opts = HeatmapOpts { diverging: true, cell_text: true, ..Default::default() };
        heatmap(&spec("Ablation loss change", false), &xs, &ys, &v, &opts)
    }

    fn sample_many_bars() -> String {
        let cats: Vec<String> = (0..14).map(|i| format!("question class {i}")).collect();
        let g = |k: f64| (0..14).map(|i| (i as f64 * k).sin() * 0.5 + 0.5).collect::<Vec<f64>>();
        let groups = vec![("seed 1".into(), g(0.3)), ("seed 2".into(), g(0.5)), ("seed 3".into(), g(0.9))];
        bar_chart(&spec("Many categories", false), &cats, &groups)
    }

    #[test]
    fn heatmap_3x4_diverging_ragged_and_long_ticks() {
        let svg = sample_diverging();
        let doc = parse(&svg);
        let cells = find(&doc, "rect", "cell");
        assert_eq!(cells.len(), 12);
        assert!(cells.iter().all(|c| !tip(c).is_empty()));
        assert!(svg.contains("rotate(-45"));
        let t = texts(&doc);
        assert!(t.contains(&"-2".to_string()) && t.contains(&"2".to_string()) && t.contains(&"0".to_string()));
        assert_eq!(find(&doc, "rect", "cbar").len(), 40);
    }

    #[test]
    fn bar_chart_has_titled_bars_and_values() {
        let svg = sample_bars();
        let doc = parse(&svg);
        let bars = find(&doc, "rect", "bar");
        assert_eq!(bars.len(), 8);
        assert_eq!(tip(&bars[0]), "1 layer, BaseAdd: 0.999");
        assert_eq!(find(&doc, "text", "value").len(), 8);
        assert_eq!(find(&doc, "rect", "key").len(), 2);
        let t = texts(&doc);
        for want in ["Question class", "Accuracy", "UseCarry1", "2 layers"] {
            assert!(t.iter().any(|s| s == want), "missing text {want}");
        }
    }

    #[test]
    fn a_bounded_bar_chart_stops_its_axis_at_the_bound() {
        let cats = strings(&["S0", "S1"]);
        let groups = vec![(String::new(), vec![100.0, 96.0])];
        let ticks = |y_max| {
            let svg = bar_chart(&ChartSpec { y_max, ..spec("accuracy", false) }, &cats, &groups);
            texts(&parse(&svg)).into_iter().filter_map(|t| t.parse::<f64>().ok()).fold(f64::MIN, f64::max)
        };
        assert!(ticks(None) > 100.0, "unbounded, the axis is padded past the tallest bar");
        assert_eq!(ticks(Some(100.0)), 100.0, "a percentage axis ends at 100");
    }

    #[test]
    fn bar_chart_handles_negative_nan_and_log() {
        let cats = strings(&["a", "b", "c"]);
        let groups = vec![(String::new(), vec![-1.0, f64::NAN, 2.0])];
        let doc_svg = bar_chart(&spec("neg", false), &cats, &groups);
        let doc = parse(&doc_svg);
        assert_eq!(find(&doc, "rect", "bar").len(), 2);
        assert_eq!(find(&doc, "rect", "key").len(), 0);
        let log = bar_chart(&spec("log", true), &cats, &[("g".into(), vec![0.0, 10.0, 1000.0])]);
        assert_eq!(find(&parse(&log), "rect", "bar").len(), 2);
    }

    #[test]
    fn scatter_colours_points_by_class() {
        let svg = sample_scatter();
        let doc = parse(&svg);
        let pts = find(&doc, "circle", "pt");
        assert_eq!(pts.len(), 60);
        assert_eq!(tip(&pts[4]), "q4 MC1");
        assert_eq!(pts[4].attribute("fill"), Some(palette(1)));
        assert_eq!(find(&doc, "circle", "key").len(), 3);
        let odd = [
            ScatterPoint { x: 1.0, y: f64::NAN, class: 0, label: "x".into() },
            ScatterPoint { x: 1.0, y: 1.0, class: 7, label: String::new() },
        ];
        let doc2_svg = scatter(&spec("odd", false), &odd, &[]);
        let doc2 = parse(&doc2_svg);
        assert_eq!(find(&doc2, "circle", "pt").len(), 1);
        assert!(texts(&doc2).contains(&"class 7".to_string()));
    }

    #[test]
    fn node_grid_draws_nodes_empties_and_roles() {
        let svg = sample_grid();
        let doc = parse(&svg);
        let nodes = find(&doc, "rect", "node");
        assert_eq!(nodes.len(), 6);
        assert_eq!(tip(&nodes[0]), "A3 BA3 BA");
        assert_eq!(find(&doc, "rect", "empty").len(), 60 - 6);
        let legend: Vec<String> = find(&doc, "text", "legend").iter().map(|t| t.text().unwrap().to_string()).collect();
        assert_eq!(legend, strings(&["BA", "MC", "MS", "US", "mixed"]));
        let t = texts(&doc);
        for want in ["P11", "L0M", "MC3", "Position", "Node"] {
            assert!(t.iter().any(|s| s == want), "missing text {want}");
        }
        let out_of_range = [GridCell { col: 99, row: 0, ..Default::default() }];
        let doc2_svg = node_grid(&spec("g", false), &cols1(), &cols1(), &out_of_range);
        assert_eq!(find(&parse(&doc2_svg), "rect", "empty").len(), 1);
    }

    fn cols1() -> Vec<String> {
        strings(&["only"])
    }

    #[test]
    fn circuit_graph_draws_boxes_and_arrows_sized_by_weight_and_coloured_by_kind() {
        let node = |col, row, label: &str| GraphNode { col, row, label: label.into(), tooltip: String::new() };
        let nodes = [node(0, 0, "P5L0H0"), node(1, 0, "P6L0M"), node(1, 1, "P6L1M")];
        let edge = |from, to, weight, kind: &str, label: &str| GraphEdge {
            from,
            to,
            weight,
            colour_key: kind.into(),
            label: label.into(),
            tooltip: format!("{from}->{to} {label}"),
        };
        let edges = [
            edge(0, 2, 1.0, "value", "c0"),
            edge(1, 2, 2.0, "MLP input", "c0"),
            edge(1, 2, f64::NAN, "MLP input", "c1"),
            edge(0, 9, 5.0, "value", "bad"),
            edge(1, 1, 5.0, "value", "self"),
        ];
        let svg = circuit_graph(&spec("circuit", false), &strings(&["P5", "P6"]), &strings(&["L0", "L1"]), &nodes, &edges);
        let doc = parse(&svg);
        assert_eq!(find(&doc, "rect", "node").len(), 3);
        let arrows = find(&doc, "path", "edge");
        assert_eq!(arrows.len(), 3, "an edge to a missing node or to itself is skipped");
        assert_eq!(find(&doc, "polygon", "head").len(), 3);
        assert_eq!(tip(&arrows[1]), "1->2 c0");
        let width = |a: &roxmltree::Node| a.attribute("stroke-width").unwrap().parse::<f64>().unwrap();
        assert_eq!((width(&arrows[0]), width(&arrows[1]), width(&arrows[2])), (4.5, 7.5, 1.5), "width by weight; NaN thinnest");
        assert_eq!(arrows[1].attribute("stroke"), arrows[2].attribute("stroke"), "one colour per kind");
        assert_ne!(arrows[0].attribute("stroke"), arrows[1].attribute("stroke"));
        assert_ne!(arrows[1].attribute("d"), arrows[2].attribute("d"), "arrows between the same boxes bow apart");
        let legend: Vec<String> = find(&doc, "text", "legend").iter().map(|t| t.text().unwrap().to_string()).collect();
        assert_eq!(legend, strings(&["value", "MLP input"]));
        let labels: Vec<String> = find(&doc, "text", "edge-label").iter().map(|t| t.text().unwrap().to_string()).collect();
        assert_eq!(labels, strings(&["c0", "c0", "c1"]));
        assert_eq!(find(&parse(&circuit_graph(&spec("e", false), &cols1(), &cols1(), &[], &[])), "text", "nodata").len(), 1);
    }

    #[test]
    fn labels_are_escaped() {
        let s = ChartSpec { title: "a<b & c>d".into(), x_label: "x<&>".into(), y_label: "\"y\"".into(), ..Default::default() };
        let svg = bar_chart(&s, &strings(&["<cat>"]), &[("g&h".into(), vec![1.0])]);
        let doc = parse(&svg);
        let t = texts(&doc);
        for want in ["a<b & c>d", "x<&>", "\"y\"", "<cat>", "g&h"] {
            assert!(t.iter().any(|s| s == want), "missing text {want}");
        }
        assert_eq!(doc.root_element().first_element_child().unwrap().text(), Some("a<b & c>d"));
    }

    #[test]
    fn empty_inputs_give_no_data_figures() {
        let s = spec("empty", false);
        let outs = [
            line_chart(&s, &[], &[]),
            line_chart(&s, &[Series::default()], &[Marker { x: 1.0, label: "m".into() }]),
            heatmap(&s, &[], &[], &[], &HeatmapOpts::default()),
            heatmap(&s, &[], &[], &[vec![]], &HeatmapOpts::default()),
            bar_chart(&s, &[], &[]),
            bar_chart(&s, &strings(&["a"]), &[("g".into(), vec![f64::NAN])]),
            scatter(&s, &[], &[]),
            node_grid(&s, &[], &strings(&["r"]), &[]),
        ];
        for svg in &outs {
            let doc = parse(svg);
            assert_eq!(find(&doc, "text", "nodata").len(), 1, "{svg}");
        }
    }

    #[test]
    fn bad_sizes_are_clamped() {
        let s = ChartSpec { width: f64::NAN, height: -5.0, ..spec("size", false) };
        let svg = scatter(&s, &[ScatterPoint::default()], &[]);
        let doc = parse(&svg);
        assert_eq!(doc.root_element().attribute("width"), Some("640"));
        assert_eq!(doc.root_element().attribute("height"), Some("120"));
    }

    #[test]
    fn writes_sample_figures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("svg-samples");
        std::fs::create_dir_all(&dir).unwrap();
        let figs = [
            ("line", sample_line()),
            ("heatmap", sample_heatmap()),
            ("bars", sample_bars()),
            ("scatter", sample_scatter()),
            ("grid", sample_grid()),
            ("diverging", sample_diverging()),
            ("many_bars", sample_many_bars()),
        ];
        for (name, svg) in figs {
            parse(&svg);
            std::fs::write(dir.join(format!("{name}.svg")), svg).unwrap();
        }
    }
}
